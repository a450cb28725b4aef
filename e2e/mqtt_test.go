package e2e

import (
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/ingest/mqtt"
	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/pipeline"
)

// mqttLines is n distinct telemetry payloads without device_id (the topic
// gives it). Distinct matters: events without event_id get one derived from
// topic and payload, so byte-identical messages on one topic count once.
func mqttLines(device, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(`{"ts":"2026-11-24T10:00:00.123Z","metrics":{"temperature":%d.5,"device":%d}}`, i, device)
	}
	return out
}

// publishMQTT runs one `mosquitto_pub -q 1 -l` per device, each publishing
// perDevice messages; it returns once mosquitto acknowledged them all.
func publishMQTT(t *testing.T, m *testkit.Mosquitto, devices, perDevice int) {
	t.Helper()
	var wg sync.WaitGroup
	for d := range devices {
		wg.Go(func() { m.Publish(t, fmt.Sprintf("devices/mqtt-%d/telemetry", d), mqttLines(d, perDevice)) })
	}
	wg.Wait()
}

// mqttSubscriber is the factory `sluice run --mqtt-broker` builds, for an
// in-process stack.
func mqttSubscriber(broker, clientID string) pipeline.SourceFactory {
	return func(gate *ingest.Gate, reg prometheus.Registerer, log *slog.Logger) (ingest.Source, error) {
		routes, err := mqtt.ParseRoutes(nil)
		if err != nil {
			return nil, err
		}
		h, err := mqtt.NewHandler(mqtt.HandlerConfig{Gate: gate, Routes: routes, DeriveIDs: true, Logger: log, Registerer: reg})
		if err != nil {
			return nil, err
		}
		return mqtt.NewSubscriber(mqtt.SubscriberConfig{Broker: broker, Handler: h, ClientID: clientID,
			ShareGroup: mqtt.DefaultShareGroup, Logger: log, Registerer: reg})
	}
}

// TestMQTTExactlyOnce: 50,000 QoS 1 messages from four mosquitto_pub
// devices through mosquitto and the subscriber land in ClickHouse exactly
// once.
func TestMQTTExactlyOnce(t *testing.T) {
	db := newTestDB(t)
	m := testkit.StartMosquitto(t, "")
	startStack(t, db, func(c *pipeline.Config) {
		c.Sources = append(c.Sources, mqttSubscriber(m.URL, "sluice-e2e-"+randomSuffix()))
	})
	time.Sleep(time.Second) // connected and subscribed
	const devices, perDevice = 4, 12_500
	publishMQTT(t, m, devices, perDevice)
	const want = devices * perDevice
	db.waitRows(t, map[string]uint64{"iot_telemetry": want}, 60*time.Second)
	if rows, distinct := db.counts(t, "iot_telemetry"); rows != want || distinct != want {
		t.Errorf("iot_telemetry: count() = %d, distinct event_id = %d, want %d", rows, distinct, want)
	}
}

// TestMQTTCollectorKill: the collector (`sluice run --role ingest
// --mqtt-broker`) is SIGKILLed in the middle of a QoS 1 flood and started
// again with the same client id. Every message mosquitto accepted from the
// devices lands in ClickHouse exactly once: what the dead collector had not
// acknowledged, mosquitto redelivers; what it had written to Kafka but not
// acknowledged comes again with the same derived event_ids.
func TestMQTTCollectorKill(t *testing.T) {
	db := newTestDB(t)
	s := newSplitStack(t, db)
	m := testkit.StartMosquitto(t, "")
	s.startWorker()
	args := append(s.ingestArg, "--mqtt-broker", m.URL, "--mqtt-client-id", "sluice-e2e-kill", "--log-level", "debug")
	ingestProc := startProc(t, "ingest-1", args...)
	waitReady(t, s.ingestURL, ingestProc.exited())
	time.Sleep(time.Second) // subscribed

	const devices, perDevice = 4, 10_000
	published := make(chan struct{})
	go func() {
		defer close(published)
		publishMQTT(t, m, devices, perDevice)
	}()
	// Kill once part of the flood is in Kafka and more is in flight.
	deadline := time.Now().Add(30 * time.Second)
	for rows, _ := db.counts(t, "iot_telemetry"); rows < 2_000; rows, _ = db.counts(t, "iot_telemetry") {
		if time.Now().After(deadline) {
			t.Fatalf("only %d rows 30 s into the flood", rows)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ingestProc.kill()
	rows, _ := db.counts(t, "iot_telemetry")
	t.Logf("collector killed with %d rows in ClickHouse", rows)
	time.Sleep(500 * time.Millisecond)
	again := startProc(t, "ingest-2", args...)
	waitReady(t, s.ingestURL, again.exited())
	<-published

	const want = devices * perDevice
	db.waitRows(t, map[string]uint64{"iot_telemetry": want}, 60*time.Second)
	if rows, distinct := db.counts(t, "iot_telemetry"); rows != want || distinct != want {
		t.Errorf("iot_telemetry: count() = %d, distinct event_id = %d, want %d", rows, distinct, want)
	}
	s.verify(t)
}
