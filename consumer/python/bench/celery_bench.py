"""tasks/s of 10,000 no-op Celery tasks on one broker: publish, then drain with 4 worker processes.

    python celery_bench.py BROKER_URL [N] [CONCURRENCY]

1. publish: one client thread calls ``noop.delay()`` N times (each publish waits for the
   broker: Cairn's produce reply after fsync; RabbitMQ publisher confirms on a durable queue with
   persistent messages; Redis with ``appendfsync always``);
2. drain: a ``celery worker -P prefork -c CONCURRENCY`` starts on the full queue; the time from
   its "ready" line until the queue's message count reaches 0 (polled every 10 ms).
Prints ``RESULT broker=... publish_tasks_per_s=... drain_tasks_per_s=...``.
"""

import faulthandler
import os
import re
import subprocess
import sys
import threading
import time

from kombu import Connection

faulthandler.dump_traceback_later(int(os.environ.get("BENCH_DUMP_S", "0")) or 10**6, exit=True)
HERE = os.path.dirname(os.path.abspath(__file__))
url = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
conc = int(sys.argv[3]) if len(sys.argv) > 3 else 4
os.environ["BENCH_BROKER_URL"] = url
sys.path.insert(0, HERE)
from bench_app import app, noop  # noqa: E402


def count():
    with Connection(url) as c:
        return c.default_channel.queue_declare("bench", passive=True).message_count


with app.connection_for_write() as conn:
    noop.apply_async(connection=conn)  # declares the queue; warms the connection
t0 = time.monotonic()
with app.producer_or_acquire() as producer:
    for _ in range(n - 1):
        noop.apply_async(producer=producer)
publish_s = time.monotonic() - t0
assert count() >= n - 1, count()

env = dict(os.environ, PYTHONPATH=HERE)
w = subprocess.Popen(
    [os.path.join(os.path.dirname(sys.executable), "celery"), "-A", "bench_app", "worker", "-P", "prefork",
     "-c", str(conc), "-Q", "bench", "--loglevel=INFO", "-n", f"bench{os.getpid()}@%h"],
    cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
)
ready = threading.Event()


def pump():  # keep reading: a full pipe would stall the worker's logging
    for line in w.stdout:
        if re.search(r"ready\.", line):
            ready.set()


threading.Thread(target=pump, daemon=True).start()
ready.wait(120)
t1 = time.monotonic()
with Connection(url) as c:
    ch = c.default_channel
    while True:
        try:
            if ch.queue_declare("bench", passive=True).message_count == 0:
                break
        except c.channel_errors:  # Redis drops an empty list: the queue "does not exist"
            break
        time.sleep(0.01)
drain_s = time.monotonic() - t1
w.terminate()
try:
    w.wait(30)
except subprocess.TimeoutExpired:
    pass
try:
    os.killpg(w.pid, 9)  # whatever is left of the worker and its pool
except ProcessLookupError:
    pass
scheme = url.split(":", 1)[0]
print(f"RESULT broker={scheme} tasks={n} concurrency={conc} publish_s={publish_s:.2f} "
      f"publish_tasks_per_s={(n - 1) / publish_s:.0f} drain_s={drain_s:.2f} drain_tasks_per_s={n / drain_s:.0f}")
