package mqtt

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/backpressure"
	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/internal/testkit"
)

// event is the part of a produced event the tests look at.
type event struct {
	EventID  string `json:"event_id"`
	DeviceID string `json:"device_id"`
	Service  string `json:"service"`
}

func decodeEvents(t testing.TB, msgs []kafka.Message) []event {
	t.Helper()
	out := make([]event, 0, len(msgs))
	for _, m := range msgs {
		var e event
		if err := json.Unmarshal(m.Value, &e); err != nil {
			t.Fatalf("event at offset %d: %v: %s", m.Offset, err, m.Value)
		}
		out = append(out, e)
	}
	return out
}

func newTestHandler(t testing.TB, k *testkit.Kafka, deriveIDs bool, opts ...testkit.GateOption) *Handler {
	t.Helper()
	h, _ := newTestHandlerReg(t, k, deriveIDs, opts...)
	return h
}

// newTestHandlerReg is newTestHandler that also returns the registry of the
// handler's and the gate's metrics.
func newTestHandlerReg(t testing.TB, k *testkit.Kafka, deriveIDs bool, opts ...testkit.GateOption) (*Handler, *prometheus.Registry) {
	t.Helper()
	routes, err := ParseRoutes(nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	h, err := NewHandler(HandlerConfig{Gate: testkit.NewGate(t, k, reg, opts...), Routes: routes, DeriveIDs: deriveIDs,
		Logger: testkit.QuietLogger(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return h, reg
}

func telemetry(device string, temp float64) string {
	d := ""
	if device != "" {
		d = `"device_id":"` + device + `",`
	}
	b, _ := json.Marshal(temp)
	return `{` + d + `"ts":"2026-11-24T10:00:00Z","metrics":{"temperature":` + string(b) + `}}`
}

// TestHandler feeds one message of each kind through a Handler into Kafka
// and checks what lands in the stream and in sluice.dlq.
func TestHandler(t *testing.T) {
	k := testkit.StartKafka(t)
	h := newTestHandler(t, k, true)
	ctx := context.Background()
	msgs := []struct{ topic, payload string }{
		{"devices/d1/telemetry", telemetry("", 1)},                                                   // device from the topic
		{"devices/d2/telemetry", telemetry("own", 2)},                                                // payload wins
		{"devices/d3/telemetry", "[" + telemetry("", 3) + "," + telemetry("", 4) + "]"},              // array
		{"devices/d4/telemetry", telemetry("", 5) + "\n\n" + telemetry("", 6) + "\n"},                // NDJSON
		{"devices/d5/telemetry", "not json"},                                                         // dead letter
		{"devices/d6/telemetry", `{"ts":"2026-11-24T10:00:00Z"}`},                                    // invalid event
		{"services/checkout/logs", `{"ts":"2026-11-24T10:00:00Z","level":"info","message":"hello"}`}, // other stream
		{"elsewhere/x", telemetry("", 7)},                                                            // unrouted: dropped
	}
	for _, m := range msgs {
		if err := h.Handle(ctx, m.topic, []byte(m.payload)); err != nil {
			t.Fatalf("Handle(%s): %v", m.topic, err)
		}
	}

	got := map[string]int{}
	for _, e := range decodeEvents(t, k.ReadTopic(t, testkit.StreamTopic("iot_telemetry"))) {
		got[e.DeviceID]++
		if e.EventID == "" {
			t.Errorf("event of %s without event_id", e.DeviceID)
		}
	}
	want := map[string]int{"d1": 1, "own": 1, "d3": 2, "d4": 2}
	if len(got) != len(want) {
		t.Errorf("telemetry by device = %v, want %v", got, want)
	}
	for d, n := range want {
		if got[d] != n {
			t.Errorf("telemetry by device = %v, want %v", got, want)
			break
		}
	}
	logs := decodeEvents(t, k.ReadTopic(t, testkit.StreamTopic("app_logs")))
	if len(logs) != 1 || logs[0].Service != "checkout" {
		t.Errorf("app_logs = %+v, want one event of service checkout", logs)
	}

	dead := map[string]string{}
	for _, r := range k.DeadLetters(t) {
		if r.Source != Source {
			t.Errorf("dead letter source = %q, want %q", r.Source, Source)
		}
		dead[r.Origin] = r.Reason
	}
	if len(dead) != 2 || !strings.Contains(dead["devices/d6/telemetry"], "metrics") || dead["devices/d5/telemetry"] == "" {
		t.Errorf("dead letters by topic = %v, want d5 (not JSON) and d6 (metrics required)", dead)
	}
}

// TestHandlerDerivedIDs checks that a redelivered message gets the same
// event_ids (and a different message different ones), and that random ids
// are used when derivation is off.
func TestHandlerDerivedIDs(t *testing.T) {
	for _, derive := range []bool{true, false} {
		t.Run(map[bool]string{true: "derived", false: "random"}[derive], func(t *testing.T) {
			k := testkit.StartKafka(t)
			h := newTestHandler(t, k, derive)
			payload := []byte("[" + telemetry("", 1) + "," + telemetry("", 1) + "]")
			for _, topic := range []string{"devices/a/telemetry", "devices/a/telemetry", "devices/b/telemetry"} {
				if err := h.Handle(context.Background(), topic, payload); err != nil {
					t.Fatal(err)
				}
			}
			ids := map[string]int{}
			evs := decodeEvents(t, k.ReadTopic(t, testkit.StreamTopic("iot_telemetry")))
			for _, e := range evs {
				ids[e.EventID]++
			}
			if len(evs) != 6 {
				t.Fatalf("%d events, want 6", len(evs))
			}
			// Derived: a's two deliveries share two ids, b has its own two.
			want := 4
			if !derive {
				want = 6
			}
			if len(ids) != want {
				t.Errorf("%d distinct event_ids among 6 events, want %d", len(ids), want)
			}
		})
	}
}

// TestHandlerWaitsForKafka checks that Handle does not return while Kafka
// refuses produce requests, and returns nil once it is back.
func TestHandlerWaitsForKafka(t *testing.T) {
	k := testkit.StartKafka(t)
	out := kafkaOutage(k)
	h := newTestHandler(t, k, true, func(c *ingest.GateConfig) { c.ProduceTimeout = time.Second })
	out.Down()
	done := make(chan error, 1)
	go func() { done <- h.Handle(context.Background(), "devices/x/telemetry", []byte(telemetry("", 1))) }()
	select {
	case err := <-done:
		t.Fatalf("Handle returned while Kafka was down: %v", err)
	case <-time.After(1500 * time.Millisecond):
	}
	out.Up()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Handle still waiting 30 s after Kafka came back")
	}
	if n := len(k.ReadTopic(t, testkit.StreamTopic("iot_telemetry"))); n != 1 {
		t.Errorf("%d events in Kafka, want 1", n)
	}

	// A context that ends first: an error, so the message is not acked.
	out.Down()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := h.Handle(ctx, "devices/y/telemetry", []byte(telemetry("", 1))); err == nil {
		t.Error("Handle returned nil while Kafka was down and its context ended")
	}
	out.Up()
}

// TestHandlerTooLargeForAdmission checks that a message with more events
// than may ever be in flight is dead-lettered instead of held for good.
func TestHandlerTooLargeForAdmission(t *testing.T) {
	k := testkit.StartKafka(t)
	h := newTestHandler(t, k, true, func(c *ingest.GateConfig) {
		c.Admission = backpressure.NewAdmission(backpressure.AdmissionConfig{Capacity: 2})
	})
	payload := telemetry("", 1) + "\n" + telemetry("", 2) + "\n" + telemetry("", 3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Handle(ctx, "devices/big/telemetry", []byte(payload)); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	dead := k.DeadLetters(t)
	if len(dead) != 1 || dead[0].Origin != "devices/big/telemetry" || !strings.Contains(dead[0].Reason, "in flight") {
		t.Errorf("dead letters = %+v, want one for devices/big/telemetry saying the batch is too large", dead)
	}
	if n := len(k.ReadTopic(t, testkit.StreamTopic("iot_telemetry"))); n != 0 {
		t.Errorf("%d events in the stream, want 0", n)
	}
}

// HandleAll commits a group of messages together; when the group is more
// than may be in flight at once, each message is committed alone, and only
// one that is too large by itself is dead-lettered.
func TestHandleAllGroups(t *testing.T) {
	k := testkit.StartKafka(t)
	h := newTestHandler(t, k, true, func(c *ingest.GateConfig) {
		c.Admission = backpressure.NewAdmission(backpressure.AdmissionConfig{Capacity: 2})
	})
	msgs := []Message{
		{Topic: "devices/a/telemetry", Payload: []byte(telemetry("", 1))},
		{Topic: "devices/b/telemetry", Payload: []byte(telemetry("", 2))},
		{Topic: "services/checkout/logs", Payload: []byte(`{"ts":"2026-11-24T10:00:00Z","level":"loud","message":"m"}`)},
		{Topic: "devices/c/telemetry", Payload: []byte(telemetry("", 3) + "\n" + telemetry("", 4) + "\n" + telemetry("", 5))},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.HandleAll(ctx, msgs); err != nil {
		t.Fatalf("HandleAll: %v", err)
	}
	evs := decodeEvents(t, k.ReadTopic(t, testkit.StreamTopic("iot_telemetry")))
	devices := map[string]bool{}
	for _, e := range evs {
		devices[e.DeviceID] = true
	}
	if len(evs) != 2 || !devices["a"] || !devices["b"] {
		t.Errorf("events %+v, want one each from devices a and b", evs)
	}
	dead := k.DeadLetters(t)
	origins := map[string]string{}
	for _, d := range dead {
		origins[d.Origin] = d.Reason
	}
	if len(dead) != 2 || !strings.Contains(origins["services/checkout/logs"], "level") || !strings.Contains(origins["devices/c/telemetry"], "in flight") {
		t.Errorf("dead letters %+v: want the invalid log and the too-large message", dead)
	}
}
