#!/usr/bin/env bash
# Schema-driven API fuzzing: schemathesis (from PyPI) against GET /v1/openapi.json of a
# running debug cairnd. Fails on any 5xx (`not_a_server_error`) or if cairnd dies.
#
#   tests/fuzz/schemathesis.sh                 # bounded run (CI)
#   FUZZ_MAX_EXAMPLES=500 tests/fuzz/schemathesis.sh   # longer run
#
# Uses CAIRND_BIN if set, else builds target/debug/cairnd (CARGO_TARGET_DIR respected).
set -euo pipefail
cd "$(dirname "$0")/../.."
max_examples="${FUZZ_MAX_EXAMPLES:-25}"

if [ ! -x .venv-fuzz/bin/schemathesis ]; then
    python3 -m venv .venv-fuzz
    .venv-fuzz/bin/pip install -q schemathesis
fi
if [ -z "${CAIRND_BIN:-}" ]; then
    cargo build -q -p cairn-server --bin cairnd
    CAIRND_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/cairnd"
fi

work="$(mktemp -d)"
pid=""
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# Start on a free port and read the bound address from the ready line.
"$CAIRND_BIN" --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/stdout" 2>"$work/stderr" &
pid=$!
addr=""
for _ in $(seq 1 600); do
    addr="$(sed -n 's/^cairnd listening on //p' "$work/stdout")"
    [ -n "$addr" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/stderr"; echo "cairnd exited before it was ready" >&2; exit 1; }
    sleep 0.1
done
[ -n "$addr" ] || { echo "cairnd printed no ready line" >&2; exit 1; }
base="http://$addr"
# A topic and a group so that operations on existing resources are reached too.
curl -fsS -X POST "$base/v1/topics" -H 'content-type: application/json' -d '{"name":"t","partitions":2}' >/dev/null
curl -fsS -X POST "$base/v1/topics/t/messages" -H 'content-type: application/json' \
    -d '{"messages":[{"value":1},{"key":"k","value":"v"}]}' >/dev/null

status=0
.venv-fuzz/bin/schemathesis run "$base/v1/openapi.json" \
    --url "$base" \
    --checks not_a_server_error \
    --max-examples "$max_examples" \
    --workers 2 \
    --request-timeout 40 \
    --seed "${FUZZ_SEED:-1}" || status=$?

if ! kill -0 "$pid" 2>/dev/null; then
    echo "cairnd died during fuzzing; its log:" >&2
    tail -50 "$work/stderr" >&2
    exit 1
fi
if grep -q "panicked" "$work/stderr"; then
    echo "cairnd logged a panic:" >&2
    grep -A5 "panicked" "$work/stderr" >&2
    exit 1
fi
exit "$status"
