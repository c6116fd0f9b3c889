"""The Celery app the tests run: an ordinary app whose broker URL is ``cairn://``.

Workers load it with ``celery -A celery_app worker`` (configuration from the environment); the
tests build the same app in-process with :func:`make_app` to send tasks. Results go to Celery's
filesystem backend (works across processes, no extra service). Tasks that must be counted
(retries, ETA, kills) append a line to a file under ``CAIRN_MARKS_DIR``.
"""

from __future__ import annotations

import os
import time

import cairn_kombu  # noqa: F401  (registers cairn://)
from celery import Celery


def make_app(broker_url: str, results_dir: str, marks_dir: str, visibility_timeout: float = 2.0) -> Celery:
    app = Celery("cairntest", broker=broker_url, backend=f"file://{results_dir}", set_as_current=False)
    app.conf.update(
        broker_transport_options={"visibility_timeout": visibility_timeout, "wait_time_seconds": 5},
        broker_connection_retry_on_startup=True,
        worker_prefetch_multiplier=4,
        result_expires=None,
        task_default_retry_delay=0.2,
        worker_hijack_root_logger=True,
    )
    app.conf.marks_dir = marks_dir

    def mark(key: str, text: str) -> None:
        with open(os.path.join(marks_dir, key), "a") as f:
            f.write(f"{text}\n")

    def marks(key: str) -> list[str]:
        try:
            with open(os.path.join(marks_dir, key)) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    @app.task(name="t.add", shared=False)
    def add(x, y):
        return x + y

    @app.task(name="t.echo", shared=False)
    def echo(value):
        return value

    @app.task(name="t.mark", shared=False)
    def mark_task(key):
        mark(key, f"{os.getpid()} {time.time():.3f}")
        return key

    @app.task(name="t.flaky", bind=True, max_retries=5, shared=False)
    def flaky(self, key, failures):
        """Fails ``failures`` times (retrying itself), then succeeds; returns the attempts."""
        mark(key, str(self.request.retries))
        attempts = len(marks(key))
        if attempts <= failures:
            raise self.retry(countdown=0.2)
        return attempts

    @app.task(name="t.slow", acks_late=True, shared=False)
    def slow(key, seconds):
        """Marks ``started <pid>``, works ``seconds``, marks ``done <pid>``."""
        mark(key, f"started {os.getpid()}")
        time.sleep(seconds)  # the work itself
        mark(key, f"done {os.getpid()}")
        return key

    return app


app = make_app(
    os.environ.get("CAIRN_BROKER_URL", "cairn://127.0.0.1:7420"),
    os.environ.get("CAIRN_RESULTS_DIR", "/tmp/cairn-celery-results"),
    os.environ.get("CAIRN_MARKS_DIR", "/tmp/cairn-celery-marks"),
    float(os.environ.get("CAIRN_VISIBILITY_TIMEOUT", "2")),
)
