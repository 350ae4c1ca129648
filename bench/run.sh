#!/usr/bin/env bash
# Builds the release server and runs the load benchmark on SQLite and (when reachable)
# PostgreSQL. Loopback only. Usage: bench/run.sh [seconds-per-scenario]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
cargo build --release --bin kakehashi --example bench
pg=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  exec target/release/examples/bench --seconds "$secs" --postgres "$pg"
else
  echo "PostgreSQL not reachable: SQLite only"
  exec target/release/examples/bench --seconds "$secs"
fi
