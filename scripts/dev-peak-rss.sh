#!/usr/bin/env bash
# Measures the peak resident memory of `sluice dev` under a saturating HTTP
# load: the figure the memory ceiling is about, for the whole process
# (collectors, embedded broker and NATS, workers).
#
#   scripts/dev-peak-rss.sh [BINARY] [MEMORY_LIMIT] [SECONDS]
#
# Defaults: bin/sluice, 256MiB, 30. Needs the local ClickHouse
# (scripts/clickhouse.sh start). It starts `sluice dev` on 127.0.0.1:18080
# with a fresh data directory and database, drives it with `sluice loadgen
# --rate 0` (32 clients, batches of 100) for SECONDS, samples VmRSS every
# 100 ms from /proc, stops dev, drops the database, and prints the peak and
# what was acknowledged. docs/benchmarks.md quotes it.
set -euo pipefail
bin=${1:-bin/sluice}
limit=${2:-256MiB}
secs=${3:-30}
dir=$(mktemp -d)
addr=127.0.0.1:18080
db=peak_rss_$$

"$bin" dev --data-dir "$dir/data" --memory-limit "$limit" --http-addr "$addr" \
  --clickhouse-database "$db" >"$dir/dev.log" 2>&1 &
dev=$!
trap 'kill $dev 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -sf "http://$addr/readyz" >/dev/null && break
  sleep 0.5
done

( while kill -0 "$dev" 2>/dev/null; do
    awk '/VmRSS/ {print $2}' "/proc/$dev/status" 2>/dev/null || true
    sleep 0.1
  done ) >"$dir/rss.kb" &
sampler=$!

"$bin" loadgen --url "http://$addr" --rate 0 --concurrency 32 --batch-size 100 \
  --duration "${secs}s" --json >"$dir/loadgen.json" 2>"$dir/loadgen.log"
sleep 2
kill -TERM "$dev"
wait "$dev" || true
wait "$sampler" 2>/dev/null || true

clickhouse-client --query "DROP DATABASE IF EXISTS $db" 2>/dev/null || true

peak=$(sort -n "$dir/rss.kb" | tail -1)
acked=$(grep -o '"acked_total": *[0-9]*' "$dir/loadgen.json" | grep -o '[0-9]*$' || echo '?')
rate=$(grep -o '"events_per_second": *[0-9]*' "$dir/loadgen.json" | grep -o '[0-9]*$' || echo '?')
echo "sluice dev --memory-limit $limit, ${secs}s of loadgen --rate 0: peak VmRSS $((peak / 1024)) MiB ($peak kB); $acked events acknowledged ($rate/s)"
echo "logs: $dir"
