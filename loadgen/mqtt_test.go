package loadgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/internal/testkit/mqttkit"
)

// startBroker runs Sluice's embedded MQTT broker in front of an embedded
// Kafka, stopped when t ends.
func startBroker(t *testing.T) (*testkit.Kafka, string) {
	t.Helper()
	k := testkit.StartKafka(t)
	e, _ := mqttkit.StartEmbeddedMQTT(t, k, 0)
	return k, "tcp://" + e.Addr()
}

// Every event loadgen counts as acknowledged over MQTT is in Kafka, with
// the device or service the topic named, and each exactly once.
func TestMQTTEventsLandInKafka(t *testing.T) {
	for _, batch := range []int{1, 7} {
		t.Run(fmt.Sprintf("batch%d", batch), func(t *testing.T) {
			k, broker := startBroker(t)
			var acks bytes.Buffer
			cfg := Config{Protocol: ProtocolMQTT, MQTTBroker: broker, MaxEvents: 1000, BatchSize: batch, Concurrency: 4,
				Devices: 50, Services: 5, Mix: 0.5, RunID: "mq1", AckLog: &acks, ReportInterval: -1, Logger: testkit.QuietLogger()}
			sum, err := Run(t.Context(), cfg, nil)
			if err != nil {
				t.Fatalf("run: %v (%+v)", err, sum)
			}
			if sum.AckedTotal != 1000 || sum.Acked[StreamIoT] == 0 || sum.Acked[StreamLogs] == 0 || sum.Latency.Count == 0 {
				t.Fatalf("summary %+v: want 1000 events of both streams acknowledged, with latencies", sum)
			}
			if n := strings.Count(acks.String(), "\n"); n != 1000 {
				t.Errorf("ack log has %d lines, want 1000", n)
			}
			for _, st := range Streams {
				checkKafka(t, k, st, "mq1", sum.Sent[st])
			}
			if dl := k.DeadLetters(t); len(dl) != 0 {
				t.Errorf("%d dead letters, first %+v", len(dl), dl[0])
			}
		})
	}
}

// checkKafka checks that stream's topic holds the events seq 1..n of run,
// once each, with device_id or service filled from the topic.
func checkKafka(t *testing.T, k *testkit.Kafka, stream, run string, n int64) {
	t.Helper()
	seen := map[string]bool{}
	for _, m := range k.ReadTopic(t, testkit.StreamTopic(stream)) {
		var ev struct {
			EventID  string `json:"event_id"`
			DeviceID string `json:"device_id"`
			Service  string `json:"service"`
		}
		if err := json.Unmarshal(m.Value, &ev); err != nil {
			t.Fatal(err)
		}
		if seen[ev.EventID] {
			t.Errorf("%s: %s twice", stream, ev.EventID)
		}
		seen[ev.EventID] = true
		if (stream == StreamIoT && !strings.HasPrefix(ev.DeviceID, "sensor-")) || (stream == StreamLogs && ev.Service == "") {
			t.Errorf("%s: event without its device or service: %s", stream, m.Value)
		}
	}
	for seq := int64(1); seq <= n; seq++ {
		if id := EventID(run, stream, seq); !seen[id] {
			t.Errorf("%s: %s not in Kafka", stream, id)
		}
	}
	if int64(len(seen)) != n {
		t.Errorf("%s: %d events in Kafka, want %d", stream, len(seen), n)
	}
}

// An MQTT message holds one device's (or service's) events without the
// field its topic carries: a JSON object for one event, else an array.
func TestMQTTMessage(t *testing.T) {
	cfg, err := Config{Protocol: ProtocolMQTT, RunID: "m", Mix: 0.5, Devices: 20, Services: 4}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	r := newRunner(cfg)
	r.gen = newGenerator(cfg.RunID, cfg.Devices, cfg.Services, time.Now())
	r.topics = mqttTopics(r.gen)
	w := newWorker()
	for _, b := range []batch{{index: 1, stream: iotIdx, first: 1, n: 1}, {index: 2, stream: logsIdx, first: 1, n: 5}, {index: 3, stream: iotIdx, first: 2, n: 3}} {
		w.pcg.Seed(1, b.index)
		topic, body := r.mqttMessage(w, b, time.Now())
		field := map[int]string{iotIdx: "device_id", logsIdx: "service"}[b.stream]
		if bytes.Contains(body, []byte(field)) {
			t.Errorf("%s: payload names %s: %s", topic, field, body)
		}
		var evs []map[string]any
		if b.n == 1 {
			var ev map[string]any
			err = json.Unmarshal(body, &ev)
			evs = append(evs, ev)
		} else {
			err = json.Unmarshal(body, &evs)
		}
		if err != nil || len(evs) != b.n {
			t.Fatalf("%s: %d events (%v) in %s, want %d", topic, len(evs), err, body, b.n)
		}
		for i, ev := range evs {
			if ev["event_id"] != EventID("m", Streams[b.stream], b.first+int64(i)) {
				t.Errorf("%s: event %d has event_id %v", topic, i, ev["event_id"])
			}
		}
		if !strings.HasPrefix(topic, map[int]string{iotIdx: "devices/sensor-", logsIdx: "services/"}[b.stream]) {
			t.Errorf("topic %q", topic)
		}
	}
}

// A publish whose PUBACK does not come within the timeout is retried over a
// new connection with the same event_ids, until acknowledged.
func TestMQTTRetriesUnacknowledgedPublishes(t *testing.T) {
	k, broker := startBroker(t)
	// Kafka holds the produce requests of the first second, so the first
	// publishes time out while their events wait.
	release := make(chan struct{})
	k.Cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		k.Cluster.KeepControl()
		<-release
		return nil, nil, false
	})
	timer := time.AfterFunc(time.Second, func() { close(release) })
	t.Cleanup(func() { timer.Stop() })
	cfg := Config{Protocol: ProtocolMQTT, MQTTBroker: broker, MaxEvents: 200, BatchSize: 10, Concurrency: 2,
		Mix: 0.5, RunID: "mq2", Timeout: 300 * time.Millisecond, MinBackoff: 50 * time.Millisecond,
		ReportInterval: -1, Logger: testkit.QuietLogger()}
	sum, err := Run(t.Context(), cfg, nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if sum.AckedTotal != 200 || sum.Retries == 0 || sum.ErrorsByCause["timeout"] == 0 {
		t.Fatalf("summary %+v: want 200 acknowledged after timed-out publishes were retried", sum)
	}
	for _, st := range Streams {
		checkKafkaIDs(t, k, st, "mq2", sum.Sent[st])
	}
}

// checkKafkaIDs checks that stream's topic holds at least the events seq
// 1..n of run: a retried publish may have put some there twice, which
// dedupe by event_id downstream absorbs.
func checkKafkaIDs(t *testing.T, k *testkit.Kafka, stream, run string, n int64) {
	t.Helper()
	seen := map[string]bool{}
	for _, m := range k.ReadTopic(t, testkit.StreamTopic(stream)) {
		var ev struct {
			EventID string `json:"event_id"`
		}
		if err := json.Unmarshal(m.Value, &ev); err != nil {
			t.Fatal(err)
		}
		seen[ev.EventID] = true
	}
	for seq := int64(1); seq <= n; seq++ {
		if id := EventID(run, stream, seq); !seen[id] {
			t.Errorf("%s: %s not in Kafka", stream, id)
		}
	}
}
