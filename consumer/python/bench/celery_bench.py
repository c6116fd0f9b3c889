"""tasks/s of N no-op Celery tasks on one broker: publish, then drain with C worker processes.

    python celery_bench.py BROKER_URL [N] [CONCURRENCY] [LABEL]

1. publish: one client thread calls ``noop.apply_async()`` N times on one producer (each
   publish waits for the broker's acknowledgement: Cairn's produce reply after fsync; RabbitMQ's
   publisher confirm on a durable queue with persistent messages; Redis's reply, after the AOF
   fsync with ``appendfsync always``), then checks the queue holds the N tasks;
2. drain: one ``celery worker -P prefork -c C`` starts on the full queue; the worker notes the
   monotonic time of its ``worker_ready`` signal and the pool child that executes task number N
   notes its own (``bench_app.py``); drain = the difference. CPU seconds (``/proc/PID/stat``)
   of the worker's main process, of its pool children and of the broker (``BENCH_BROKER_PID``)
   over the drain are printed per task: unlike tasks/s, they hardly depend on what else the
   machine is running.

Prints ``RESULT broker=LABEL ... publish_tasks_per_s=... drain_tasks_per_s=...``. With
``BENCH_PROFILE=DIR`` the worker's main process is sampled by ``py-spy`` (if installed) for the
drain, into ``DIR/LABEL.txt``.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from kombu import Connection

HERE = os.path.dirname(os.path.abspath(__file__))
url = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
conc = int(sys.argv[3]) if len(sys.argv) > 3 else 4
label = sys.argv[4] if len(sys.argv) > 4 else url.split(":", 1)[0]
os.environ["BENCH_BROKER_URL"] = url
sys.path.insert(0, HERE)
from bench_app import app, noop  # noqa: E402


def count() -> int:
    with Connection(url) as c:
        return c.default_channel.queue_declare("bench", passive=True).message_count


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) so far; 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def wait_for_line(path: str, word: str, timeout: float, proc: subprocess.Popen) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(word + " "):
                        return float(line.split()[1])
        except FileNotFoundError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"{label}: the worker exited ({proc.returncode}) before {word!r}")
        time.sleep(0.01)
    raise SystemExit(f"{label}: no {word!r} from the worker within {timeout:.0f}s")


# publish: the queue is declared and the connection warmed by the first task, which is counted
with app.connection_for_write() as conn:
    noop.apply_async(connection=conn)
t0 = time.monotonic()
with app.producer_or_acquire() as producer:
    for _ in range(n - 1):
        noop.apply_async(producer=producer)
publish_s = time.monotonic() - t0
queued = count()
if queued != n:
    raise SystemExit(f"{label}: {queued} tasks queued after publishing {n}")

# drain
work = tempfile.mkdtemp(prefix="celery-bench-")
out = os.path.join(work, "marks")
env = dict(os.environ, PYTHONPATH=HERE, BENCH_N=str(n), BENCH_OUT=out)
log = open(os.path.join(work, "worker.log"), "w")
w = subprocess.Popen(
    [os.path.join(os.path.dirname(sys.executable), "celery"), "-A", "bench_app", "worker", "-P", "prefork",
     "-c", str(conc), "-Q", "bench", "--loglevel=WARNING", "-n", f"bench{os.getpid()}@%h"],
    cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
)
spy = None
try:
    ready = wait_for_line(out, "ready", 120, w)
    pool = children(w.pid)
    broker_pid = int(os.environ.get("BENCH_BROKER_PID", "0"))
    cpu0 = (cpu_s(w.pid), sum(cpu_s(p) for p in pool), cpu_s(broker_pid) if broker_pid else 0.0)
    prof_dir = os.environ.get("BENCH_PROFILE")
    if prof_dir and shutil.which("py-spy"):
        os.makedirs(prof_dir, exist_ok=True)
        spy = subprocess.Popen(["py-spy", "record", "-p", str(w.pid), "-r", "200", "-f", "raw", "--threads",
                                "-o", os.path.join(prof_dir, f"{label}.txt")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = wait_for_line(out, "done", 600, w)
    drain_s = done - ready
    cpu1 = (cpu_s(w.pid), sum(cpu_s(p) for p in pool), cpu_s(broker_pid) if broker_pid else 0.0)
    cpu_ms = [(b - a) * 1000 / n for a, b in zip(cpu0, cpu1)]
finally:
    if spy is not None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file and exits
        spy.wait(30)
    w.terminate()
    try:
        w.wait(30)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(w.pid, 9)  # whatever is left of the worker and its pool
    except ProcessLookupError:
        pass
    log.close()
    if os.environ.get("BENCH_KEEP"):
        print(f"note: worker log in {work}", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)
print(f"RESULT broker={label} tasks={n} concurrency={conc} publish_s={publish_s:.2f} "
      f"publish_tasks_per_s={(n - 1) / publish_s:.0f} drain_s={drain_s:.2f} drain_tasks_per_s={n / drain_s:.0f} "
      f"cpu_ms_per_task_worker={cpu_ms[0]:.3f} cpu_ms_per_task_pool={cpu_ms[1]:.3f} "
      f"cpu_ms_per_task_broker={cpu_ms[2]:.3f}")
