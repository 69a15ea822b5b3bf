#!/usr/bin/env bash
# nexora's benchmark suite (issue 6): builds the release server and the load
# generator, loads the reference data set into `nexora_bench`, starts the
# server against Postgres and Redis on loopback, runs the workloads, writes
# benches/results/<run>.jsonl (+ latest.jsonl, latest.md) and prints the table.
# See benches/README.md. Options: flags below, or the same names as env vars.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<'EOF'
usage: bash benches/run.sh [--duration S] [--warmup S] [--connections N]
                           [--threads N] [--workloads "baseline w1 … w4-off"]
                           [--skip-build]
  --duration S      measured seconds per workload (env DURATION, default 30)
  --warmup S        warm-up seconds per workload  (env WARMUP, default 5)
  --connections N   keep-alive connections        (env CONNECTIONS, default 32)
  --threads N       load generator threads        (env THREADS, default 2)
  --workloads LIST  subset, in any order; always run in the order below
                    (env WORKLOADS, default "baseline w1 w2 w3 w4 w5 w6 w4-off")
  --skip-build      reuse the binaries of the previous run
env: PORT (18391), BASELINE_PORT (18392), PAIR_PORT (18394: the cache-off server
     W4-off runs on, interleaved with W4), SLICE (0.5: seconds per W4/W4-off slice),
     PG (postgres://postgres@127.0.0.1:5432),
     REDIS_URL (redis://127.0.0.1:6379), SERVER_RUST_LOG (info),
     BENCH_RUN_DIR (/tmp/nexora-bench: binaries, logs, cursor cache, profiles),
     PERF ("" ; e.g. "w1 w4": perf-record the server during those workloads)
EOF
}

DURATION=${DURATION:-30}
WARMUP=${WARMUP:-5}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
WORKLOADS=${WORKLOADS:-"baseline w1 w2 w3 w4 w5 w6 w4-off"}
SKIP_BUILD=${SKIP_BUILD:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --workloads) WORKLOADS=$2; shift 2 ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done

PORT=${PORT:-18391}
BASELINE_PORT=${BASELINE_PORT:-18392}
PAIR_PORT=${PAIR_PORT:-18394}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
RUN_DIR=${BENCH_RUN_DIR:-${TMPDIR:-/tmp}/nexora-bench}
source benches/server-env.sh
DB=$BENCH_DB               # the server's database, recreated every run
SEED_DB=nexora_bench_seed  # seeded once, the template of $DB
PREFIX=bench:              # every Redis key of the suite
SEED_ARGS=(--titles 5000 --users 2000 --reviews 100000 --likes 300000 --comments 50000 --seed 42)

log() { printf '\n== %s\n' "$*"; }
die() { echo "run.sh: $*" >&2; exit 1; }
wants() { [[ " $WORKLOADS " == *" $1 "* ]]; }
psql_admin() { psql "$PG/postgres" -v ON_ERROR_STOP=1 -Atqc "$1"; }

for w in $WORKLOADS; do
  case "$w" in baseline|w1|w2|w3|w4|w5|w6|w4-off) ;; *) die "unknown workload $w" ;; esac
done
for tool in cargo psql redis-cli ss; do
  command -v "$tool" >/dev/null || die "$tool is needed"
done
pg_isready -q -d "$PG/postgres" 2>/dev/null || die "Postgres is not answering at $PG"
[ "$(redis-cli -u "$REDIS_URL" ping 2>/dev/null)" = PONG ] || die "Redis is not answering at $REDIS_URL"
for p in "$PORT" "$BASELINE_PORT" "$PAIR_PORT"; do
  if ss -Hltn "sport = :$p" | grep -q .; then die "port $p is in use (set PORT / BASELINE_PORT)"; fi
done

mkdir -p "$RUN_DIR" benches/results
rm -f "$RUN_DIR"/*.log "$RUN_DIR/cursors.txt" "$RUN_DIR"/w1.* "$RUN_DIR"/perf-*.data
LOAD="$RUN_DIR/load"
SERVER="$RUN_DIR/nexora"

SERVER_PID=
PAIR_PID=     # the cache-off server W4-off runs on while W4 runs (interleaved)
BASELINE_PID=
CHILD_PID=
stop_pid() { # pid name: TERM, wait up to 25 s (the server drains for at most 20), then KILL
  local pid=$1
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 250); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then echo "$2 did not stop; killing it" >&2; kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  stop_pid "$CHILD_PID" "load generator"; CHILD_PID=
  stop_pid "$BASELINE_PID" baseline; BASELINE_PID=
  stop_pid "$PAIR_PID" "cache-off server"; PAIR_PID=
  stop_pid "$SERVER_PID" server; SERVER_PID=
  # W4 alone leaves hundreds of MB of one-off entries (kept for the stale
  # window, an hour by default); nothing reads them after the run
  if [ -n "${CLEAR_AT_EXIT:-}" ]; then clear_redis || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# long steps run in the background and are waited for, so a signal is
# handled at once rather than when the step ends
bg_wait() {
  "$@" &
  CHILD_PID=$!
  local rc=0
  wait "$CHILD_PID" || rc=$?
  CHILD_PID=
  return "$rc"
}

# -- build ---------------------------------------------------------------------
# The bench target is built first: building it also rebuilds the server with
# the dev-dependencies' features. Building the server alone afterwards gives
# the exact binary `cargo build --release --bin nexora` ships; it is copied
# at once so another build in a shared target dir cannot swap it mid-run.
artifact() { # kind name < cargo json
  grep "\"kind\":\[\"$1\"\]" | grep "\"name\":\"$2\"" | grep -o '"executable":"[^"]*"' | tail -1 | cut -d'"' -f4
}
if [ -z "$SKIP_BUILD" ]; then
  log "building the load generator and the release server"
  exe=$(cargo build --release --bench load --message-format=json-render-diagnostics | artifact bench load)
  [ -n "$exe" ] || die "could not find the load generator binary"
  cp "$exe" "$LOAD"
  exe=$(cargo build --release --bin nexora --message-format=json-render-diagnostics | artifact bin nexora)
  [ -n "$exe" ] || die "could not find the nexora binary"
  cp "$exe" "$SERVER"
fi
[ -x "$LOAD" ] && [ -x "$SERVER" ] || die "no binaries in $RUN_DIR (run without --skip-build)"

# -- data ------------------------------------------------------------------------
# $SEED_DB is seeded once per (sizes, seed, seeder and migrations); each run
# copies it, so W5's likes never leak into the next run and every run starts
# from identical rows.
data_hash=$(find migrations src/seed.rs -type f | LC_ALL=C sort | xargs cat | sha256sum | cut -c1-12)
marker="nexora-bench ${SEED_ARGS[*]} data=$data_hash"
current=$(psql_admin "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '$SEED_DB'")
if [ "$current" != "$marker" ]; then
  log "seeding $SEED_DB (${SEED_ARGS[*]})"
  psql_admin "DROP DATABASE IF EXISTS $SEED_DB WITH (FORCE)"
  DATABASE_URL="$PG/$SEED_DB" RUST_LOG=warn "$SERVER" seed "${SEED_ARGS[@]}"
  psql "$PG/$SEED_DB" -v ON_ERROR_STOP=1 -qc "VACUUM (ANALYZE)"
  psql_admin "COMMENT ON DATABASE $SEED_DB IS '$marker'"
else
  log "$SEED_DB already holds: $marker"
fi
log "recreating $DB from $SEED_DB"
psql_admin "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
psql_admin "CREATE DATABASE $DB TEMPLATE $SEED_DB"

clear_redis() { # only our prefix; bounded by the number of keys
  del_keys "${PREFIX}*"
}
CLEAR_AT_EXIT=1

# -- servers --------------------------------------------------------------------
launch() { # port ttl ("" = the default) log; sets LAUNCHED
  bench_env "$1" "$PREFIX"
  env -u CACHE_DEFAULT_TTL_SECS "${BENCH_ENV[@]}" RUST_LOG="${SERVER_RUST_LOG:-info}" \
    ${2:+CACHE_DEFAULT_TTL_SECS=$2} \
    "$SERVER" serve >>"$RUN_DIR/$3" 2>&1 &
  LAUNCHED=$!
  if ! "$LOAD" wait --url "http://127.0.0.1:$1" --timeout-secs 120; then
    tail -20 "$RUN_DIR/$3" >&2
    die "the server on port $1 did not start"
  fi
}
start_server() { # cache ttl ("" = the default)
  clear_redis
  launch "$PORT" "$1" server.log
  SERVER_PID=$LAUNCHED
}

RUN_ID=$(date -u +%Y-%m-%dT%H%M%SZ)
RESULTS="benches/results/$RUN_ID.jsonl"
GIT_REV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
# result files of earlier runs change nothing that is measured
if [ -n "$(git status --porcelain --untracked-files=no -- . ':!benches/results' 2>/dev/null)" ]; then GIT_REV="$GIT_REV-dirty"; fi

run_w() { # label workload cache url pid [extra load flags…]
  local perf=()
  if [[ " ${PERF:-} " == *" ${1,,} "* ]]; then perf=(--perf-out "$RUN_DIR/perf-${1,,}.data"); fi
  bg_wait "$LOAD" run "${perf[@]}" --label "$1" --workload "$2" --cache "$3" --url "$4" --server-pid "$5" "${@:6}" \
    --duration "$DURATION" --warmup "$WARMUP" --connections "$CONNECTIONS" --threads "$THREADS" \
    --cursor-cache "$RUN_DIR/cursors.txt" --out "$RESULTS" --run-id "$RUN_ID" --git-rev "$GIT_REV"
}

URL="http://127.0.0.1:$PORT"
if wants baseline || wants w1 || wants w2 || wants w3 || wants w4 || wants w5; then
  log "server with the cache on (CACHE_DEFAULT_TTL_SECS default)"
  start_server ""
  if wants baseline; then
    "$LOAD" capture --url "$URL" --out "$RUN_DIR/w1.json"
    "$LOAD" baseline --listen "127.0.0.1:$BASELINE_PORT" --body "$RUN_DIR/w1.json" >>"$RUN_DIR/baseline.log" 2>&1 &
    BASELINE_PID=$!
    "$LOAD" wait --url "http://127.0.0.1:$BASELINE_PORT" --timeout-secs 30 || die "the baseline did not start"
    run_w Baseline baseline none "http://127.0.0.1:$BASELINE_PORT" "$BASELINE_PID"
    stop_pid "$BASELINE_PID" baseline; BASELINE_PID=
  fi
  for w in w1 w2 w3 w4 w5; do
    wants "$w" || continue
    if [ "$w" = w4 ] && wants w4-off; then
      # W4 and W4-off compare the cache's cost on a miss: they run in
      # alternating 0.5 s slices against this server and a cache-off one, so
      # both see the same machine (on a shared one, two runs a minute apart
      # differed by up to 30%; two cache-off servers paired in 2 s slices
      # differed by up to 4.7%, in 0.5 s slices by up to 2.1%)
      log "cache-off server for W4-off on port $PAIR_PORT (interleaved with W4)"
      launch "$PAIR_PORT" 0 server-off.log
      PAIR_PID=$LAUNCHED
      run_w W4 w4 on "$URL" "$SERVER_PID" --pair-url "http://127.0.0.1:$PAIR_PORT" \
        --pair-label W4-off --pair-cache off --pair-server-pid "$PAIR_PID" --slice "${SLICE:-0.5}"
      stop_pid "$PAIR_PID" "cache-off server"; PAIR_PID=
    else
      run_w "${w^^}" "$w" on "$URL" "$SERVER_PID"
    fi
  done
  stop_pid "$SERVER_PID" server; SERVER_PID=
fi
PAIRED=; if wants w4 && wants w4-off; then PAIRED=1; fi
if wants w6 || { wants w4-off && [ -z "$PAIRED" ]; }; then
  log "server with the cache off (CACHE_DEFAULT_TTL_SECS=0)"
  start_server 0
  if wants w6; then run_w W6 w3 off "$URL" "$SERVER_PID"; fi
  if wants w4-off && [ -z "$PAIRED" ]; then run_w W4-off w4 off "$URL" "$SERVER_PID"; fi
  stop_pid "$SERVER_PID" server; SERVER_PID=
fi

cp "$RESULTS" benches/results/latest.jsonl
"$LOAD" table --input "$RESULTS" >benches/results/latest.md
log "results: $RESULTS (also latest.jsonl, latest.md); logs in $RUN_DIR"
cat benches/results/latest.md
