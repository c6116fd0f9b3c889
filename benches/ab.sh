#!/bin/bash
# A/B of two cairnd binaries on single-message produce (docs/BENCHMARKS.md, "Session 3"):
#   bash benches/ab.sh OLD_CAIRND NEW_CAIRND [ROUNDS]      # default 4 rounds
# Alternates the binaries ROUNDS times; each run starts the binary on a fresh data dir with a
# 1-partition `sync: "always"` topic, warms up with wrk for 2 s, then measures SECS (5) s of
# `wrk -t2 -c64` POSTing 100 B octet-stream bodies. Prints per run and per binary (A = first):
# requests/s, cairnd CPU µs per request (/proc/<pid>/stat), device writes per request
# (/sys/block/$DEV/stat, the whole machine) and fdatasyncs per second (perf stat on cairnd,
# when perf is there). Alternating and averaging is what makes a ±15 % noisy VM usable.
# Env: SECS, CONNS (64), PORT (17521), DEV (vda), LUA (a wrk script; default: the 100 B POST).
set -euo pipefail
A=$1; B=$2; R=${3:-4}; SECS=${SECS:-5}; CONNS=${CONNS:-64}; PORT=${PORT:-17521}; DEV=${DEV:-vda}
command -v wrk >/dev/null || { apt-get update -qq; apt-get install -y -qq wrk >/dev/null; }
work=$(mktemp -d /tmp/cairn-ab.XXXXXX)
trap 'rm -rf "$work"' EXIT
LUA=${LUA:-$work/post100.lua}
[[ -f $LUA ]] || printf 'wrk.method="POST"\nwrk.body=string.rep("x",100)\nwrk.headers["Content-Type"]="application/octet-stream"\n' > "$LUA"
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
writes() { awk '{print $5}' "/sys/block/$DEV/stat"; }
url=http://127.0.0.1:$PORT/v1/topics/s/messages
one() { # binary label
  rm -rf "$work/data"
  "$1" --listen "127.0.0.1:$PORT" --data-dir "$work/data" >/dev/null 2>&1 & local p=$!
  for _ in $(seq 100); do curl -sf "localhost:$PORT/v1/health" >/dev/null && break; sleep 0.1; done
  curl -sf -XPOST "localhost:$PORT/v1/topics" -H 'content-type: application/json' \
    -d '{"name":"s","partitions":1,"sync":"always"}' >/dev/null
  wrk -t2 -c"$CONNS" -d2s -s "$LUA" "$url" >/dev/null
  local pp=
  if command -v perf >/dev/null; then
    perf stat -x, -e syscalls:sys_enter_fdatasync -p "$p" -o "$work/perf" 2>/dev/null & pp=$!
    sleep 0.2
  fi
  local c0 w0 out w1 c1
  c0=$(cpu "$p"); w0=$(writes)
  out=$(wrk -t2 -c"$CONNS" -d"${SECS}s" -s "$LUA" "$url")
  w1=$(writes); c1=$(cpu "$p")
  local syncs=0
  if [[ -n $pp ]]; then
    kill -INT "$pp"; wait "$pp" 2>/dev/null || true
    syncs=$(awk -F, '/fdatasync/ {print $1}' "$work/perf")
  fi
  local rps
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  echo "$2 $rps $(echo "($c1-$c0)*10000/($rps*$SECS)" | bc -l | cut -c1-5) $(echo "($w1-$w0)/($rps*$SECS)" | bc -l | cut -c1-5) $(echo "${syncs:-0}/$SECS" | bc -l | cut -c1-6)"
  kill "$p"; wait "$p" 2>/dev/null || true
}
echo "binary req/s cpu_us/req dev_writes/req fdatasyncs/s"
for _ in $(seq "$R"); do one "$A" A; one "$B" B; done | tee "$work/out"
awk '{n[$1]++; s[$1]+=$2; c[$1]+=$3; w[$1]+=$4; f[$1]+=$5} END {for (k in n) printf "%s mean req/s=%.0f cpu_us/req=%.2f dev_writes/req=%.3f fdatasyncs/s=%.0f\n", k, s[k]/n[k], c[k]/n[k], w[k]/n[k], f[k]/n[k]}' "$work/out" | sort
