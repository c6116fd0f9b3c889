"""The benchmark's Celery app: one no-op task; the broker URL comes from BENCH_BROKER_URL.

The worker itself says when the drain is over, the same way on every broker: the pool children
count executed tasks in one shared counter (made before the pool forks), and the child that runs
task number ``BENCH_N`` appends ``done <CLOCK_MONOTONIC>`` to ``BENCH_OUT``; the worker's
``worker_ready`` signal appends ``ready <CLOCK_MONOTONIC>``. Drain time = done - ready, so no
broker's message count (which some count before the ack, some after) enters the figure.
"""

import json
import multiprocessing
import os
import time

from celery import Celery, signals

try:  # registers cairn:// where the installed package has no .pth hook
    import cairn_kombu  # noqa: F401
except ImportError:
    pass

app = Celery("bench", broker=os.environ["BENCH_BROKER_URL"], set_as_current=False)
app.conf.update(
    task_ignore_result=True,
    # RabbitMQ: publisher confirms; BENCH_TRANSPORT_OPTIONS (JSON) adds options, e.g. {"event_loop": true}
    broker_transport_options={"confirm_publish": True, **json.loads(os.environ.get("BENCH_TRANSPORT_OPTIONS", "{}"))},
    task_default_queue="bench",
    worker_prefetch_multiplier=4,
    broker_connection_retry_on_startup=True,
)

N = int(os.environ.get("BENCH_N", "0"))
OUT = os.environ.get("BENCH_OUT", "")
_done = multiprocessing.Value("q", 0)  # created at import, before the pool forks: shared


def _note(what: str) -> None:
    if OUT:
        with open(OUT, "a") as f:
            f.write(f"{what} {time.monotonic():.6f}\n")


@signals.worker_ready.connect
def _ready(**_):
    _note("ready")


@app.task(name="bench.noop")
def noop():
    if N:
        with _done.get_lock():
            _done.value += 1
            last = _done.value == N
        if last:
            _note("done")
    return None
