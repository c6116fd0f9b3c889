"""The leases one worker process holds, and the two threads that look after them.

Every message the transport fetches is leased to this process by the server until its ack
timeout. The :class:`LeaseBook` remembers each one under the kombu delivery tag it was handed
out with, from the fetch until kombu acks or rejects it (or the channel closes):

* **Settling** (ack, nack, reject) is asynchronous and batched: kombu's ``basic_ack`` only
  queues the tag; the *settler* thread sends everything queued so far, one request per
  (operation, group, topic). Under load one request carries many acks. ``flush()`` waits until
  the queue is empty (used when a channel closes).
* **Extending**: the *keeper* thread extends, every ``visibility_timeout / 3`` seconds, the lease
  of every message still held -- prefetched, waiting for its ETA, or running. A task is therefore
  never handed to a second worker while this process lives, however long it waits. If the
  process dies, nothing extends the leases; they expire and the server delivers the messages
  again, to whichever worker fetches next.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable

from .client import CairnClient, CairnConnectionError, CairnError

logger = logging.getLogger(__name__)

#: How long the settler keeps retrying a batch while the server is unreachable. After that the
#: batch is dropped (logged): those leases expire and the messages are delivered again, which is
#: the at-least-once contract anyway.
SETTLE_RETRY_S_MAX = 60.0
#: How long the settler lets settles gather after the first one arrives, before sending: a
#: busy worker's acks then go out in fewer requests (and wake the thread less often); an
#: idle worker's ack leaves this much later.
SETTLE_LINGER_S = 0.002


@dataclass(eq=False)
class Lease:
    group: str
    topic: str
    partition: int
    offset: int
    owner: Any = field(default=None, repr=False)  # the channel that fetched it
    #: The fetch's delivery number: the server then applies nack/extend/reject only while this
    #: delivery still holds the lease (a late settle of an expired lease cannot touch the next
    #: holder's).
    delivery: int | None = None

    def ref(self) -> dict:
        ref = {"partition": self.partition, "offset": self.offset}
        if self.delivery is not None:
            ref["delivery"] = self.delivery
        return ref


class LeaseBook:
    """Held leases by delivery tag; batches settles; extends leases while they are held."""

    def __init__(
        self,
        client: CairnClient,
        ack_timeout_ms: int,
        on_settled: Callable[[Lease], None] | None = None,
    ):
        self._client = client
        self._ack_timeout_ms = ack_timeout_ms
        self._on_settled = on_settled
        self._cond = threading.Condition()
        self._held: dict[str, Lease] = {}
        self._pending: list[tuple[str, Lease, dict]] = []
        self._sending = 0
        self._closed = False
        self._tags = itertools.count(1)
        self._prefix = f"{id(self):x}"
        self._stop = threading.Event()
        self._settler = threading.Thread(target=self._settle_loop, name="cairn-settler", daemon=True)
        self._keeper = threading.Thread(target=self._keep_loop, name="cairn-lease-keeper", daemon=True)
        self._settler.start()
        self._keeper.start()

    # -- called by the transport -------------------------------------------------------------

    def add(self, lease: Lease) -> str:
        tag = f"cairn.{self._prefix}.{next(self._tags)}"
        with self._cond:
            self._held[tag] = lease
        return tag

    def settle(self, tag: str, op: str, **extra: Any) -> bool:
        """Queues ``op`` (``ack`` | ``nack`` | ``reject``) for a held tag; False if not held."""
        with self._cond:
            lease = self._held.pop(tag, None)
            if lease is None:
                return False
            self._pending.append((op, lease, extra))
            self._cond.notify_all()
        if self._on_settled is not None:
            self._on_settled(lease)
        return True

    def tags_of(self, owner: Any) -> list[str]:
        with self._cond:
            return [t for t, lease in self._held.items() if lease.owner is owner]

    def held_count(self) -> int:
        with self._cond:
            return len(self._held)

    def flush(self, timeout: float = 10.0) -> bool:
        """Waits until every queued settle has been sent (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._sending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 10.0) -> None:
        self.flush(timeout)
        self._stop.set()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # -- settler -----------------------------------------------------------------------------

    def _settle_loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed and not self._pending:
                    return
                self._sending += 1  # flush() waits for this batch from now on
            if not self._closed:
                time.sleep(SETTLE_LINGER_S)
            with self._cond:
                batch, self._pending = self._pending, []
            try:
                self._send(batch)
            finally:
                with self._cond:
                    self._sending -= 1
                    self._cond.notify_all()

    def _send(self, batch: list[tuple[str, Lease, dict]]) -> None:
        groups: dict[tuple, list[dict]] = defaultdict(list)
        for op, lease, extra in batch:
            key = (op, lease.group, lease.topic, tuple(sorted(extra.items())))
            ref = lease.ref()
            if op == "nack" and "delay_ms" in extra:
                ref["delay_ms"] = extra["delay_ms"]
            groups[key].append(ref)
        for (op, group, topic, extra), refs in groups.items():
            body_extra = {k: v for k, v in extra if k != "delay_ms"}
            self._send_with_retry(op, group, topic, refs, body_extra)

    def _send_with_retry(self, op: str, group: str, topic: str, refs: list[dict], extra: dict) -> None:
        deadline = time.monotonic() + SETTLE_RETRY_S_MAX
        delay = 0.2
        while True:
            try:
                self._client.settle(op, group, topic, refs, **extra)
                return
            except CairnConnectionError as exc:
                if time.monotonic() > deadline or self._stop.is_set():
                    logger.error("cairn: giving up on %s of %d messages of %s/%s: %s", op, len(refs), group, topic, exc)
                    return
                logger.warning("cairn: %s of %d messages failed, retrying: %s", op, len(refs), exc)
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
            except CairnError as exc:
                # 4xx: the topic or group is gone (queue deleted) -- nothing left to settle.
                logger.warning("cairn: %s of %d messages of %s/%s refused: %s", op, len(refs), group, topic, exc)
                return

    # -- keeper ------------------------------------------------------------------------------

    def _keep_loop(self) -> None:
        interval = max(self._ack_timeout_ms / 3000.0, 0.05)
        while not self._stop.wait(interval):
            with self._cond:
                held = list(self._held.values())
            if not held:
                continue
            by_topic: dict[tuple[str, str], list[dict]] = defaultdict(list)
            for lease in held:
                by_topic[(lease.group, lease.topic)].append(lease.ref())
            for (group, topic), refs in by_topic.items():
                try:
                    self._client.settle("extend", group, topic, refs, ack_timeout_ms=self._ack_timeout_ms)
                except (CairnConnectionError, CairnError) as exc:
                    logger.warning("cairn: extending %d leases of %s/%s failed: %s", len(refs), group, topic, exc)
