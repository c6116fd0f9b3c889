#!/bin/bash
# Instructions per produce request in cairnd, counted by callgrind: repeatable on a noisy machine
# where timings are not (docs/BENCHMARKS.md, "Instructions per request").
#   bash benches/callgrind.sh [CAIRND]      # default: target-bench/release/cairnd (bash benches/run.sh builds it)
# Runs two workloads, each on a fresh cairnd under `valgrind --tool=callgrind` with a fresh data dir
# and a 1-partition `sync: "always"` topic: one 100 B octet-stream message per request, and one raw
# batch of 100 x 100 B per request. wrk -t1 -c4 warms up for 3 s, the counters are zeroed, wrk runs
# SECS (8) more seconds, the counters are dumped; instructions (user space, all threads) / requests.
# Prints RESULT name=callgrind_single_octet_100b / callgrind_raw_100x100b value=<Ir/request>.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
CAIRND=${1:-$root/target-bench/release/cairnd}
SECS=${SECS:-8}
command -v valgrind >/dev/null || { apt-get update -qq; apt-get install -y -qq valgrind >/dev/null; }
command -v wrk >/dev/null || { apt-get update -qq; apt-get install -y -qq wrk >/dev/null; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target-bench}
cargo build --release -q -p cairn-benches --bin mkbatch --manifest-path "$root/Cargo.toml"
work=$(mktemp -d /tmp/cairn-callgrind.XXXXXX)
vpid=
cleanup() { [[ -n $vpid ]] && kill "$vpid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
"$CARGO_TARGET_DIR/release/mkbatch" 100 100 > "$work/raw.bin"
printf 'wrk.method="POST"\nwrk.body=string.rep("x",100)\nwrk.headers["Content-Type"]="application/octet-stream"\n' > "$work/single.lua"
cat > "$work/raw.lua" <<LUA
local f = io.open("$work/raw.bin", "rb")
wrk.body = f:read("*all")
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/vnd.cairn.records"
wrk.headers["Cairn-Partition"] = "0"
LUA
measure() { # name lua
  local name=$1 lua=$2 port=$((20000 + RANDOM % 10000)) d="$work/$1"
  mkdir -p "$d"
  valgrind --tool=callgrind --callgrind-out-file="$d/cg.out" "$CAIRND" --listen "127.0.0.1:$port" \
    --data-dir "$d/data" >"$d/out" 2>"$d/err" &
  vpid=$!
  for _ in $(seq 200); do curl -sf "localhost:$port/v1/health" >/dev/null && break; sleep 0.2; done
  curl -sf -XPOST "localhost:$port/v1/topics" -H 'content-type: application/json' \
    -d '{"name":"s","partitions":1,"sync":"always"}' >/dev/null
  wrk -t1 -c4 -d3s -s "$lua" "http://127.0.0.1:$port/v1/topics/s/messages" >/dev/null
  callgrind_control -z "$vpid" >/dev/null 2>&1
  local out n ir
  out=$(wrk -t1 -c4 -d"${SECS}s" -s "$lua" "http://127.0.0.1:$port/v1/topics/s/messages")
  callgrind_control -d "$vpid" >/dev/null 2>&1
  kill "$vpid"; wait "$vpid" 2>/dev/null || true; vpid=
  if grep -q Non-2xx <<<"$out"; then echo "non-2xx replies in $name" >&2; exit 1; fi
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  ir=$(grep -h '^summary:' "$d/cg.out.1" | awk '{print $2}')
  echo "note: $name: $n requests, $ir instructions"
  echo "RESULT name=callgrind_$name value=$((ir / n)) unit=Ir/request"
}
measure single_octet_100b "$work/single.lua"
measure raw_100x100b "$work/raw.lua"
