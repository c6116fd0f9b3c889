#!/bin/bash
# End-to-end benchmark of Cairn over HTTP against the disk's limits, the loopback HTTP ceiling and
# peer brokers (Redis, RabbitMQ), in one run. Builds cairnd and the harness in release
# (CARGO_TARGET_DIR=target-bench), then runs benches/src/bin/e2e.rs with the given options:
#   bash benches/run.sh            # full run, about 6 minutes after the builds
#   bash benches/run.sh --quick    # shorter measurements, 200 MB replay
#   bash benches/run.sh --no-peers --only produce,single   # Cairn only, some scenarios
# Writes docs/bench/e2e.svg and target-bench/e2e-report.md. See docs/BENCHMARKS.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target-bench}
cargo build --release -q -p cairn-server --bin cairnd
cargo build --release -q -p cairn-benches --bin e2e --bin sync_floor
exec "$CARGO_TARGET_DIR/release/e2e" --cairnd "$CARGO_TARGET_DIR/release/cairnd" --peers "${PEERS:-$root/../shared/peers}" "$@"
