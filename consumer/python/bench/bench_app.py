"""The benchmark's Celery app: one no-op task; the broker URL comes from BENCH_BROKER_URL."""

import os

import cairn_kombu  # noqa: F401  (registers cairn://)
from celery import Celery

app = Celery("bench", broker=os.environ["BENCH_BROKER_URL"], set_as_current=False)
app.conf.update(
    task_ignore_result=True,
    broker_transport_options={"confirm_publish": True},  # RabbitMQ: publisher confirms
    task_default_queue="bench",
    worker_prefetch_multiplier=4,
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench.noop")
def noop():
    return None
