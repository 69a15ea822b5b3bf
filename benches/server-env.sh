# Sourced by run.sh, callgrind.sh and compare.sh: how every benchmark server
# is configured, and how its Redis keys are cleared, in one place. Expects
# PG and REDIS_URL to be set.
BENCH_DB=nexora_bench      # the servers' database (run.sh recreates it every run)
# fixed so the generator can sign users' tokens (W5); a benchmark-only value
export JWT_SECRET=nexora-benchmark-only-secret-0123456789abcdef

# bench_env PORT PREFIX: sets BENCH_ENV, the environment of a server on
# 127.0.0.1:PORT whose Redis keys start with PREFIX, for `env "${BENCH_ENV[@]}"`
bench_env() {
  BENCH_ENV=(JWT_SECRET="$JWT_SECRET" DATABASE_URL="$PG/$BENCH_DB" REDIS_URL="$REDIS_URL"
    REDIS_KEY_PREFIX="$2" LISTEN_ADDR="127.0.0.1:$1")
}

# del_keys PATTERN: deletes the Redis keys matching PATTERN (a benchmark
# prefix and `*`; never unprefixed keys), 500 per command
del_keys() {
  redis-cli -u "$REDIS_URL" --scan --pattern "$1" |
    xargs -r -d '\n' -n 500 redis-cli -u "$REDIS_URL" del >/dev/null
}
