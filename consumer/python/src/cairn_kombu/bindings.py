"""Exchange bindings shared by every process through one compacted Cairn topic.

kombu's virtual transport routes a message published to a ``direct`` or ``topic`` exchange by
looking the routing key up in the exchange's binding table. A table that lives in one process
is not enough: Celery's remote control replies, for example, are published by a worker to the
exchange ``reply.celery.pidbox`` with a routing key that only the asking process has bound.

So every binding is also appended to the topic ``kombu.bindings`` (one partition,
``cleanup_policy: compact``), keyed by ``[exchange, routing_key, queue]``; deleting a queue
appends tombstones for its bindings. Each process folds the log into a table and tails it
incrementally: a lookup that finds no queue re-reads only what was appended since the last read
(at most once a second per exchange and routing key), so a binding made by another process is
seen by the next publish that needs it.
"""

from __future__ import annotations

import base64
import json
import threading
import time

from .client import CairnClient

BINDINGS_TOPIC = "kombu.bindings"
#: Seconds between two re-reads for the same missing (exchange, routing key): the first miss
#: always re-reads; repeated misses (events nobody listens to) back off, doubling up to the max.
MISS_REFRESH_S_MIN = 1.0
MISS_REFRESH_S_MAX = 60.0


class BindingRegistry:
    """The folded ``kombu.bindings`` log: ``{exchange: {(routing_key, queue): type}}``."""

    def __init__(self, client: CairnClient):
        self._client = client
        self._lock = threading.Lock()
        self._next_offset = 0
        self._table: dict[str, dict[tuple[str, str], str]] = {}
        self._loaded = False
        self._topic_ready = False
        self._last_miss: dict[tuple[str, str], tuple[float, float]] = {}

    def table(self, exchange: str) -> dict[tuple[str, str], str]:
        if not self._loaded:
            self.refresh()
        return dict(self._table.get(exchange, {}))

    def refresh(self) -> None:
        with self._lock:
            while True:
                reply = self._client.read(BINDINGS_TOPIC, 0, self._next_offset)
                for m in reply.get("messages", []):
                    self._apply(m)
                    self._next_offset = m["offset"] + 1
                nxt = reply.get("next_offset", self._next_offset)
                if nxt > self._next_offset:
                    self._next_offset = nxt
                if not reply.get("messages") or self._next_offset >= reply.get("end_offset", 0):
                    break
            self._loaded = True

    def refresh_on_miss(self, exchange: str, routing_key: str) -> bool:
        """Re-reads the log after a failed lookup, unless done for this key very recently."""
        now = time.monotonic()
        key = (exchange, routing_key)
        last, wait = self._last_miss.get(key, (None, MISS_REFRESH_S_MIN / 2))
        if last is not None and now - last < wait:
            return False
        if len(self._last_miss) > 10_000:
            self._last_miss.clear()
        self._last_miss[key] = (now, min(wait * 2, MISS_REFRESH_S_MAX))
        self.refresh()
        return True

    def found(self, exchange: str, routing_key: str) -> None:
        """A re-read found the key: its next miss re-reads at once again."""
        self._last_miss.pop((exchange, routing_key), None)

    def bind(self, exchange: str, routing_key: str, queue: str, type_: str) -> None:
        if self.table(exchange).get((routing_key, queue)) == type_:
            return
        self._ensure_topic()
        value = {"exchange": exchange, "routing_key": routing_key, "queue": queue, "type": type_}
        self._client.produce_json(BINDINGS_TOPIC, [{"key": self._key(exchange, routing_key, queue), "value": value}])
        with self._lock:
            self._table.setdefault(exchange, {})[(routing_key, queue)] = type_

    def unbind_queue(self, queue: str) -> None:
        """Appends tombstones for every binding of ``queue``."""
        if not self._loaded:
            self.refresh()
        with self._lock:
            gone = [(ex, rk) for ex, t in self._table.items() for (rk, q) in t if q == queue]
            for ex, rk in gone:
                self._table[ex].pop((rk, queue), None)
        if gone:
            self._ensure_topic()
            self._client.produce_json(
                BINDINGS_TOPIC, [{"key": self._key(ex, rk, queue)} for ex, rk in gone]
            )

    def _ensure_topic(self) -> None:
        if not self._topic_ready:
            self._client.create_topic(BINDINGS_TOPIC, partitions=1, cleanup_policy="compact")
            self._topic_ready = True

    @staticmethod
    def _key(exchange: str, routing_key: str, queue: str) -> str:
        return json.dumps([exchange, routing_key, queue], separators=(",", ":"))

    def _apply(self, m: dict) -> None:
        try:
            exchange, routing_key, queue = json.loads(m["key"])
        except (TypeError, ValueError, KeyError):
            return
        value = m.get("value")
        if value is None and m.get("value_base64") is not None:
            value = json.loads(base64.b64decode(m["value_base64"]))
        table = self._table.setdefault(exchange, {})
        if value is None:
            table.pop((routing_key, queue), None)
        else:
            table[(routing_key, queue)] = value.get("type", "direct")
