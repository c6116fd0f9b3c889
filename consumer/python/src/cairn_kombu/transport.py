"""The ``cairn://`` kombu transport, built on kombu's virtual transport.

Mapping (see ``docs/CELERY.md`` for the full table):

* queue ``Q``  -> topic ``Q`` (created on declare) and one consumer group ``kombu.Q`` shared by
  every consumer of ``Q``, so consumers compete and each message is leased to one of them;
* publish      -> one produce of kombu's whole message (body, headers, properties) as the JSON
  text kombu builds, stored as raw bytes and handed back unchanged;
* ack / reject(requeue) / reject -> ``ack`` / ``nack`` / ``reject`` (dead-letter), batched;
* ``visibility_timeout`` -> the lease (``ack_timeout_ms``), extended while this process holds
  the message;
* fan-out exchange ``E`` -> topic ``kombu.fanout.E`` (bounded retention); each bound queue reads
  it through its own group that starts at ``latest``.

Consuming: each consumed queue gets a fetcher thread that long-polls the server
(``wait_ms``), asking for as many messages as the channel's prefetch window has room for, and
puts what it gets into one in-process inbox. ``Transport.drain_events`` blocks on that inbox (or,
with option ``event_loop``, an event loop is woken through a pipe), so a message is handed to
kombu the moment the server answers: no polling interval, no sleeps.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import queue as stdqueue
import socket
import threading
import uuid
from typing import Any

from kombu.transport import virtual
from kombu.utils.objects import cached_property

from . import names
from .bindings import BindingRegistry
from .client import CairnClient, CairnConnectionError, CairnError
from .leases import Lease, LeaseBook

logger = logging.getLogger(__name__)

DEFAULT_PORT = 7420
#: The server's longest lease (``ACK_TIMEOUT_MS_MAX``: 12 hours).
ACK_TIMEOUT_MS_MAX = 12 * 3600 * 1000
#: Messages delivered to the consuming thread per ``drain_events`` call at most.
DRAIN_BATCH_MAX = 256


class Options:
    """Transport options (``broker_transport_options`` in Celery), with their defaults."""

    def __init__(self, topts: dict[str, Any]):
        #: seconds a fetched message stays leased without being extended (kombu's SQS/Redis name)
        self.visibility_timeout: float = float(topts.get("visibility_timeout", 3600))
        #: long-poll of one fetch, seconds (at most 30)
        self.wait_time_seconds: float = min(float(topts.get("wait_time_seconds", 10)), 30.0)
        #: most messages one fetch asks for when the prefetch window is unlimited
        self.fetch_max: int = int(topts.get("fetch_max", 100))
        #: prefix of the consumer group of each queue
        self.group_prefix: str = topts.get("group_prefix", "kombu.")
        #: prefix of the topic of each fan-out exchange
        self.fanout_prefix: str = topts.get("fanout_prefix", "kombu.fanout.")
        #: retention of fan-out topics, seconds
        self.fanout_retention_seconds: float = float(topts.get("fanout_retention_seconds", 3600))
        #: deliveries without an ack before the server dead-letters a message (0 = unlimited)
        self.max_deliveries: int = int(topts.get("max_deliveries", 0))
        #: dead-letter topic of every queue (None: the server's default, ``<topic>.dlq``)
        self.dead_letter_topic: str | None = topts.get("dead_letter_topic")
        #: bearer token (also accepted as the URL's password)
        self.token: str | None = topts.get("token")
        #: TLS options passed to urllib3 (``ca_certs``, ``cert_reqs``, ``cert_file``, ...)
        self.ssl: dict[str, Any] = dict(topts.get("ssl", {}) or {})
        #: seconds to wait for a reply to a non-polling request
        self.read_timeout: float = float(topts.get("read_timeout", 30))
        #: offer Celery's event loop (default False: Celery's blocking loop and threaded pool, which
        #: measured the same tasks/s with less CPU per task; see docs/BENCHMARKS.md "Celery")
        self.event_loop: bool = bool(topts.get("event_loop", False))

    @property
    def ack_timeout_ms(self) -> int:
        return max(1, min(int(self.visibility_timeout * 1000), ACK_TIMEOUT_MS_MAX))


def encode_message(message: dict) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode("utf-8")


def decode_message(m: dict) -> dict:
    """kombu's message dict from a fetched Cairn message (fetched with ``encoding: json``).

    kombu's message is JSON, so the server embeds it in the fetch reply as JSON (its text
    verbatim, whitespace outside strings dropped) and one ``json.loads`` of the reply decodes
    it: the dict is the one ``json.loads`` of the stored bytes gives. A value that is not valid
    JSON comes as ``value_base64``. A value that is not a kombu message (produced by another
    Cairn client) is wrapped as the body of one, so kombu consumers can read any topic: raw
    bytes as they are, a JSON value as its compact JSON text.
    """
    raw = None
    if "value_base64" in m:
        raw = base64.b64decode(m["value_base64"] or "")
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None
    else:
        payload = m.get("value")
    if isinstance(payload, dict) and "body" in payload and isinstance(payload.get("properties"), dict):
        return payload
    if raw is None:
        raw = b"" if payload is None else json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return {
        "body": base64.b64encode(raw).decode("ascii"),
        "content-encoding": "binary",
        "content-type": "application/json" if payload is not None else "application/data",
        "headers": dict(m.get("headers") or {}),
        "properties": {"body_encoding": "base64", "delivery_info": {"exchange": "", "routing_key": ""}},
    }


class QoS(virtual.QoS):
    """kombu's QoS bookkeeping, settling leases on the server instead of re-publishing."""

    def ack(self, delivery_tag):
        self.channel._settle(delivery_tag, "ack")
        super().ack(delivery_tag)

    def reject(self, delivery_tag, requeue=False):
        self.channel._settle(delivery_tag, "nack" if requeue else "reject")
        self._quick_ack(delivery_tag)

    def restore_unacked(self):
        """Releases (nacks) every unacked message: other consumers get them at once."""
        self._flush()
        for tag in list(self._delivered):
            self.channel._settle(tag, "nack")
        self._delivered.clear()
        return []

    def restore_visible(self, *args, **kwargs):
        """Nothing to do: the server redelivers expired leases itself."""


class Fetcher(threading.Thread):
    """Long-polls one (group, topic) for one consumed queue of one channel."""

    def __init__(self, channel: "Channel", queue: str, group: str, topic: str, no_ack: bool):
        super().__init__(name=f"cairn-fetch-{queue}", daemon=True)
        self.channel, self.queue, self.group, self.topic, self.no_ack = channel, queue, group, topic, no_ack
        self.stopped = threading.Event()
        #: run by the thread when it ends (the auto-delete of a fan-out queue's group)
        self.after_exit: Any = None

    def stop(self) -> None:
        self.stopped.set()
        self.channel._wake()

    def run(self) -> None:
        try:
            self._run()
        finally:
            if self.after_exit is not None:
                self.after_exit()

    def _run(self) -> None:
        ch, transport = self.channel, self.channel._transport
        opts, backoff = transport.options, 0.2
        while not self.stopped.is_set():
            n = ch._reserve(ch._fetch_max, self.stopped)
            if not n:
                continue
            try:
                got = transport.api.fetch(
                    self.group, self.topic, n, int(opts.wait_time_seconds * 1000),
                    opts.ack_timeout_ms, transport.consumer_id,
                )
                backoff = 0.2
            except (CairnConnectionError, CairnError) as exc:
                ch._unreserve(n)
                if isinstance(exc, CairnError) and exc.code == "topic_not_found":
                    self._recreate()
                else:
                    logger.warning("cairn: fetch from %s failed (retrying in %.1fs): %s", self.topic, backoff, exc)
                self.stopped.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            except Exception:  # never let the thread die silently
                ch._unreserve(n)
                logger.exception("cairn: fetch from %s failed", self.topic)
                self.stopped.wait(backoff)
                continue
            if got:
                ch._hand_over(self, got)
            ch._unreserve(n)

    def _recreate(self) -> None:
        try:
            self.channel._ensure_queue(self.queue, force=True)
        except (CairnConnectionError, CairnError) as exc:
            logger.warning("cairn: cannot recreate queue %s: %s", self.queue, exc)


class Channel(virtual.Channel):
    """A kombu channel on Cairn. Thread-safe for publishing and settling."""

    QoS = QoS
    supports_fanout = True
    do_restore = True

    def __init__(self, connection, **kwargs):
        super().__init__(connection, **kwargs)
        self._room = threading.Condition()
        self._outstanding = 0  # held leases of this channel + messages asked for in open fetches
        self._fetch_max = max(1, connection.options.fetch_max)
        self._fetchers: dict[str, Fetcher] = {}
        self._accepting = threading.Lock()  # fetchers accept fetched messages / close stops them
        self._pid = os.getpid()
        self._transport = connection  # kept: kombu clears ``self.connection`` on close

    # -- names -------------------------------------------------------------------------------

    @property
    def api(self) -> CairnClient:
        return self._transport.api

    @property
    def options(self) -> Options:
        return self._transport.options

    def _group(self, queue: str) -> str:
        return names.prefixed(self.options.group_prefix, queue)

    def _fanout_topic(self, exchange: str) -> str:
        return names.prefixed(self.options.fanout_prefix, exchange)

    def _source(self, queue: str) -> tuple[str, str]:
        """(group, topic) a queue is read from: its own topic, or its fan-out exchange's."""
        exchange = self._transport.fanout_of.get(queue)
        topic = self._fanout_topic(exchange) if exchange else names.cairn_name(queue)
        return self._group(queue), topic

    # -- declarations ------------------------------------------------------------------------

    def _group_config(self, start: str) -> dict[str, Any]:
        cfg = {"start": start, "ack_timeout_ms": self.options.ack_timeout_ms,
               "max_deliveries": self.options.max_deliveries}
        if self.options.dead_letter_topic:
            cfg["dead_letter_topic"] = names.cairn_name(self.options.dead_letter_topic)
        return cfg

    def _ensure_queue(self, queue: str, force: bool = False, **kwargs) -> None:
        declared = self._transport.declared
        if queue in declared and not force:
            return
        exchange = self._transport.fanout_of.get(queue)
        if exchange:
            self._ensure_fanout_topic(exchange, force=force)
        else:
            config: dict[str, Any] = {}
            args = kwargs.get("arguments") or {}
            ttl_ms = args.get("x-message-ttl") or args.get("x-expires")
            if ttl_ms:
                config["retention_ms"] = int(ttl_ms)
            if self.api.create_topic(names.cairn_name(queue), **config):
                self._transport.made_topic.add(queue)
            self.api.configure_group(self._group(queue), **self._group_config("earliest"))
        declared.add(queue)

    def _ensure_fanout_topic(self, exchange: str, force: bool = False) -> str:
        topic = self._fanout_topic(exchange)
        made = self._transport.fanout_topics
        if topic not in made or force:
            self.api.create_topic(topic, retention_ms=int(self.options.fanout_retention_seconds * 1000))
            made.add(topic)
        return topic

    def _new_queue(self, queue, **kwargs):
        self._ensure_queue(queue, **kwargs)
        if kwargs.get("auto_delete"):
            self._transport.auto_delete.add(queue)

    def _has_queue(self, queue, **kwargs):
        if queue in self._transport.fanout_of:
            return True
        return self.api.topic_exists(names.cairn_name(queue))

    def _queue_bind(self, exchange, routing_key, pattern, queue):
        type_ = self.typeof(exchange).type
        if type_ == "fanout":
            topic = self._ensure_fanout_topic(exchange)
            group = self._group(queue)
            self.api.configure_group(group, **self._group_config("latest"))
            if self._transport.fanout_of.get(queue) != exchange:
                # a (re)bound queue receives what is broadcast from now on, like an AMQP queue
                self.api.reset_group(group, topic, "latest")
            self._transport.fanout_of[queue] = exchange
            self._drop_own_topic(queue)
        else:
            self._transport.bindings.bind(exchange, routing_key, queue, type_)

    def _drop_own_topic(self, queue: str) -> None:
        """kombu declares a queue before binding it, so a queue bound to a fan-out exchange got
        a topic of its own that it never reads (it reads the exchange's topic). Delete it if
        this process created it and it is still empty, so per-process broadcast queues
        (``celeryev.<uuid>``) leave no topic behind."""
        made = self._transport.made_topic
        if queue in made:
            made.discard(queue)
            name = names.cairn_name(queue)
            desc = self.api.topic(name)
            if desc is not None and all(p["end_offset"] == 0 for p in desc.get("partitions", [])):
                self.api.delete_topic(name)

    def get_table(self, exchange):
        """The exchange's bindings: this process's and every other process's."""
        try:
            local = list(super().get_table(exchange))
        except KeyError:
            local = []
        seen = {(rk, q) for rk, _, q in local}
        for (rk, q), type_ in self._transport.bindings.table(exchange).items():
            if (rk, q) not in seen:
                local.append(self.exchange_types[type_].prepare_bind(q, exchange, rk, None))
        return local

    def _lookup(self, exchange, routing_key, default=None):
        found = super()._lookup(exchange, routing_key, default)
        bindings = self._transport.bindings
        if not found and exchange and bindings.refresh_on_miss(exchange, routing_key):
            found = super()._lookup(exchange, routing_key, default)
            if found:
                bindings.found(exchange, routing_key)
        return found

    def queue_delete(self, queue, if_unused=False, if_empty=False, **kwargs):
        if if_empty and self._size(queue):
            return
        self.state.queue_bindings_delete(queue)
        self._stop_fetcher(queue)
        group, topic = self._source(queue)
        self._transport.bindings.unbind_queue(queue)
        self.api.delete_group(group)
        if queue not in self._transport.fanout_of:
            self.api.delete_topic(topic)
        self._transport.fanout_of.pop(queue, None)
        self._transport.declared.discard(queue)

    def _delete(self, queue, *args, **kwargs):
        self.queue_delete(queue)

    # -- publishing --------------------------------------------------------------------------

    def _put(self, queue, message, **kwargs):
        topic = names.cairn_name(queue)
        try:
            self.api.produce_one(topic, encode_message(message))
        except CairnError as exc:
            if exc.code != "topic_not_found":
                raise
            self._ensure_queue(queue, force=True)
            self.api.produce_one(topic, encode_message(message))

    def _put_fanout(self, exchange, message, routing_key, **kwargs):
        self.api.produce_one(self._ensure_fanout_topic(exchange), encode_message(message))

    # -- counts and purge --------------------------------------------------------------------

    def _size(self, queue):
        group, topic = self._source(queue)
        offsets = self.api.group_offsets(group, topic)
        if offsets is not None:
            # Ready messages, as AMQP counts them: not done and not leased right now.
            return sum(max(0, o.get("lag", 0) - o.get("in_flight", 0)) for o in offsets)
        desc = self.api.topic(topic)  # group never used: everything from the start is waiting
        if desc is None:
            return 0
        return sum(p["end_offset"] - p["start_offset"] for p in desc.get("partitions", []))

    def _purge(self, queue):
        group, topic = self._source(queue)
        size = self._size(queue)
        try:
            self.api.reset_group(group, topic, "latest")
        except CairnError as exc:
            if exc.code != "topic_not_found":
                raise
            return 0
        return size

    # -- consuming ---------------------------------------------------------------------------

    def basic_consume(self, queue, no_ack, callback, consumer_tag, **kwargs):
        super().basic_consume(queue, no_ack, callback, consumer_tag, **kwargs)
        self._ensure_queue(queue)
        self._stop_fetcher(queue)
        group, topic = self._source(queue)
        fetcher = Fetcher(self, queue, group, topic, no_ack)
        self._fetchers[queue] = fetcher
        fetcher.start()
        return consumer_tag

    def basic_cancel(self, consumer_tag):
        queue = self._tag_to_queue.get(consumer_tag)
        super().basic_cancel(consumer_tag)
        if queue is not None and queue not in self._active_queues:
            fetcher = self._fetchers.get(queue)
            self._stop_fetcher(queue)
            transport = self._transport
            if queue in transport.auto_delete and queue in transport.fanout_of and os.getpid() == self._pid:
                self._auto_delete_group(queue, fetcher)

    def _auto_delete_group(self, queue: str, fetcher: "Fetcher | None") -> None:
        """An auto-delete queue bound to a fan-out exchange lost its consumer: drop its group.

        Celery's per-process broadcast queues (``celeryev.<uuid>`` of gossip and event
        receivers, ``<node>.celery.pidbox``) would otherwise leave a group on the server per
        process start. The exchange's topic stays (bounded by its retention). Best effort: a
        failure is logged, not raised, and a process killed before this leaves its group.
        """
        group, _ = self._source(queue)
        transport = self._transport
        transport.auto_delete.discard(queue)
        exchange = transport.fanout_of.pop(queue, None)
        transport.declared.discard(queue)
        # forget kombu's bindings of the queue too, so a new declare binds (and resets) again
        self.state.queue_bindings_delete(queue)
        table = self.state.exchanges.get(exchange, {}).get("table")
        if table:
            table[:] = [meta for meta in table if meta[-1] != queue]

        def delete() -> None:
            try:
                self.api.delete_group(group)
            except (CairnConnectionError, CairnError) as exc:
                logger.warning("cairn: cannot delete the group of auto-delete queue %s: %s", queue, exc)

        if fetcher is not None:
            # a fetch it sent just before it was stopped may make the group again: delete once
            # more when the thread ends (at once if it already has)
            fetcher.after_exit = delete
            if not fetcher.is_alive():
                fetcher.after_exit = None
        delete()  # also ends the fetcher's waiting fetch (the server answers it, empty)

    def _stop_fetcher(self, queue: str) -> None:
        fetcher = self._fetchers.pop(queue, None)
        if fetcher is not None:
            fetcher.stop()

    def _get(self, queue, timeout=None):
        self._ensure_queue(queue)
        group, topic = self._source(queue)
        got = self.api.fetch(group, topic, 1, 0, self.options.ack_timeout_ms, self._transport.consumer_id)
        if not got:
            raise stdqueue.Empty()
        return self._accept(group, topic, got[0], no_ack=False)

    def basic_get(self, queue, no_ack=False, **kwargs):
        try:
            payload = self._get(queue)
        except stdqueue.Empty:
            return None
        message = self.Message(payload, channel=self)
        if no_ack:
            self._settle(message.delivery_tag, "ack")
        else:
            self.qos.append(message, message.delivery_tag)
        return message

    def basic_ack(self, delivery_tag, multiple=False):
        self.qos.ack(delivery_tag)

    def _accept(self, group: str, topic: str, m: dict, no_ack: bool) -> dict:
        """Registers the lease of a fetched message; returns kombu's message dict."""
        payload = decode_message(m)
        lease = Lease(group, topic, m["partition"], m["offset"], owner=self, delivery=m.get("delivery"))
        with self._room:
            self._outstanding += 1
        transport = self._transport
        tag = transport.leases.add(lease)
        props = payload.setdefault("properties", {})
        props["delivery_tag"] = tag
        redelivered = m.get("delivery", 1) > 1
        props.setdefault("delivery_info", {})["redelivered"] = redelivered
        payload["redelivered"] = redelivered
        if no_ack:
            self._settle(tag, "ack")
        return payload

    def _hand_over(self, fetcher: Fetcher, got: list[dict]) -> None:
        """Gives fetched messages to the consuming thread, or releases them at once if the
        fetcher was stopped (cancel, close) while its fetch was waiting.

        Under ``_accepting``, which ``close`` takes to stop the fetchers: every lease accepted
        here is in the lease book before ``close`` releases the channel's leases.
        """
        with self._accepting:
            live = not (self.closed or fetcher.stopped.is_set())
            if live:
                payloads = [self._accept(fetcher.group, fetcher.topic, m, no_ack=fetcher.no_ack) for m in got]
                self._transport.put_inbox((self, fetcher.queue, payloads))
        if not live:
            self._release(fetcher.group, fetcher.topic, got)

    def _release(self, group: str, topic: str, got: list[dict]) -> None:
        """Nacks (no delay) messages fetched for nobody, sent now: not through the lease book,
        which the connection's close may already have shut."""
        if os.getpid() != self._pid:
            return
        refs = [Lease(group, topic, m["partition"], m["offset"], delivery=m.get("delivery")).ref() for m in got]
        try:
            self.api.settle("nack", group, topic, refs)
        except (CairnConnectionError, CairnError) as exc:
            logger.warning("cairn: cannot release %d messages of %s/%s (their lease will expire): %s",
                           len(refs), group, topic, exc)

    def _settle(self, delivery_tag, op: str) -> None:
        if os.getpid() != self._pid:  # a forked child: the parent owns these leases
            return
        self._transport.leases.settle(delivery_tag, op)

    def _on_settled(self) -> None:
        with self._room:
            self._outstanding -= 1
            if self._room_to_fetch(self._fetch_max) > 0:  # wake fetchers only when they would fetch
                self._room.notify_all()

    def _wake(self) -> None:
        with self._room:
            self._room.notify_all()

    def _room_to_fetch(self, most: int) -> int:
        """How many messages a fetch may ask for now (0: wait). Call with ``_room`` held.

        A fetch waits until half the prefetch window is free (or all of it for a window of
        one), so a busy worker makes one request per half window rather than one per ack,
        while the other half keeps it busy; with no limit it asks for ``most``.
        """
        limit = self.qos.prefetch_count
        if not limit:
            return most
        room = min(most, limit - self._outstanding)
        return room if room >= min(most, (limit + 1) // 2) else 0

    def _reserve(self, most: int, stopped: threading.Event) -> int:
        """Blocks until the prefetch window has room; reserves and returns up to ``most``."""
        with self._room:
            while not stopped.is_set() and not self.closed:
                room = self._room_to_fetch(most)
                if room > 0:
                    self._outstanding += room
                    return room
                # woken by settles and basic_qos; a second's timeout as a safety net
                self._room.wait(1.0)
        return 0

    def _unreserve(self, n: int) -> None:
        with self._room:
            self._outstanding -= n
            self._room.notify_all()

    def basic_qos(self, prefetch_size=0, prefetch_count=0, apply_global=False):
        super().basic_qos(prefetch_size, prefetch_count, apply_global)
        self._wake()

    def close(self):
        if self.closed:
            return
        with self._accepting:  # from here on, what a fetch still waiting gets is released at once
            for queue in list(self._fetchers):
                self._stop_fetcher(queue)
        if os.getpid() == self._pid and self.connection is not None:
            transport = self.connection
            for tag in transport.leases.tags_of(self):
                transport.leases.settle(tag, "nack")
            super().close()
            transport.leases.flush()
        else:
            self.closed = True


class Transport(virtual.Transport):
    """``cairn://[:token@]host[:port]`` -- and ``cairns://`` for HTTPS."""

    Channel = Channel

    default_port = DEFAULT_PORT
    driver_type = "cairn"
    driver_name = "cairn-kombu"
    polling_interval = None
    use_tls = False

    connection_errors = virtual.Transport.connection_errors + (CairnConnectionError, socket.error)
    channel_errors = virtual.Transport.channel_errors + (CairnError,)

    implements = virtual.Transport.implements.extend(
        asynchronous=False,  # per connection: option event_loop
        exchange_type=frozenset(["direct", "topic", "fanout"]),
        heartbeats=False,
    )

    def __init__(self, client, **kwargs):
        super().__init__(client, **kwargs)
        self.options = Options(client.transport_options)
        if self.options.event_loop:
            self.implements = self.implements.extend(asynchronous=True)
        self.inbox: stdqueue.Queue = stdqueue.Queue()  # (channel, queue, [payloads]) from fetchers
        self._wake_fds: tuple[int, int] | None = None  # pipe read by an event loop, once registered
        self._loop = None
        self.declared: set[str] = set()
        self.fanout_topics: set[str] = set()
        self.fanout_of: dict[str, str] = {}
        self.auto_delete: set[str] = set()  # queues declared auto_delete=True
        self.made_topic: set[str] = set()  # queues whose topic this process created
        self.consumer_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._pid = os.getpid()

    @cached_property
    def api(self) -> CairnClient:
        c = self.client
        if c.hostname and not _valid_host(c.hostname):
            raise ValueError(f"bad Cairn broker URL: host {c.hostname!r} (expected cairn://host:port)")
        scheme = "https" if (self.use_tls or c.ssl or (c.transport_cls or "").startswith("cairns")) else "http"
        host = c.hostname or "127.0.0.1"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        port = c.port or self.default_port
        token = self.options.token or c.password or None
        ssl = dict(self.options.ssl)
        if isinstance(c.ssl, dict):
            ssl.update(c.ssl)
        return CairnClient(
            f"{scheme}://{host}:{port}", token=token,
            connect_timeout=float(c.connect_timeout or 4.0), read_timeout=self.options.read_timeout,
            ssl_options=ssl if scheme == "https" else None,
        )

    @cached_property
    def leases(self) -> LeaseBook:
        return LeaseBook(self.api, self.options.ack_timeout_ms, on_settled=_owner_settled)

    @cached_property
    def bindings(self) -> BindingRegistry:
        return BindingRegistry(self.api)

    def establish_connection(self):
        self.api.health()  # fails fast and clearly: unreachable, or not a Cairn server
        return super().establish_connection()

    # -- delivering to the consuming thread --------------------------------------------------

    def put_inbox(self, item: tuple) -> None:
        """Called by fetcher threads: queues ``(channel, queue, [payloads])``, wakes the consumer."""
        self.inbox.put(item)
        self._signal()

    def _signal(self) -> None:
        fds = self._wake_fds
        if fds is not None:
            try:
                os.write(fds[1], b"\0")
            except (BlockingIOError, OSError):  # pipe full: the loop is already woken
                pass

    def drain_events(self, connection, timeout=None):
        """Blocking mode: waits until fetched messages are ready (or ``timeout``), delivers them."""
        try:
            item = self.inbox.get(timeout=None if timeout is None else max(timeout, 0))
        except stdqueue.Empty:
            raise socket.timeout() from None
        self._deliver_from(item)

    def _deliver_from(self, item: tuple | None) -> None:
        """Delivers ``item`` and whatever else is in the inbox, up to about DRAIN_BATCH_MAX."""
        delivered = 0
        while True:
            if item is not None:
                channel, queue, payloads = item
                if channel.closed:
                    for payload in payloads:
                        channel._settle(payload["properties"]["delivery_tag"], "nack")
                else:
                    for payload in payloads:
                        self._deliver(payload, queue)
                delivered += len(payloads)
            if delivered >= DRAIN_BATCH_MAX:
                if not self.inbox.empty():
                    self._signal()  # more: let the event loop run, then come back
                return
            try:
                item = self.inbox.get_nowait()
            except stdqueue.Empty:
                return

    def register_with_event_loop(self, connection, loop):
        """Event-loop mode (Celery's worker hub): fetchers write a byte to a pipe the loop reads.

        The loop's thread then delivers everything fetched, with no blocking call: Celery runs
        its non-blocking loop and pool (as for AMQP and Redis), not the threaded fallback.
        """
        if self._wake_fds is None:
            r, w = os.pipe()
            os.set_blocking(r, False)
            os.set_blocking(w, False)
            self._wake_fds = (r, w)
        self._loop = loop
        loop.add_reader(self._wake_fds[0], self._on_wake)
        if not self.inbox.empty():
            self._signal()

    def unregister_from_event_loop(self, connection, loop):
        if self._wake_fds is not None:
            loop.remove_reader(self._wake_fds[0])
        self._loop = None

    def _on_wake(self) -> None:
        fds = self._wake_fds
        if fds is None:
            return
        try:
            os.read(fds[0], 65536)
        except (BlockingIOError, OSError):
            pass
        self._deliver_from(None)

    def close_connection(self, connection):
        super().close_connection(connection)
        if os.getpid() == self._pid and "leases" in self.__dict__:
            self.leases.close()
        fds, self._wake_fds = self._wake_fds, None
        if fds is not None and os.getpid() == self._pid:
            if self._loop is not None:
                self._loop.remove_reader(fds[0])
                self._loop = None
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def driver_version(self):
        from . import __version__
        return __version__


class SSLTransport(Transport):
    """``cairns://``: the same transport over HTTPS."""

    use_tls = True


def _owner_settled(lease: Lease) -> None:
    owner = lease.owner
    if owner is not None:
        owner._on_settled()


def _valid_host(host: str) -> bool:
    return all(ch.isalnum() or ch in ".-_:[]%" for ch in host)
