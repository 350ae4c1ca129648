#!/usr/bin/env bash
# Builds the release server and runs the load benchmark (wrk as the load generator) on SQLite
# and, when reachable, PostgreSQL; adds bench_search's console search scenarios when that
# example exists. Loopback only. Writes bench/results/<UTC date-time>-<commit>.json.
# Usage: bench/run.sh [seconds-per-scenario]   (see bench/README.md)
#   BENCH_DATABASE_URL  PostgreSQL to create the bench database in
#                       (default postgres://postgres@127.0.0.1:5432/test)
#   BENCH_SKIP_SEARCH=1 skip the console search scenarios
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
case $secs in '' | *[!0-9]* | 0) echo "usage: bench/run.sh [seconds-per-scenario]" >&2; exit 2 ;; esac
if ! command -v wrk >/dev/null; then
  echo "bench/run.sh needs wrk, the load generator: apt-get install wrk" >&2
  exit 1
fi
search=
if [ -f bench/search.rs ] && [ "${BENCH_SKIP_SEARCH:-}" != 1 ]; then
  search=1
fi
examples=(--example bench)
[ -n "$search" ] && examples+=(--example bench_search)
cargo build --release --bin kakehashi "${examples[@]}"
target=${CARGO_TARGET_DIR:-target}
export KAKEHASHI_BIN=$target/release/kakehashi

pg=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
pg_args=()
if pg_isready -d "$pg" -q 2>/dev/null; then
  pg_args=(--postgres "$pg")
else
  echo "PostgreSQL not reachable at $pg: SQLite only"
fi

merge_args=()
if [ -n "$search" ]; then
  out=$(mktemp)
  trap 'rm -f "$out"' EXIT
  echo "console search scenarios (bench_search; BENCH_SKIP_SEARCH=1 skips them)…"
  if "$target/release/examples/bench_search" --json "${pg_args[@]}" >"$out"; then
    merge_args=(--merge "$out")
  else
    echo "bench_search failed: its scenarios are left out" >&2
  fi
  # Its two seeded stores (about 1 GB each, deleted) leave dirty pages behind: write them out
  # now, so the load scenarios' durable commits do not queue behind that writeback.
  sync
fi
"$target/release/examples/bench" --seconds "$secs" "${pg_args[@]}" "${merge_args[@]}"
