#!/bin/bash
# Queue work on RabbitMQ, the consumer side of the "queue work" comparison (issue 8): the Celery shape, as Cairn's
# e2e `queue` scenario (4 workers loop fetch 100 + ack) and Redis XREADGROUP COUNT 100 + XACK measure it.
#
# Starts RabbitMQ the way ../../../shared/peers/rabbitmq.sh does (Debian rabbitmq-server 3.10 on Erlang/OTP 25; one
# node on 127.0.0.1 with its own node name, ports, config, cookie (HOME), Mnesia and log dirs in a fresh temp dir; no
# systemd: the broker runs as our child and is stopped by its PID, then the epmd it spawned on our own port), but on
# other ports, so the two scripts can run side by side. Then for each queue type in QTYPES, with rabbitmq_queue.py:
#   1. declares a durable queue and publishes N persistent (delivery_mode=2) messages of 100 B with publisher
#      confirms (WINDOW in flight); timed separately, reported as a note only;
#   2. WORKERS consumer processes (separate processes, so Python's GIL is not the limit), each with
#      basic_qos(prefetch_count=100) and manual acks, one basic_ack(multiple=True) per 100 deliveries (the AMQP form
#      of "fetch 100, ack 100"), consume until all N are acked; messages/s from the first delivery to the last ack
#      (the close of the last acker's connection, so its acks have reached the broker); the queue must be empty.
# What an ack means (checked with perf counting beam.smp's fsync/fdatasync calls over the consume phase, and with
# /proc/diskstats, which on this shared VM also counts other sessions' writes; figures from 2026-11-29):
#   quorum  = a settle is a Raft command, appended to the Ra WAL like a publish; the WAL writer fdatasyncs each batch
#             of entries it writes, so acks are made durable in groups: 0.76-0.82 fdatasync per 100-message ack
#             (1,517-1,635 for 2,000 acks; the idle broker makes none);
#   classic = a durable classic queue (v1) records the ack in its queue-index journal (100 B messages are embedded in
#             the index) and drops the message from the message store; nothing is synced per ack (6-10 fsync in all
#             for 2,000 acks: housekeeping; publishing the same messages with confirms took 619-699), so acked
#             messages can come back after a crash (redelivered: at-least-once).
# In neither case is an ack acknowledged to the consumer: basic.ack has no reply in AMQP 0-9-1 (fire and forget),
# while a Cairn ack or a Redis XACK gets a reply (Redis's after its AOF fsync with appendfsync always).
# Output: RESULT name=rabbitmq_queue_<qtype>_<workers>w value=<msgs/s> unit=msgs/s (stdout); notes (stderr): publish
# rate; over the consume phase the broker's fsync/fdatasync/sync_file_range calls (`perf stat` on syscall
# tracepoints, per process; "n/a" without perf) and the machine's disk write and flush requests (/proc/diskstats),
# both also per 100-message ack; the CPU of the broker (beam.smp, /proc/<pid>/stat) and of the Python consumers
# (µs per message, % of a core) and which used more. On the shared, saturated 2-core VM neither reached a core:
# the consumers cost 16-27 µs of CPU per message, the broker 10 (quorum) to 25-28 (classic) µs.
# Knobs: QTYPES ("classic quorum"), N (200000), WORKERS (4), WINDOW (1000), PORT (15674, AMQP), DIST_PORT (25674),
#        EPMD_PORT (14370), QUIET_WAIT (15 s), PEERS (dir of the shared peer scripts, for _lib.sh; default
#        ../../../shared/peers).
# Runtime 1.5-2.5 min on the 2-core VM (most of it publishing: classic queues confirm ~6-9k msgs/s here).
# Run: bash benches/peers/rabbitmq_queue.sh            (only the numbers: ... 2>/dev/null | grep ^RESULT)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
PEERS=${PEERS:-$here/../../../shared/peers}
[ -r "$PEERS/_lib.sh" ] || { echo "no $PEERS/_lib.sh (set PEERS to the shared peers dir)" >&2; exit 1; }
. "$PEERS/_lib.sh"
QTYPES=${QTYPES:-classic quorum} N=${N:-200000} WORKERS=${WORKERS:-4} WINDOW=${WINDOW:-1000}
PORT=${PORT:-15674} DIST_PORT=${DIST_PORT:-25674} EPMD_PORT=${EPMD_PORT:-14370}
QUIET_WAIT=${QUIET_WAIT:-15}  # wait_quiet (_lib.sh): at most this long for an idle machine before each consume phase
RMQ=/usr/lib/rabbitmq/bin
if [ ! -x "$RMQ/rabbitmq-server" ]; then
  # keep the package's maintainer scripts from starting a system-wide broker (0.0.0.0:5672) on install
  made_policy=
  [ -e /usr/sbin/policy-rc.d ] \
    || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1; }
  apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
  [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
fi
need_pip pika pika
port_free "$PORT" "$DIST_PORT" "$EPMD_PORT"
dir=$(mktemp -d /tmp/peers-rabbitmq-queue.XXXXXX)
pid='' py=''
cleanup() {
  rc=$?
  trap - EXIT INT TERM
  stop_pid "$py"                                   # a helper still running (its consumers are daemon processes)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true          # the rabbitmq-server script's trap runs rabbitmqctl stop
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    stop_pid "$pid"
  fi
  b=$(cat "$dir/beam.pid" 2>/dev/null || true); [ -n "$b" ] && stop_pid "$b"
  # the epmd daemon the broker spawned on our port (the port was free before we started)
  e=$(ss -Hltnp "sport = :$EPMD_PORT" 2>/dev/null | grep -o 'epmd",pid=[0-9]*' | head -1 | cut -d= -f2 || true)
  [ -n "$e" ] && stop_pid "$e"
  rm -rf "$dir"; exit $rc
}
trap cleanup EXIT INT TERM
cat > "$dir/rabbitmq.conf" <<CONF
listeners.tcp.1 = 127.0.0.1:$PORT
log.console = false
log.file.level = warning
CONF
echo '[].' > "$dir/enabled_plugins"
export HOME=$dir RABBITMQ_NODENAME=peersqueue@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=$PORT \
  RABBITMQ_DIST_PORT=$DIST_PORT RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf \
  RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins \
  RABBITMQ_MNESIA_BASE=$dir/mnesia RABBITMQ_LOG_BASE=$dir/log RABBITMQ_PID_FILE=$dir/beam.pid \
  ERL_EPMD_PORT=$EPMD_PORT ERL_EPMD_ADDRESS=127.0.0.1 \
  RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
  RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
"$RMQ/rabbitmq-server" >"$dir/server.out" 2>&1 & pid=$!
timeout 120 "$RMQ/rabbitmqctl" wait --timeout 100 "$dir/beam.pid" >"$dir/wait.out" 2>&1 \
  || { echo "rabbitmq did not start:" >&2; tail -20 "$dir/server.out" "$dir/wait.out" >&2; exit 1; }
beam=$(cat "$dir/beam.pid")
otp=$(erl -noshell -eval 'io:format("~s",[erlang:system_info(otp_release)]), halt().')
echo "note: RabbitMQ $("$RMQ/rabbitmqctl" version 2>/dev/null), Erlang $otp," \
  "pika $(python3 -c 'import pika; print(pika.__version__)'), beam.smp pid $beam" >&2
dev=$(disk_of "$dir")
# run the helper as a child we can stop by PID (its perf output files go to $dir, deleted on exit too); its RESULT
# lines go to stdout, everything else to stderr
helper() { # helper MODE QTYPE
  TMPDIR=$dir PORT=$PORT QTYPE=$2 N=$N SIZE=100 WINDOW=$WINDOW WORKERS=$WORKERS BATCH=100 DEV=$dev BEAM_PID=$beam \
    NAME="rabbitmq_queue_${2}_${WORKERS}w" timeout 200 python3 "$here/rabbitmq_queue.py" "$1" >"$dir/out" & py=$!
  wait "$py"; py=''
  grep '^RESULT' "$dir/out" || true
  grep -v '^RESULT' "$dir/out" >&2 || true
}
for Q in $QTYPES; do
  helper publish "$Q"
  wait_quiet
  helper consume "$Q"
done
