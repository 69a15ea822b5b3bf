#!/usr/bin/env bash
# Two server binaries, both with the cache on, under one workload in
# alternating slices (as W4 and W4-off in run.sh), so both see the same
# machine: the way to tell whether a change made the server faster on a
# machine whose speed drifts by tens of percent within minutes.
# Uses the load generator, data and cursor cache of the last run.sh.
#   bash benches/compare.sh OLD_BINARY NEW_BINARY [w1|w2|w3|w4]   (default w4)
# env: DURATION (20), WARMUP (3), SLICE (2), CONNECTIONS (32), THREADS (2),
#      PG, REDIS_URL, BENCH_RUN_DIR
# Prints each binary's row and NEW's req/s relative to OLD's. Swap the two
# and run again: one position or the other came out 2-5% ahead in runs of
# one binary against itself or against an equivalent build.
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=${1:?usage: bash benches/compare.sh OLD_BINARY NEW_BINARY [workload]}
NEW=${2:?usage: bash benches/compare.sh OLD_BINARY NEW_BINARY [workload]}
W=${3:-w4}
RUN_DIR=${BENCH_RUN_DIR:-${TMPDIR:-/tmp}/nexora-bench}
LOAD=$RUN_DIR/load
PG=${PG:-postgres://postgres@127.0.0.1:5432}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
source benches/server-env.sh
[ -x "$LOAD" ] || { echo "run bash benches/run.sh once first" >&2; exit 1; }
[ -x "$OLD" ] && [ -x "$NEW" ] || { echo "both binaries must exist and be executable" >&2; exit 1; }
OUT=$(mktemp -d)
PIDS=()
clear_keys() { # each server has a prefix of its own: with one, the second
  # server's requests would hit entries the first stored (W4's cursor
  # orders overlap), and it would look much faster than it is
  del_keys 'benchcmp*'
}
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  clear_keys
  rm -rf "$OUT"
}
trap cleanup EXIT
clear_keys
start() { # binary port
  bench_env "$2" "benchcmp$2:"
  env "${BENCH_ENV[@]}" RUST_LOG=warn "$1" serve >"$OUT/server-$2.log" 2>&1 &
  PIDS+=($!)
  "$LOAD" wait --url "http://127.0.0.1:$2" --timeout-secs 60 >/dev/null ||
    { tail -20 "$OUT/server-$2.log" >&2; exit 1; }
}
start "$OLD" 18395
start "$NEW" 18396
# labels of different lengths: W4's cursor order is seeded by the label
"$LOAD" run --workload "$W" --cache on \
  --label old --url http://127.0.0.1:18395 --server-pid "${PIDS[0]}" \
  --pair-label new-binary --pair-url http://127.0.0.1:18396 --pair-cache on --pair-server-pid "${PIDS[1]}" \
  --slice "${SLICE:-2}" --duration "${DURATION:-20}" --warmup "${WARMUP:-3}" \
  --connections "${CONNECTIONS:-32}" --threads "${THREADS:-2}" \
  --cursor-cache "$RUN_DIR/cursors.txt" --out "$OUT/compare.jsonl" --run-id compare >/dev/null
python3 - "$OUT/compare.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for r in rows:
    print(f"{r['label']:>10}: {r['rps']:9.0f} req/s  p99 {r['p99_ms']:7.2f} ms  "
          f"server CPU {r['server_cpu_us_per_request']} µs/req  errors {r['errors']}")
old, new = rows
print(f"new vs old: {(new['rps'] / old['rps'] - 1) * 100:+.1f}% req/s")
PY
