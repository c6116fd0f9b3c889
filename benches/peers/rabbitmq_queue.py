"""Queue work on RabbitMQ with pika (run by rabbitmq_queue.sh, which starts and stops the broker).

  python3 rabbitmq_queue.py publish   delete + declare the durable queue QUEUE of type QTYPE and publish N
                                      persistent (delivery_mode=2) messages of SIZE bytes with publisher
                                      confirms, WINDOW unconfirmed in flight; checks the queue holds N.
  python3 rabbitmq_queue.py consume   WORKERS consumer processes (separate processes: Python's GIL is not the
                                      limit), each with basic_qos(prefetch_count=BATCH) and manual acks: one
                                      basic_ack(multiple=True) per BATCH deliveries (the AMQP form of "fetch 100,
                                      ack 100"), until all N messages are acked. Prints RESULT and note lines.

Timing of the consume phase: from the first delivery (any worker) to the moment the worker that sent the last
ack has its connection close confirmed by the broker (a channel's frames are handled in order, so the acks
before the close have reached the channel; the queue must then report 0 messages: unacked deliveries of a
closed channel would be requeued). Workers connect and set their prefetch first and start consuming together.

Also measured over the consume phase: disk write and flush requests (/proc/diskstats, device DEV; a flush is
what an fsync/fdatasync of a file on ext4 with a write-back cache costs), CPU of the broker (utime+stime of
BEAM_PID from /proc/<pid>/stat) and of the consumer processes (os.times() in each), and how busy the machine was.
Env: PORT, QTYPE, QUEUE, N, SIZE, WINDOW, WORKERS, BATCH, NAME, DEV, BEAM_PID.
"""
import multiprocessing as mp
import os
import signal
import sys
import time

import pika

E = os.environ
PORT = int(E["PORT"])
QTYPE = E["QTYPE"]
QUEUE = E.get("QUEUE", "bench_queue_" + QTYPE)
N = int(E.get("N", "200000"))
SIZE = int(E.get("SIZE", "100"))
WINDOW = int(E.get("WINDOW", "1000"))
WORKERS = int(E.get("WORKERS", "4"))
BATCH = int(E.get("BATCH", "100"))
PARAMS = pika.ConnectionParameters("127.0.0.1", PORT, heartbeat=0)
TICK = os.sysconf("SC_CLK_TCK")


def queue_counts():
    """(ready messages, consumers) of QUEUE, from a passive declare."""
    bc = pika.BlockingConnection(PARAMS)
    try:
        q = bc.channel().queue_declare(QUEUE, durable=True, passive=True)
        return q.method.message_count, q.method.consumer_count
    finally:
        bc.close()


# ----------------------------------------------------------------------------------------------- publish


def publish():
    body = b"x" * SIZE
    props = pika.BasicProperties(delivery_mode=2)
    st = {"sent": 0, "settled": 0, "nacked": 0, "t0": None, "t1": None}
    ch = None

    def publish_more():
        while st["sent"] < N and st["sent"] - st["settled"] < WINDOW:
            ch.basic_publish("", QUEUE, body, props)
            st["sent"] += 1

    def on_confirm(frame):
        m = frame.method
        # one channel, one queue: the broker confirms in order, multiple=True settles every tag up to this one
        cnt = m.delivery_tag - st["settled"] if m.multiple else 1
        st["settled"] += cnt
        if isinstance(m, pika.spec.Basic.Nack):
            st["nacked"] += cnt
        if st["settled"] >= N:
            st["t1"] = time.perf_counter()
            conn.close()
            return
        publish_more()

    def on_declared(_):
        ch.confirm_delivery(on_confirm)
        st["t0"] = time.perf_counter()
        publish_more()

    def on_channel(c):
        nonlocal ch
        ch = c
        ch.queue_delete(QUEUE, callback=lambda _: ch.queue_declare(
            QUEUE, durable=True, arguments={"x-queue-type": QTYPE}, callback=on_declared))

    stop_syncs = count_syncs(E.get("BEAM_PID", ""))
    conn = pika.SelectConnection(PARAMS, on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
                                 on_open_error_callback=lambda c, e: sys.exit(f"connect: {e}"))
    conn.ioloop.call_later(170, lambda: (print("publish timeout", file=sys.stderr), conn.close()))
    conn.add_on_close_callback(lambda c, r: c.ioloop.stop())
    conn.ioloop.start()
    syncs = stop_syncs() if stop_syncs else None
    if st["t1"] is None:
        sys.exit(f"publish incomplete: sent {st['sent']}, confirmed {st['settled']}")
    if st["nacked"]:
        sys.exit(f"{st['nacked']} publishes nacked")
    ready, _ = queue_counts()
    if ready != N:
        sys.exit(f"queue holds {ready} after publishing {N}")
    dt = st["t1"] - st["t0"]
    print(f"note: published {N} x {SIZE} B persistent messages to a durable {QTYPE} queue with confirms "
          f"(window {WINDOW}) in {dt:.2f} s: {N / dt:,.0f} msgs/s (not part of the queue-work figure); "
          f"broker sync calls: {fmt_syncs(syncs)}", flush=True)


# ----------------------------------------------------------------------------------------------- consume


def worker(i, ready, acked_total, results):
    """One consumer process: prefetch BATCH, ack multiple every BATCH deliveries, until N are acked overall."""
    st = {"got": 0, "acks": 0, "unacked": 0, "tag": 0, "t_first": None, "t_last_ack": None, "t_last_msg": 0.0,
          "last_acker": False, "closing": False, "cpu0": None, "err": None}
    ch = None

    def ack():
        ch.basic_ack(st["tag"], multiple=True)
        st["acks"] += 1
        with acked_total.get_lock():
            acked_total.value += st["unacked"]
            total = acked_total.value
        st["unacked"] = 0
        st["t_last_ack"] = time.perf_counter()
        if total >= N:
            st["last_acker"] = True
            close()

    def close():
        if not st["closing"]:
            st["closing"] = True
            conn.close()

    def on_message(_ch, method, _props, _body):
        now = time.perf_counter()
        if st["t_first"] is None:
            st["t_first"] = now
        st["got"] += 1
        st["unacked"] += 1
        st["tag"] = method.delivery_tag
        st["t_last_msg"] = now
        if st["unacked"] >= BATCH:
            ack()

    def tick():
        # the tail: once fewer than WORKERS * BATCH messages are left unacked overall, a worker may hold fewer
        # than BATCH deliveries for good (N not a multiple of BATCH, or an uneven spread at the end): it acks them
        # after 20 ms without a delivery (before that, a short batch is always topped up by the broker, so every
        # ack covers BATCH messages even when a busy machine stalls a worker); stop once every message is acked
        if st["closing"]:
            return
        if (st["unacked"] and N - acked_total.value < WORKERS * BATCH
                and time.perf_counter() - st["t_last_msg"] > 0.02):
            ack()
        elif not st["unacked"] and acked_total.value >= N:
            close()
        if not st["closing"]:
            conn.ioloop.call_later(0.005, tick)

    def on_qos(_):
        ready.wait(60)  # every worker connected with its prefetch set; then all start consuming together
        st["cpu0"] = os.times()
        ch.basic_consume(QUEUE, on_message, auto_ack=False)
        conn.ioloop.call_later(0.005, tick)

    def on_channel(c):
        nonlocal ch
        ch = c
        ch.basic_qos(prefetch_count=BATCH, callback=on_qos)

    def on_closed(c, reason):
        st["t_closed"] = time.perf_counter()
        if not st["closing"]:
            st["err"] = f"connection closed early: {reason}"
        c.ioloop.stop()

    conn = pika.SelectConnection(PARAMS, on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
                                 on_open_error_callback=lambda c, e: sys.exit(f"worker {i} connect: {e}"))
    conn.add_on_close_callback(on_closed)
    conn.ioloop.call_later(170, lambda: (st.update(err="timeout"), st.update(closing=True), conn.close()))
    conn.ioloop.start()
    cpu1 = os.times()
    c0 = st["cpu0"] or cpu1
    results.put({"i": i, "got": st["got"], "acks": st["acks"], "t_first": st["t_first"], "t_last_ack": st["t_last_ack"],
                 "t_closed": st.get("t_closed"), "last_acker": st["last_acker"], "err": st["err"],
                 "cpu": (cpu1.user - c0.user) + (cpu1.system - c0.system)})


def disk(dev):
    """(write requests, flush requests) completed by block device dev (/proc/diskstats fields 8 and 19)."""
    with open("/proc/diskstats") as f:
        for line in f:
            p = line.split()
            if p[2] == dev:
                return int(p[7]), int(p[18]) if len(p) > 18 else 0
    return 0, 0


def proc_cpu(pid):
    """CPU seconds (utime + stime) of a process so far."""
    if not pid:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        p = f.read().rsplit(")", 1)[1].split()
    return (int(p[11]) + int(p[12])) / TICK


def machine_cpu():
    """(busy, total) jiffies of the whole machine (/proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)


SYNC_EVENTS = ("fsync", "fdatasync", "sync_file_range")


def count_syncs(pid, until=None):
    """Counts the broker's fsync-family system calls with `perf stat` on syscall tracepoints (per process, so
    other sessions' disk traffic does not count, unlike /proc/diskstats). With `until` (seconds) runs that long
    and returns {syscall: count}; otherwise returns a stop function that does. None when perf is unavailable."""
    import shutil
    import subprocess
    import tempfile
    if not pid or not shutil.which("perf"):
        return None
    out = tempfile.NamedTemporaryFile("r", suffix=".perf", delete=False)
    cmd = ["perf", "stat", "-x,", "-o", out.name, "-p", str(pid),
           "-e", ",".join(f"syscalls:sys_enter_{s}" for s in SYNC_EVENTS)]
    if until is not None:
        cmd += ["--", "sleep", str(until)]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop():
        if until is None:
            p.send_signal(signal.SIGINT)
        try:
            p.wait(10)
            counts = {}
            for line in open(out.name):
                f = line.strip().split(",")
                if len(f) > 2 and f[2].startswith("syscalls:sys_enter_") and f[0].isdigit():
                    counts[f[2].removeprefix("syscalls:sys_enter_")] = int(f[0])
            return counts if len(counts) == len(SYNC_EVENTS) else None
        finally:
            os.unlink(out.name)

    if until is not None:
        return stop()
    time.sleep(0.3)  # perf attached (it prints nothing to say so); the idle broker makes no syncs meanwhile
    return stop


def fmt_syncs(c):
    return "n/a (perf unavailable)" if c is None else " + ".join(f"{c[s]} {s}" for s in SYNC_EVENTS if c[s]) or "0"


def consume():
    dev, beam = E.get("DEV", "vda"), E.get("BEAM_PID", "")
    ctx = mp.get_context("fork")
    ready = ctx.Barrier(WORKERS + 1)
    acked_total = ctx.Value("q", 0)
    results = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(i, ready, acked_total, results), daemon=True) for i in range(WORKERS)]
    for p in procs:
        p.start()
    # baseline: what the idle broker writes in 1 s (consumers connected, not consuming yet)
    w0, f0 = disk(dev)
    idle_syncs = count_syncs(beam, until=1) if beam else time.sleep(1)
    w1, f1 = disk(dev)
    idle_w, idle_f = w1 - w0, f1 - f0
    stop_syncs = count_syncs(beam)
    b0, m0, (w0, f0) = proc_cpu(beam), machine_cpu(), disk(dev)
    t0 = time.perf_counter()
    ready.wait(60)
    res = [results.get(timeout=200) for _ in procs]
    t1 = time.perf_counter()
    b1, m1, (w1, f1) = proc_cpu(beam), machine_cpu(), disk(dev)
    syncs = stop_syncs() if stop_syncs else None
    for p in procs:
        p.join(10)
    errs = [f"worker {r['i']}: {r['err']}" for r in res if r["err"]]
    if errs:
        sys.exit("; ".join(errs))
    got = sum(r["got"] for r in res)
    ready_left, consumers = queue_counts()
    if got != N or ready_left != 0 or consumers != 0:
        sys.exit(f"{got} of {N} delivered; queue reports {ready_left} messages and {consumers} consumers after the run")
    pika.BlockingConnection(PARAMS).channel().queue_delete(QUEUE)

    start = min(r["t_first"] for r in res if r["t_first"] is not None)
    last = max((r for r in res if r["t_last_ack"] is not None), key=lambda r: r["t_last_ack"])
    secs = last["t_closed"] - start
    rate = N / secs
    cycles = N / BATCH
    wall = t1 - t0
    bcpu = b1 - b0
    ccpu = sum(r["cpu"] for r in res)
    busy = (m1[0] - m0[0]) / max(1, m1[1] - m0[1])
    ncpu = os.cpu_count() or 1
    per_worker_got = ", ".join(str(r["got"]) for r in sorted(res, key=lambda r: r["i"]))
    print(f"note: {QTYPE}: {N} msgs consumed by {WORKERS} workers (prefetch {BATCH}, ack multiple per {BATCH}; "
          f"{sum(r['acks'] for r in res)} acks) in {secs:.2f} s; per worker {per_worker_got}; "
          f"queue empty afterwards", flush=True)
    nsync = None if syncs is None else sum(syncs.values())
    per_ack = "" if nsync is None else f" = {nsync / cycles:.2f} per {BATCH}-message ack"
    print(f"note: {QTYPE}: broker sync calls during the consume phase (perf, beam.smp only): {fmt_syncs(syncs)}"
          f"{per_ack}; idle broker: {fmt_syncs(idle_syncs)} in 1 s", flush=True)
    print(f"note: {QTYPE}: {w1 - w0} disk write requests and {f1 - f0} flushes on {dev} during the consume phase "
          f"({(w1 - w0) / cycles:.2f} writes and {(f1 - f0) / cycles:.2f} flushes per {BATCH}-message ack; whole "
          f"machine, other sessions included: {idle_w} writes and {idle_f} flushes in 1 s just before)", flush=True)
    per_worker = ", ".join(f"{100 * r['cpu'] / wall:.0f}%" for r in sorted(res, key=lambda r: r["i"]))
    limit = "the broker" if bcpu > ccpu else "the Python consumers"
    print(f"note: {QTYPE}: CPU over the consume phase ({wall:.2f} s wall, {ncpu} cores): broker beam.smp "
          f"{100 * bcpu / wall:.0f}% of a core ({1e6 * bcpu / N:.1f} us/msg); consumers {100 * ccpu / wall:.0f}% "
          f"in all ({per_worker}; {1e6 * ccpu / N:.1f} us/msg); machine {100 * busy:.0f}% busy. "
          f"{'CPU-bound' if busy > 0.85 else 'not CPU-saturated'} ({100 * (bcpu + ccpu) / (busy * ncpu * wall):.0f}% "
          f"of the busy CPU was ours, the rest other processes): {limit} used more CPU", flush=True)
    print(f"RESULT name={E.get('NAME', f'rabbitmq_queue_{QTYPE}_{WORKERS}w')} value={rate:.0f} unit=msgs/s", flush=True)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the daemon consumer processes are stopped too
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "publish":
        publish()
    elif mode == "consume":
        consume()
    else:
        sys.exit("usage: rabbitmq_queue.py publish|consume")
