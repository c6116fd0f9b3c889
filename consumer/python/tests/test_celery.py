"""Real ``celery worker`` processes (prefork pool, -c 2) against a real ``cairnd``."""

from __future__ import annotations

import socket
import time
import uuid

import pytest
from celery.result import ResultSet
from kombu.exceptions import OperationalError

from celery_app import make_app
from conftest import Workers, wait_until


def marks(workers: Workers, key: str) -> list[str]:
    try:
        return (workers.marks / key).read_text().splitlines()
    except FileNotFoundError:
        return []


def client_app(workers: Workers, **kw):
    return make_app(workers.broker_url, str(workers.results), str(workers.marks), **kw)


@pytest.fixture
def workers(cairnd, workdir):
    w = Workers(cairnd.url, workdir)
    yield w
    w.stop_all()


def test_hundreds_of_tasks_round_trip_with_results(workers):
    workers.start()
    workers.start()
    app = client_app(workers)
    n = 300
    t0 = time.monotonic()
    results = ResultSet([app.tasks["t.add"].delay(i, i) for i in range(n)])
    values = results.join(timeout=90, interval=0.05)
    assert values == [2 * i for i in range(n)]
    exotic = {"text": "naïve ☃ \u0000 end", "big": 2**70, "nested": [1, 2.5, None, {"k": "v"}]}
    assert app.tasks["t.echo"].delay(exotic).get(timeout=30, interval=0.05) == exotic
    print(f"{n} tasks round-tripped in {time.monotonic() - t0:.2f}s")


def test_self_retry_retries_until_success(workers):
    workers.start()
    app = client_app(workers)
    key = f"flaky-{uuid.uuid4().hex[:6]}"
    assert app.tasks["t.flaky"].delay(key, 2).get(timeout=60, interval=0.05) == 3
    assert marks(workers, key) == ["0", "1", "2"]


def test_eta_longer_than_visibility_timeout_runs_exactly_once(workers):
    """visibility_timeout 2 s, countdown 6 s: the worker keeps the lease alive while it waits."""
    workers.start()
    workers.start()
    app = client_app(workers)
    key = f"eta-{uuid.uuid4().hex[:6]}"
    sent = time.time()
    app.tasks["t.mark"].apply_async((key,), countdown=6)
    wait_until(lambda: marks(workers, key), 40, "the ETA task to run")
    ran_at = float(marks(workers, key)[0].split()[1])
    assert ran_at >= sent + 5.9
    # three more lease periods: a redelivered copy would have run by now
    deadline = time.monotonic() + 7
    while time.monotonic() < deadline:
        assert len(marks(workers, key)) == 1, marks(workers, key)
        time.sleep(0.2)


def test_worker_killed_mid_task_is_finished_by_another_worker(workers):
    first = workers.start()
    app = client_app(workers)
    key = f"kill-{uuid.uuid4().hex[:6]}"
    app.tasks["t.slow"].delay(key, 3)
    wait_until(lambda: marks(workers, key), 30, "the task to start on the first worker")
    first.kill()  # SIGKILL to the worker and its pool children, mid-task
    assert not any(line.startswith("done") for line in marks(workers, key))
    workers.start()
    wait_until(lambda: any(line.startswith("done") for line in marks(workers, key)), 60,
               "another worker to finish the task")
    lines = marks(workers, key)
    assert lines[0].startswith("started") and lines[-1].startswith("done")
    assert lines[0].split()[1] != lines[-1].split()[1]  # a different process finished it


def test_queued_tasks_survive_sigkill_of_cairnd(own_cairnd, workdir):
    workers = Workers(own_cairnd.url, workdir)
    app = client_app(workers)
    keys = [f"dur-{i}-{uuid.uuid4().hex[:4]}" for i in range(20)]
    for k in keys:
        app.tasks["t.mark"].delay(k)  # acknowledged by the server: fsynced
    own_cairnd.kill()  # SIGKILL, no clean shutdown
    own_cairnd.start()  # same data dir and port
    try:
        workers.start()
        wait_until(lambda: all(marks(workers, k) for k in keys), 60, "every queued task to run")
    finally:
        workers.stop_all()


def test_celery_inspect_ping_answers(workers):
    w = workers.start()
    name = w.wait_for(r"(w\d+-\d+@\S+) ready\.").group(1)
    out = workers.celery("inspect", "ping", "--timeout", "10", "-d", name)  # answers as soon as it replies
    assert out.returncode == 0, out.stdout + out.stderr
    assert "pong" in out.stdout and name in out.stdout, out.stdout
    # and in-process, through the app's control API (twice: the reply binding is reused)
    app = client_app(workers)
    for _ in range(2):
        replies = app.control.ping(destination=[name], timeout=10)
        assert any(name in r for r in replies), replies


def test_unreachable_broker_is_a_clear_error_not_a_hang(workdir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workers = Workers(f"cairn://127.0.0.1:{port}", workdir)
    app = client_app(workers)
    app.conf.broker_transport_options = {"visibility_timeout": 2}
    t0 = time.monotonic()
    with pytest.raises(OperationalError, match="cannot reach Cairn"):
        app.tasks["t.add"].apply_async((1, 2), retry_policy={"max_retries": 1, "interval_start": 0})
    assert time.monotonic() - t0 < 15
    w = workers.start(ready=False)
    try:
        w.wait_for(rf"Cannot connect to cairn://.*127\.0\.0\.1:{port}.*cannot reach Cairn", timeout=30)
    finally:
        w.kill()
