#!/usr/bin/env bash
# Celery benchmark: 10,000 no-op tasks, 4 prefork worker processes, on Cairn, RabbitMQ and Redis in
# one run (each broker started here on loopback in a temp dir, and stopped by PID at the end).
# Needs: a release cairnd (CAIRND_BIN, default target-celery/release/cairnd), a venv with
# cairn-kombu, celery and redis (PY, default .venv-celery-bench/bin/python), and the Debian
# packages rabbitmq-server and redis-server (a broker whose package is missing is skipped).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); repo=$(cd "$here/../../.." && pwd)
CAIRND_BIN=${CAIRND_BIN:-$repo/target-celery/release/cairnd}
PY=${PY:-$repo/.venv-celery-bench/bin/python}
N=${N:-10000} C=${C:-4}
CPORT=${CPORT:-17480} RPORT=${RPORT:-15680} DIST_PORT=${DIST_PORT:-25680} EPMD_PORT=${EPMD_PORT:-14380} XPORT=${XPORT:-16390}
dir=$(mktemp -d /tmp/celery-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; kill -KILL "$p" 2>/dev/null || true; done
  b=$(cat "$dir/beam.pid" 2>/dev/null || true); [ -n "$b" ] && kill -KILL "$b" 2>/dev/null || true
  e=$(ss -Hltnp "sport = :$EPMD_PORT" 2>/dev/null | grep -o 'epmd",pid=[0-9]*' | head -1 | cut -d= -f2 || true)
  [ -n "$e" ] && kill -TERM "$e" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

# Cairn (sync always: every produce is fsynced before its reply)
"$CAIRND_BIN" --listen "127.0.0.1:$CPORT" --data-dir "$dir/cairn" > "$dir/cairnd.out" 2>&1 & pids+=($!)
for _ in $(seq 100); do grep -q "listening" "$dir/cairnd.out" && break; sleep 0.1; done
"$PY" "$here/celery_bench.py" "cairn://127.0.0.1:$CPORT" "$N" "$C"

# RabbitMQ: durable classic queue, persistent messages, publisher confirms (as in ../../../shared/peers/rabbitmq.sh)
if [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
  mkdir -p "$dir/rmq"
  printf 'listeners.tcp.1 = 127.0.0.1:%s\nlog.console = false\nlog.file.level = warning\n' "$RPORT" > "$dir/rmq/rabbitmq.conf"
  echo '[].' > "$dir/rmq/enabled_plugins"
  ( export HOME=$dir/rmq RABBITMQ_NODENAME=celerybench@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=$RPORT \
      RABBITMQ_DIST_PORT=$DIST_PORT RABBITMQ_CONFIG_FILE=$dir/rmq/rabbitmq.conf RABBITMQ_ENABLED_PLUGINS_FILE=$dir/rmq/enabled_plugins \
      RABBITMQ_MNESIA_BASE=$dir/rmq/mnesia RABBITMQ_LOG_BASE=$dir/rmq/log RABBITMQ_PID_FILE=$dir/beam.pid \
      ERL_EPMD_PORT=$EPMD_PORT ERL_EPMD_ADDRESS=127.0.0.1 \
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
      RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
    exec /usr/lib/rabbitmq/bin/rabbitmq-server > "$dir/rmq/server.out" 2>&1 ) & pids+=($!)
  ( export HOME=$dir/rmq RABBITMQ_NODENAME=celerybench@localhost ERL_EPMD_PORT=$EPMD_PORT \
      RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
    timeout 120 /usr/lib/rabbitmq/bin/rabbitmqctl wait --timeout 100 "$dir/beam.pid" > "$dir/rmq/wait.out" 2>&1 )
  "$PY" "$here/celery_bench.py" "amqp://guest:guest@127.0.0.1:$RPORT//" "$N" "$C"
else
  echo "rabbitmq-server not installed: skipped" >&2
fi

# Redis: AOF with appendfsync always (each write fsynced before the reply)
if command -v redis-server > /dev/null; then
  redis-server --port "$XPORT" --bind 127.0.0.1 --dir "$dir" --appendonly yes --appendfsync always --save '' \
    --daemonize no > "$dir/redis.out" 2>&1 & pids+=($!)
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$XPORT") 2>/dev/null && break; sleep 0.1; done
  "$PY" "$here/celery_bench.py" "redis://127.0.0.1:$XPORT/0" "$N" "$C"
else
  echo "redis-server not installed: skipped" >&2
fi
