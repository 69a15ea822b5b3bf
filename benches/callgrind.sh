#!/usr/bin/env bash
# Instructions per request of one workload, counted by callgrind: repeatable
# where wall-clock figures on a shared machine are not (see benches/README.md).
# Uses the binaries and the database of the last `bash benches/run.sh`.
#   bash benches/callgrind.sh w1            # cache on
#   CACHE=off bash benches/callgrind.sh w4  # cache off (W4-off)
# env: SECONDS_MEASURED (6), PORT (18393), PG, REDIS_URL, BENCH_RUN_DIR,
#      SERVER (the server binary; default: the last run's copy),
#      BEFORE (a workload run on the server before the warm-up, e.g. w3: the
#      state run.sh's W4 server is in), KEEP (a folder to copy the profile
#      to, for callgrind_annotate)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:?usage: bash benches/callgrind.sh <w1|w2|w3|w4> [cache on|off via CACHE=]}
RUN_DIR=${BENCH_RUN_DIR:-${TMPDIR:-/tmp}/nexora-bench}
SERVER=${SERVER:-$RUN_DIR/nexora}
LOAD=$RUN_DIR/load
PORT=${PORT:-18393}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
D=${SECONDS_MEASURED:-6}
source benches/server-env.sh
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
[ -x "$SERVER" ] && [ -x "$LOAD" ] || { echo "run bash benches/run.sh once first" >&2; exit 1; }
OUT=$(mktemp -d)
trap 'kill "$SP" 2>/dev/null || true; wait "$SP" 2>/dev/null || true; rm -rf "$OUT"; del_keys "bench:*"' EXIT
del_keys 'bench:*'
ttl=(); [ "${CACHE:-on}" = off ] && ttl=(CACHE_DEFAULT_TTL_SECS=0)
# generous Redis timeout: everything runs ~50x slower under valgrind
bench_env "$PORT" bench:
env "${ttl[@]}" "${BENCH_ENV[@]}" RUST_LOG=info REDIS_TIMEOUT_MS=2000 \
  valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.%p" "$SERVER" serve >"$OUT/server.log" 2>&1 &
SP=$!
"$LOAD" wait --url "http://127.0.0.1:$PORT" --timeout-secs 120 >/dev/null
run() { # seconds seed out (workload: $W)
  "$LOAD" run --url "http://127.0.0.1:$PORT" --workload "$W" --label "$W" --cache "${CACHE:-on}" \
    --duration "$1" --warmup 1 --connections 8 --threads 1 --cursor-cache "$RUN_DIR/cursors.txt" \
    --out "$3" --run-id callgrind --seed "$2" >/dev/null 2>&1
}
if [ -n "${BEFORE:-}" ]; then W=$BEFORE run 3 4 "$OUT/before.jsonl"; fi
run 3 5 "$OUT/warm.jsonl"                    # warm-up (fills the cache)
VP=$(pgrep -f "callgrind.*serve" | head -1)
callgrind_control -z "$VP" >/dev/null 2>&1        # count only the measured phase
run "$D" 6 "$OUT/run.jsonl"
callgrind_control -d "$VP" >/dev/null 2>&1
N=$(tail -1 "$OUT/run.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])')
IR=$(grep -h '^summary:' "$OUT"/cg.*.1 | awk '{print $2}')
echo "$W cache=${CACHE:-on}: $N requests, $((IR / N)) instructions per request (server, user space)"
if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$OUT"/cg.*.1 "$KEEP/"; fi
