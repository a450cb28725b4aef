#!/usr/bin/env bash
# The demo: `sluice dev` under simulated load from two `sluice loadgen`s at
# once, HTTP clients and MQTT devices (publishing to sluice dev's embedded
# broker), then a summary per source of what was acknowledged, accepted and
# landed in ClickHouse. DURATION (e.g. 30s) stops it by itself; without it, it
# runs until Ctrl-C. RATE is the total; MQTT_RATE (default half of it) goes
# over MQTT. Run through `make demo`, which builds the binary and starts
# ClickHouse first.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/bin/sluice"
DIR="$ROOT/.local/demo"
DB=${DEMO_DATABASE:-sluice_demo}
RATE=${RATE:-20000}
MQTT_RATE=${MQTT_RATE:-$((RATE / 2))}
HTTP_RATE=$((RATE - MQTT_RATE))
DURATION=${DURATION:-}
HTTP_ADDR=127.0.0.1:${DEMO_HTTP_PORT:-8080}
MQTT_ADDR=127.0.0.1:${DEMO_MQTT_PORT:-1883}
# Each loadgen's run id prefixes its event_ids, which is how ClickHouse rows
# are told apart by source below.
RUN=demo$(date +%s)
export PATH="$PATH:/usr/sbin:/usr/local/sbin"

say() { echo "demo: $*" >&2; }
ch() { clickhouse-client --host 127.0.0.1 --port 9000 --database "$DB" "$@"; }

# A fresh broker and database each run, so the summary shows this run only.
rm -rf "$DIR"
mkdir -p "$DIR"
clickhouse-client --host 127.0.0.1 --port 9000 -q "DROP DATABASE IF EXISTS $DB"

# A Sluice (or anything) already on the demo's ports would answer in its
# place; refuse rather than report on someone else's pipeline.
for addr in "$HTTP_ADDR" "$MQTT_ADDR" 127.0.0.1:${DEMO_KAFKA_PORT:-9092} 127.0.0.1:${DEMO_NATS_PORT:-4222}; do
	if (exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}") 2>/dev/null; then
		say "something already listens on $addr; stop it, or choose other ports with DEMO_HTTP_PORT, DEMO_MQTT_PORT, DEMO_KAFKA_PORT, DEMO_NATS_PORT"
		exit 1
	fi
done

# per_source prints one row per source and stream. A loadgen's run id
# prefixes its event_ids, so ClickHouse rows are counted by prefix.
per_source() {
	printf '%-6s %-14s %12s %12s %12s %12s\n' source stream loadgen_acked sluice_accepted ch_rows ch_distinct
	for src in http mqtt; do
		for stream in iot_telemetry app_logs; do
			acked=$(jq -r ".acked.$stream // 0" "$DIR/loadgen-$src.json" 2>/dev/null)
			accepted=$(awk -v src="$src" -v st="$stream" '
				/^sluice_ingest_events_total\{/ && index($0, "source=\"" src "\"") && index($0, "stream=\"" st "\"") && index($0, "result=\"accepted\"") { n += $NF }
				END { printf "%d", n }' "$DIR/metrics.txt")
			rows=$(ch -q "SELECT count(), uniqExact(event_id) FROM $stream WHERE startsWith(event_id, '$RUN-$src-')" 2>/dev/null | tr '\t' ' ')
			printf '%-6s %-14s %12s %12s %12s %12s\n' "$src" "$stream" "${acked:-?}" "$accepted" ${rows:-? ?}
		done
	done
}

say "starting sluice dev (log: $DIR/sluice.log)"
# Its own session: Ctrl-C goes to the load generator only, and sluice dev
# keeps running until the script has verified and stops it with SIGTERM.
setsid "$BIN" dev --data-dir "$DIR/data" --http-addr "$HTTP_ADDR" --mqtt-addr "$MQTT_ADDR" \
	--kafka-addr 127.0.0.1:${DEMO_KAFKA_PORT:-9092} --nats-addr 127.0.0.1:${DEMO_NATS_PORT:-4222} \
	--clickhouse-database "$DB" >"$DIR/sluice.log" 2>&1 &
SLUICE=$!
stop_sluice() {
	if kill -0 "$SLUICE" 2>/dev/null; then
		say "stopping sluice dev (it drains and commits first)"
		kill -TERM "$SLUICE"
		wait "$SLUICE"
	fi
}
trap stop_sluice EXIT

for i in $(seq 1 60); do
	if curl -fsS "http://$HTTP_ADDR/readyz" >/dev/null 2>&1; then break; fi
	if ! kill -0 "$SLUICE" 2>/dev/null; then say "sluice dev exited:"; tail -20 "$DIR/sluice.log" >&2; exit 1; fi
	sleep 0.5
done
curl -fsS "http://$HTTP_ADDR/readyz" >/dev/null || { say "sluice dev not ready after 30s"; tail -20 "$DIR/sluice.log" >&2; exit 1; }

if [ -n "$DURATION" ]; then
	say "load for $DURATION: $HTTP_RATE events/s over HTTP, $MQTT_RATE over MQTT"
else
	say "load until Ctrl-C: $HTTP_RATE events/s over HTTP, $MQTT_RATE over MQTT"
fi
# Ctrl-C reaches the HTTP loadgen in the foreground. The MQTT devices run
# in a session of their own and get each Ctrl-C exactly once, as SIGTERM
# from here (loadgen stops gracefully on the first, abandons what is in
# flight on the second): bash runs no INT trap while a foreground child
# that handles SIGINT runs, so the first is sent when the HTTP loadgen
# returns, and the trap sends the next. Then this script goes on to the
# verification and the summary.
setsid "$BIN" loadgen --protocol mqtt --mqtt-broker "tcp://$MQTT_ADDR" --run-id "$RUN-mqtt" --rate "$MQTT_RATE" \
	--concurrency 64 --batch-size 20 \
	${DURATION:+--duration "$DURATION"} --json >"$DIR/loadgen-mqtt.json" 2>"$DIR/loadgen-mqtt.log" &
MQTT_LOADGEN=$!
MQTT_TERMS=0
stop_mqtt_loadgen() { MQTT_TERMS=$((MQTT_TERMS + 1)); kill -TERM "$MQTT_LOADGEN" 2>/dev/null; }
trap 'say "interrupted: finishing"; stop_mqtt_loadgen' INT
"$BIN" loadgen --url "http://$HTTP_ADDR" --run-id "$RUN-http" --rate "$HTTP_RATE" --concurrency 16 --batch-size 100 \
	${DURATION:+--duration "$DURATION"} --json >"$DIR/loadgen-http.json"
LOADGEN_STATUS=$?
# Without DURATION the HTTP loadgen ends on Ctrl-C (or on an error): the
# MQTT devices stop with it.
if [ "$MQTT_TERMS" -eq 0 ] && { [ -z "$DURATION" ] || [ "$LOADGEN_STATUS" -ne 0 ]; }; then
	stop_mqtt_loadgen
fi
wait "$MQTT_LOADGEN"
MQTT_STATUS=$?
# A Ctrl-C during the wait interrupts it: wait again for the real status.
while kill -0 "$MQTT_LOADGEN" 2>/dev/null; do
	wait "$MQTT_LOADGEN"
	MQTT_STATUS=$?
done
[ "$MQTT_STATUS" -eq 0 ] || { LOADGEN_STATUS=$MQTT_STATUS; say "MQTT loadgen failed (log: $DIR/loadgen-mqtt.log):"; tail -5 "$DIR/loadgen-mqtt.log" >&2; }
trap - INT
# What the collectors accepted, per source and stream, before sluice stops.
curl -fsS --max-time 10 "http://$HTTP_ADDR/metrics" >"$DIR/metrics.txt" 2>"$DIR/metrics.err" || say "cannot read http://$HTTP_ADDR/metrics: $(cat "$DIR/metrics.err")"
if kill -0 "$SLUICE" 2>/dev/null; then
	say "reconciling Kafka with ClickHouse (sluice verify)"
	"$BIN" verify --kafka-brokers 127.0.0.1:${DEMO_KAFKA_PORT:-9092} --clickhouse-database "$DB" --wait 60s >"$DIR/verify.txt" 2>"$DIR/verify.log"
	VERIFY_STATUS=$?
else
	VERIFY_STATUS=1
	echo "sluice dev is not running: nothing to verify" >"$DIR/verify.txt"
fi
PEAK_RSS=$(awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' "/proc/$SLUICE/status" 2>/dev/null)
stop_sluice
trap - EXIT

echo
echo "=== What landed in ClickHouse (database $DB) ==="
ch -q "SELECT 'iot_telemetry' AS table, count() AS rows, uniqExact(event_id) AS distinct_events FROM iot_telemetry
       UNION ALL SELECT 'app_logs', count(), uniqExact(event_id) FROM app_logs FORMAT PrettyCompact"
echo "Five busiest devices:"
ch -q "SELECT device_id, count() AS events,
              round(avgIf(metrics.value[indexOf(metrics.name, 'temperature')], has(metrics.name, 'temperature')), 2) AS avg_temperature
       FROM iot_telemetry
       GROUP BY device_id ORDER BY events DESC, device_id LIMIT 5 FORMAT PrettyCompact"
echo "Errors per service:"
ch -q "SELECT service, countIf(level = 'error') AS errors, countIf(level = 'fatal') AS fatals, count() AS lines
       FROM app_logs GROUP BY service ORDER BY errors DESC, service LIMIT 20 FORMAT PrettyCompact"
echo "Per source: acknowledged to loadgen, accepted by sluice dev (/metrics), landed in ClickHouse:"
per_source
for src in http mqtt; do
	echo "Load generator over $src (events acknowledged, ack latency):"
	jq -c '{events_per_second: (.events_per_second|floor), acked, unacked, latency}' "$DIR/loadgen-$src.json" 2>/dev/null || cat "$DIR/loadgen-$src.json"
done
echo "Peak memory of sluice dev (embedded Kafka and NATS included): ${PEAK_RSS:-unknown}"
echo "Kafka vs ClickHouse (sluice verify):"
cat "$DIR/verify.txt"
[ "$LOADGEN_STATUS" -eq 0 ] && [ "$VERIFY_STATUS" -eq 0 ]
