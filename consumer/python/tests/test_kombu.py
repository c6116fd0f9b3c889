"""The transport through kombu's own API: round trip, counts, purge, acks, rejects, fan-out."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from kombu import Connection, Consumer, Exchange, Producer, Queue
from kombu.exceptions import OperationalError

import cairn_kombu  # noqa: F401
from cairn_kombu.client import CairnConnectionError
from cairn_kombu.names import cairn_name


def qname(prefix="q"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def http_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def test_names_are_valid_and_distinct():
    assert cairn_name("celery") == "celery"
    a, b = cairn_name("celery@host.celery.pidbox"), cairn_name("celery#host.celery.pidbox")
    assert a != b and a.startswith("celery_host.celery.pidbox-")
    assert not cairn_name("__x").startswith("__")
    assert len(cairn_name("x" * 400)) <= 249


def test_round_trip_is_exact(cairnd):
    q = Queue(qname(), Exchange("ex-" + uuid.uuid4().hex[:6], "direct"), routing_key="rk")
    body = bytes(range(256)) * 4
    with Connection(cairnd.url) as conn:
        producer = Producer(conn.channel())
        producer.publish(
            body, exchange=q.exchange, routing_key="rk", declare=[q],
            content_type="application/x-raw", content_encoding="binary",
            headers={"h": "v", "big": 2**70, "nested": {"a": [1, 2.5, None]}},
            priority=3, correlation_id="cid-1", reply_to="somewhere",
        )
        got = []
        with Consumer(conn, [q], callbacks=[lambda b, m: got.append(m)], accept=None):
            conn.drain_events(timeout=10)
        (m,) = got
        assert m.body == body
        assert m.headers == {"h": "v", "big": 2**70, "nested": {"a": [1, 2.5, None]}}
        assert m.content_type == "application/x-raw"
        assert m.properties["correlation_id"] == "cid-1"
        assert m.properties["reply_to"] == "somewhere"
        assert m.delivery_info["routing_key"] == "rk"
        assert m.delivery_info["redelivered"] is False
        m.ack()


def test_message_count_and_purge(cairnd):
    q = qname("count")
    with Connection(cairnd.url) as conn:
        sq = conn.SimpleQueue(q)
        for i in range(7):
            sq.put({"i": i})
        ch = conn.channel()
        assert ch.queue_declare(q, passive=True).message_count == 7
        first = ch.basic_get(q)
        assert first.payload == {"i": 0}
        first.ack()
        ch.connection.leases.flush()
        assert ch.queue_declare(q, passive=True).message_count == 6
        assert ch.queue_purge(q) == 6
        assert ch.queue_declare(q, passive=True).message_count == 0
        assert ch.basic_get(q) is None
        sq.put({"after": True})
        assert ch.basic_get(q, no_ack=True).payload == {"after": True}
        sq.close()


def test_passive_declare_of_missing_queue_fails(cairnd):
    with Connection(cairnd.url) as conn:
        with pytest.raises(conn.channel_errors):
            conn.channel().queue_declare(qname("missing"), passive=True)


def test_requeue_redelivers_and_reject_dead_letters(cairnd):
    q = qname("rej")
    with Connection(cairnd.url) as conn:
        sq = conn.SimpleQueue(q)
        sq.put("poison")
        m = sq.get(timeout=5)
        m.requeue()
        m2 = sq.get(timeout=5)
        assert m2.payload == "poison" and m2.delivery_info["redelivered"]
        m2.reject()
        conn.default_channel.connection.leases.flush()
        dlq = http_json(f"{cairnd.http}/v1/topics/{q}.dlq/partitions/0/messages")
        (dead,) = dlq["messages"]
        assert dead["headers"]["cairn-origin-topic"] == q
        assert dead["value"]["body"]  # kombu's whole message is dead-lettered
        assert sq.qsize() == 0
        sq.close()


def test_competing_consumers_share_a_queue(cairnd):
    q = qname("share")
    n = 200
    with Connection(cairnd.url) as producer_conn:
        sq = producer_conn.SimpleQueue(q)
        for i in range(n):
            sq.put(i)
        sq.close()
    seen: list[int] = []
    lock = threading.Lock()

    def consume():
        with Connection(cairnd.url) as conn:
            sq = conn.SimpleQueue(q)
            while True:
                try:
                    m = sq.get(timeout=1.5)
                except sq.Empty:
                    break
                with lock:
                    seen.append(m.payload)
                m.ack()
            sq.close()

    threads = [threading.Thread(target=consume) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(seen) == list(range(n))  # each message to exactly one consumer


def test_unacked_message_goes_to_another_consumer_after_its_lease(cairnd):
    q = qname("lease")
    opts = {"visibility_timeout": 1}
    a = Connection(cairnd.url, transport_options=opts)
    sq = a.SimpleQueue(q)
    sq.put("job")
    first = sq.get(timeout=5)
    assert first.payload == "job"
    # "a" dies: nothing extends its lease any more and it fetches no more (its keeper and its
    # fetcher stop; nothing is released). With its fetcher still polling, "a" itself could take
    # the redelivery, again and again, racing "b" for it.
    channel = a.default_channel
    channel.connection.leases._stop.set()
    for fetcher in list(channel._fetchers.values()):
        fetcher.stop()
    with Connection(cairnd.url, transport_options=opts) as b:
        sb = b.SimpleQueue(q)
        again = sb.get(timeout=10)
        assert again.payload == "job" and again.delivery_info["redelivered"]
        again.ack()
        sb.close()


def test_held_messages_are_extended_past_the_visibility_timeout(cairnd):
    q = qname("extend")
    opts = {"visibility_timeout": 1}
    with Connection(cairnd.url, transport_options=opts) as a, Connection(cairnd.url, transport_options=opts) as b:
        sa = a.SimpleQueue(q)
        sa.put("long job")
        held = sa.get(timeout=5)
        sb = b.SimpleQueue(q)
        with pytest.raises(sb.Empty):
            sb.get(timeout=3.5)  # three lease periods: still held by "a"
        held.ack()
        sa.close()
        sb.close()


def test_fanout_reaches_every_bound_queue(cairnd):
    ex = Exchange("bcast-" + uuid.uuid4().hex[:6], "fanout")
    q1, q2 = Queue(qname("f1"), ex), Queue(qname("f2"), ex)
    with Connection(cairnd.url) as c1, Connection(cairnd.url) as c2, Connection(cairnd.url) as pub:
        got1, got2 = [], []
        with Consumer(c1, [q1], callbacks=[lambda b, m: (got1.append(b), m.ack())]), \
                Consumer(c2, [q2], callbacks=[lambda b, m: (got2.append(b), m.ack())]):
            Producer(pub.channel()).publish({"hello": "all"}, exchange=ex, declare=[ex])
            c1.drain_events(timeout=10)
            c2.drain_events(timeout=10)
        assert got1 == [{"hello": "all"}] and got2 == [{"hello": "all"}]
    # the exchange's topic is bounded by fanout_retention_seconds (default an hour)
    assert http_json(f"{cairnd.http}/v1/topics/kombu.fanout.{ex.name}")["config"]["retention_ms"] == 3_600_000


def test_direct_binding_made_by_another_process_routes(cairnd):
    """Like Celery's remote-control replies: the publisher never saw the binding."""
    ex_name = "reply-" + uuid.uuid4().hex[:6]
    q = Queue(qname("reply"), Exchange(ex_name, "direct"), routing_key="ticket-1")
    with Connection(cairnd.url) as listener, Connection(cairnd.url) as replier:
        got = []
        with Consumer(listener, [q], callbacks=[lambda b, m: (got.append(b), m.ack())]):
            Producer(replier.channel()).publish(
                "pong", exchange=Exchange(ex_name, "direct"), routing_key="ticket-1",
                declare=[Exchange(ex_name, "direct")],
            )
            listener.drain_events(timeout=10)
        assert got == ["pong"]


def test_unreachable_server_fails_fast_and_clearly():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    t0 = time.monotonic()
    conn = Connection(f"cairn://127.0.0.1:{port}", connect_timeout=2)
    with pytest.raises(OperationalError) as err:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0.1)
    assert time.monotonic() - t0 < 10
    assert f"127.0.0.1:{port}" in str(err.value) and "cannot reach Cairn" in str(err.value)
    assert issubclass(CairnConnectionError, tuple(conn.connection_errors))


def test_bad_urls_fail_clearly():
    with pytest.raises(ValueError, match="Port could not be cast"):
        Connection("cairn://127.0.0.1:notaport").connect()
    with pytest.raises(Exception, match="bad Cairn broker URL"):
        Connection("cairn://bad host:7420").ensure_connection(max_retries=1)


def test_a_server_that_is_not_cairn_is_named():
    class NotCairn(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(404)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = HTTPServer(("127.0.0.1", 0), NotCairn)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        conn = Connection(f"cairn://127.0.0.1:{srv.server_port}")
        with pytest.raises(OperationalError, match="does not look like a Cairn server"):
            conn.ensure_connection(max_retries=1)
    finally:
        srv.shutdown()


def test_token_is_sent_as_bearer():
    seen = []

    class Capture(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            body = b'{"status":"ok"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = HTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        with Connection(f"cairn://:s3cret@127.0.0.1:{srv.server_port}") as conn:
            conn.ensure_connection(max_retries=1)
        with Connection(f"cairn://127.0.0.1:{srv.server_port}", transport_options={"token": "t2"}) as conn:
            conn.ensure_connection(max_retries=1)
    finally:
        srv.shutdown()
    assert seen == ["Bearer s3cret", "Bearer t2"]


def test_event_loop_mode_delivers_and_honours_prefetch(cairnd):
    """Option event_loop (Celery's hub): the transport wakes the hub through its pipe; fetches never take
    more than the prefetch window (the server's in-flight count says how many were leased)."""
    from kombu.asynchronous import Hub

    q = qname("loop")
    with Connection(cairnd.url) as pub:
        sq = pub.SimpleQueue(q)
        for i in range(10):
            sq.put(i)
        sq.close()
    offsets = f"{cairnd.http}/v1/groups/kombu.{q}/offsets?topic={q}"
    got = []
    hub = Hub()
    try:
        with Connection(cairnd.url, transport_options={"event_loop": True}) as conn:
            assert conn.transport.implements.asynchronous
            ch = conn.channel()
            ch.basic_qos(0, 4, False)
            with Consumer(ch, [Queue(q)], callbacks=[lambda b, m: got.append(m)], accept=["json"]):
                conn.transport.register_with_event_loop(conn.connection, hub)
                loop = hub.create_loop()

                def run_until(cond, what):
                    deadline = time.monotonic() + 20
                    while not cond():
                        assert time.monotonic() < deadline, f"timed out waiting for {what}"
                        next(loop)

                run_until(lambda: len(got) == 4, "4 messages")
                assert [m.payload for m in got] == [0, 1, 2, 3]
                assert sum(o["in_flight"] for o in http_json(offsets)["offsets"]) == 4
                got[0].ack()
                got[1].ack()  # half the window free: the next fetch takes two
                run_until(lambda: len(got) == 6, "2 more once two are acked")
                conn.transport.leases.flush()
                assert sum(o["in_flight"] for o in http_json(offsets)["offsets"]) == 4
                for m in got[2:]:
                    m.ack()
                run_until(lambda: len(got) == 10, "the rest")
                assert [m.payload for m in got] == list(range(10))
                for m in got[6:]:
                    m.ack()
                conn.transport.unregister_from_event_loop(conn.connection, hub)
    finally:
        hub.close()


def test_acks_are_batched(cairnd):
    """Acks queued while an ack request is in flight go out together in the next request."""
    q = qname("batch")
    with Connection(cairnd.url) as conn:
        sq = conn.SimpleQueue(q)
        for i in range(50):
            sq.put(i)
        got = [sq.get(timeout=10) for _ in range(50)]
        client = conn.default_channel.api
        calls: list[tuple[str, int]] = []
        release = threading.Event()
        real_settle = client.settle

        def settle(op, group, topic, refs, **extra):
            calls.append((op, len(refs)))
            release.wait(10)  # the first request "is in flight" until every ack is queued
            return real_settle(op, group, topic, refs, **extra)

        client.settle = settle
        try:
            for m in got:
                m.ack()
            release.set()
            assert conn.default_channel.connection.leases.flush(10)
        finally:
            client.settle = real_settle
        # whatever the first request took, everything queued behind it went in one more
        assert len(calls) <= 2 and {op for op, _ in calls} == {"ack"} and sum(n for _, n in calls) == 50, calls
        assert sq.qsize() == 0
        sq.close()


def test_values_of_other_clients_are_readable(cairnd):
    """A topic written by plain HTTP producers: raw bytes arrive as they are, a JSON value as
    its JSON text (content type application/json)."""
    q = qname("foreign")
    with Connection(cairnd.url) as conn:
        ch = conn.channel()
        ch.queue_declare(q)
        for value in (b"\xff\x00raw bytes", b'{"not": "kombu", "n": 1}'):
            req = urllib.request.Request(f"{cairnd.http}/v1/topics/{q}/messages", data=value, method="POST",
                                         headers={"Content-Type": "application/octet-stream"})
            with urllib.request.urlopen(req, timeout=10) as r:
                assert r.status in (200, 201)
        raw = ch.basic_get(q, no_ack=True)
        assert raw.body == b"\xff\x00raw bytes" and raw.content_type == "application/data"
        js = ch.basic_get(q, no_ack=True)
        assert js.content_type == "application/json" and json.loads(js.body) == {"not": "kombu", "n": 1}


def test_auto_delete_fanout_queue_drops_its_group_when_its_consumer_goes(cairnd):
    """Celery's gossip and pidbox queues: one group per process would pile up otherwise."""
    ex = Exchange("ev-" + uuid.uuid4().hex[:6], "fanout")
    temp, kept = Queue(qname("tmp"), ex, auto_delete=True), Queue(qname("kept"), ex)

    def group_status(q):
        try:
            with urllib.request.urlopen(f"{cairnd.http}/v1/groups/kombu.{q.name}", timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    with Connection(cairnd.url) as conn:
        with Consumer(conn, [temp, kept], callbacks=[lambda b, m: m.ack()]):
            assert group_status(temp) == 200 and group_status(kept) == 200
            # a fan-out bound queue reads the exchange's topic: no topic of its own is left
            for q in (temp, kept):
                with pytest.raises(urllib.error.HTTPError, match="404"):
                    http_json(f"{cairnd.http}/v1/topics/{q.name}")
        assert group_status(temp) == 404  # cancelled: gone
        assert group_status(kept) == 200  # not auto-delete: stays
        # declared and consumed again, it works as before
        got = []
        with Consumer(conn, [temp], callbacks=[lambda b, m: (got.append(b), m.ack())]):
            Producer(conn.channel()).publish("again", exchange=ex, declare=[ex])
            conn.drain_events(timeout=10)
        assert got == ["again"]


def test_a_closed_connection_leaves_the_next_message_to_the_next_connection(cairnd):
    """Two connections one after the other on one queue: the first one's fetcher, whose long
    poll is still waiting after close, must not keep the second message leased."""
    q = qname("reopen")
    for i in range(3):
        with Connection(cairnd.url) as conn:
            sq = conn.SimpleQueue(q)
            sq.put(f"job {i}")
            m = sq.get(timeout=10)
            assert m.payload == f"job {i}"
            m.ack()
            sq.close()


def test_closing_releases_fetched_and_unacked_messages_at_once(cairnd):
    q = qname("release")
    with Connection(cairnd.url) as a:
        sa = a.SimpleQueue(q)
        for i in range(3):
            sa.put(f"job {i}")
        held = sa.get(timeout=10)  # delivered, never acked; the others prefetched, never delivered
        assert held.payload == "job 0"
        sa.close()
    with Connection(cairnd.url) as b:
        sb = b.SimpleQueue(q)
        got = sorted(sb.get(timeout=5).payload for _ in range(3))
        assert got == ["job 0", "job 1", "job 2"]
        sb.close()
