#!/usr/bin/env bash
# Celery benchmark, every broker side by side in one run: N no-op tasks published by one client,
# then drained by one `celery worker -P prefork -c C` (celery_bench.py), on
#   cairn           cairnd (release), topic default sync policy "always": a produce replies after fdatasync
#   cairn-evloop    the same with transport option event_loop=true (Celery's event loop and AsynPool)
#   cairn-blocking  the same with event_loop=false (the default: Celery's blocking loop and threaded pool)
#   rabbitmq        RabbitMQ 3.10, durable classic queue, persistent messages, publisher confirms
#   redis-always    Redis, AOF with appendfsync always (fsync before the replies of each event-loop pass)
#   redis-everysec  Redis, AOF with appendfsync everysec (replies before the fsync; up to ~1 s lost on a crash)
# each started here on loopback with data in a temp dir and stopped by PID at the end. ROUNDS > 1
# repeats the whole sequence (brokers interleaved, each restarted fresh), so a noisy machine hits
# all of them alike. Ends with a Markdown table (min - max over the rounds) and every RESULT line.
#
#   consumer/python/bench/run.sh                       # N=10000 C=4 ROUNDS=1, all brokers
#   ROUNDS=3 BROKERS="cairn rabbitmq" consumer/python/bench/run.sh
#
# Needs: a release cairnd (CAIRND_BIN, default target/release/cairnd: `cargo build --release -p
# cairn-server --bin cairnd`), a venv with cairn-kombu, celery and redis (PY, default
# .venv-celery-bench/bin/python; made here if missing), the Debian packages rabbitmq-server and
# redis-server (a missing broker is skipped with a note). BENCH_PROFILE=DIR samples each worker's
# main process with py-spy (if in the venv) into DIR.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); repo=$(cd "$here/../../.." && pwd)
CAIRND_BIN=${CAIRND_BIN:-$repo/target/release/cairnd}
PY=${PY:-$repo/.venv-celery-bench/bin/python}
N=${N:-10000} C=${C:-4} ROUNDS=${ROUNDS:-1}
BROKERS=${BROKERS:-cairn rabbitmq redis-always redis-everysec}
CPORT=${CPORT:-17480} RPORT=${RPORT:-15680} DIST_PORT=${DIST_PORT:-25680} EPMD_PORT=${EPMD_PORT:-14380} XPORT=${XPORT:-16390}
[ -x "$CAIRND_BIN" ] || { echo "no cairnd at $CAIRND_BIN: cargo build --release -p cairn-server --bin cairnd" >&2; exit 1; }
if [ ! -x "$PY" ]; then
  python3 -m venv "$(dirname "$(dirname "$PY")")"
  "$PY" -m pip install -q "$repo/consumer/python" celery redis
fi
export PATH="$(dirname "$PY"):$PATH"
dir=$(mktemp -d /tmp/celery-bench.XXXXXX)
results=$dir/results
pid=''
stop_broker() {
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  pid=''
  b=$(cat "$dir/beam.pid" 2>/dev/null || true); [ -n "$b" ] && kill -KILL "$b" 2>/dev/null || true; rm -f "$dir/beam.pid"
  e=$(ss -Hltnp "sport = :$EPMD_PORT" 2>/dev/null | grep -o 'epmd",pid=[0-9]*' | head -1 | cut -d= -f2 || true)
  [ -n "$e" ] && kill -TERM "$e" 2>/dev/null || true
  rm -rf "$dir/data"
}
cleanup() { rc=$?; stop_broker; rm -rf "$dir"; exit $rc; }
trap cleanup EXIT INT TERM
dev=$(basename "$(df --output=source "$dir" | tail -1)")
diskwrites() { awk -v d="$dev" '$3==d {print $8; f=1} END {if (!f) print 0}' /proc/diskstats; }

run_one() {  # broker url label broker-pid
  local w0 line
  w0=$(diskwrites)
  line=$(BENCH_BROKER_PID=$3 "$PY" "$here/celery_bench.py" "$1" "$N" "$C" "$2" | grep '^RESULT') || {
    echo "note: $2 failed" >&2; return 0; }
  echo "$line disk_writes=$(( $(diskwrites) - w0 ))" | tee -a "$results"
}

for round in $(seq "$ROUNDS"); do
  for b in $BROKERS; do
    mkdir -p "$dir/data"
    case $b in
      cairn|cairn-evloop|cairn-blocking)
        "$CAIRND_BIN" --listen "127.0.0.1:$CPORT" --data-dir "$dir/data" > "$dir/cairnd.out" 2>&1 & pid=$!
        for _ in $(seq 100); do grep -q "listening" "$dir/cairnd.out" && break; sleep 0.1; done
        opts='{}'; [ "$b" = cairn-blocking ] && opts='{"event_loop": false}'; [ "$b" = cairn-evloop ] && opts='{"event_loop": true}'
        export BENCH_TRANSPORT_OPTIONS=$opts; run_one "cairn://127.0.0.1:$CPORT" "$b" "$pid"; unset BENCH_TRANSPORT_OPTIONS ;;
      rabbitmq)
        if [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then echo "note: rabbitmq-server not installed: skipped" >&2; continue; fi
        printf 'listeners.tcp.1 = 127.0.0.1:%s\nlog.console = false\nlog.file.level = warning\n' "$RPORT" > "$dir/data/rabbitmq.conf"
        echo '[].' > "$dir/data/enabled_plugins"
        ( export HOME=$dir/data RABBITMQ_NODENAME=celerybench@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
            RABBITMQ_NODE_PORT=$RPORT RABBITMQ_DIST_PORT=$DIST_PORT RABBITMQ_CONFIG_FILE=$dir/data/rabbitmq.conf \
            RABBITMQ_ENABLED_PLUGINS_FILE=$dir/data/enabled_plugins RABBITMQ_MNESIA_BASE=$dir/data/mnesia \
            RABBITMQ_LOG_BASE=$dir/data/log RABBITMQ_PID_FILE=$dir/beam.pid ERL_EPMD_PORT=$EPMD_PORT ERL_EPMD_ADDRESS=127.0.0.1 \
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
            RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
          exec /usr/lib/rabbitmq/bin/rabbitmq-server > "$dir/data/server.out" 2>&1 ) & pid=$!
        ( export HOME=$dir/data RABBITMQ_NODENAME=celerybench@localhost ERL_EPMD_PORT=$EPMD_PORT \
            RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
          timeout 120 /usr/lib/rabbitmq/bin/rabbitmqctl wait --timeout 100 "$dir/beam.pid" > "$dir/data/wait.out" 2>&1 )
        run_one "amqp://guest:guest@127.0.0.1:$RPORT//" rabbitmq "$(cat "$dir/beam.pid")" ;;
      redis-always|redis-everysec)
        if ! command -v redis-server > /dev/null; then echo "note: redis-server not installed: skipped" >&2; continue; fi
        redis-server --port "$XPORT" --bind 127.0.0.1 --dir "$dir/data" --appendonly yes --appendfsync "${b#redis-}" \
          --save '' --daemonize no > "$dir/redis.out" 2>&1 & pid=$!
        for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$XPORT") 2>/dev/null && break; sleep 0.1; done
        run_one "redis://127.0.0.1:$XPORT/0" "$b" "$pid" ;;
      *) echo "unknown broker $b" >&2; exit 2 ;;
    esac
    stop_broker
  done
done

echo
echo "| broker | publish, tasks/s | drain with $C processes, tasks/s | worker main process, CPU ms/task | broker, CPU ms/task |"
echo "|---|---|---|---|---|"
for b in $BROKERS; do
  grep "broker=$b " "$results" 2>/dev/null | awk -v b="$b" '
    function kv(k,   i, a) { for (i = 1; i <= NF; i++) { split($i, a, "="); if (a[1] == k) return a[2] } }
    function upd(k, v) { if (!(k in lo) || v < lo[k]) lo[k] = v; if (!(k in hi) || v > hi[k]) hi[k] = v }
    { upd("p", kv("publish_tasks_per_s")); upd("d", kv("drain_tasks_per_s"));
      upd("w", kv("cpu_ms_per_task_worker")); upd("x", kv("cpu_ms_per_task_broker")) }
    function r(k) { return (lo[k] == hi[k]) ? lo[k] : lo[k] " – " hi[k] }
    END { if (NR) printf "| %s | %s | %s | %s | %s |\n", b, r("p"), r("d"), r("w"), r("x") }'
done
