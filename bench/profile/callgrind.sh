#!/usr/bin/env bash
# Instruction profile of the release server under callgrind. Instruction counts are repeatable on
# a loaded machine where wall-clock is not. Each scenario runs twice on a fresh server, N1 and N2
# operations after the same warm-up (bench/profile/drive.py); the difference of the two totals
# divided by N2-N1 is the cost of one operation without start-up and warm-up, and
# bench/profile/diff.py gives the same difference per function.
# Usage: bench/profile/callgrind.sh [sqlite|postgres]   (N1, N2, SCENARIOS, OUT, KAKEHASHI_BIN)
set -euo pipefail
cd "$(dirname "$0")/../.."
db=${1:-sqlite}
n1=${N1:-20}
n2=${N2:-120}
out=${OUT:-target/profile}
bin=${KAKEHASHI_BIN:-target/release/kakehashi}
mkdir -p "$out"
run() { # scenario n
  local port url name=""
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  if [ "$db" = sqlite ]; then
    rm -f "$out"/prof.db*
    url="sqlite://$out/prof.db"
  else
    name="prof_$RANDOM$RANDOM"
    psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $name"
    url="postgres://postgres@127.0.0.1:5432/$name"
  fi
  DATABASE_URL=$url KAKEHASHI_ADDR=127.0.0.1:$port RUST_LOG=error \
    valgrind --tool=callgrind --callgrind-out-file="$out/$db.$1.$2.cg" "$bin" \
    >/dev/null 2>"$out/valgrind.log" &
  local vg=$!
  until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; do sleep 1; done
  python3 bench/profile/drive.py "http://127.0.0.1:$port" "$url" 0 "$1" "$2"
  kill -TERM "$vg"
  wait "$vg" 2>/dev/null || true
  if [ -n "$name" ]; then psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE $name WITH (FORCE)"; fi
}
total() { grep -m1 '^totals:' "$1" | awk '{print $2}'; }
for s in ${SCENARIOS:-bare reopen select open card}; do
  run "$s" "$n1"
  run "$s" "$n2"
  a=$(total "$out/$db.$s.$n1.cg")
  b=$(total "$out/$db.$s.$n2.cg")
  echo "$db $s: $(((b - a) / (n2 - n1))) instructions per operation (card: 4 requests)"
done
