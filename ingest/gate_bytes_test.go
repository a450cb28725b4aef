package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/backpressure"
	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/internal/testkit"
)

// logBatch begins an app_logs batch holding one event whose message is
// size bytes long.
func logBatch(t *testing.T, g *ingest.Gate, size int) *ingest.Batch {
	t.Helper()
	b, err := g.Begin("app_logs", ingest.Origin{Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Add(map[string]any{"ts": "2026-11-24T10:00:00Z", "service": "a", "level": "info", "message": strings.Repeat("m", size)}); err != nil {
		t.Fatal(err)
	}
	if r := b.Report(); r.Accepted != 1 {
		t.Fatalf("event not accepted: %+v", r)
	}
	return b
}

// The gate admits by bytes as well as by events: with room for many events
// but not for a second large one, the second is refused the way sources
// push back on (ErrOverloaded with the byte admission's Retry-After, which
// HTTP answers with 429 and MQTT and syslog wait out in CommitWait), and
// admitted once the first is acknowledged. A batch heavier than the whole
// byte capacity is refused as too large, and a refusal by bytes gives back
// the events it took.
func TestGateAdmitsByBytes(t *testing.T) {
	block := make(chan struct{})
	fp := &testkit.FakeProducer{Block: block}
	events := backpressure.NewAdmission(backpressure.AdmissionConfig{Capacity: 1000, MaxWait: time.Millisecond})
	bytes := backpressure.NewAdmission(backpressure.AdmissionConfig{Capacity: 48 << 10, MaxWait: time.Millisecond, RetryAfter: 3 * time.Second})
	g := newTestGate(t, fp, func(c *ingest.GateConfig) { c.Admission, c.AdmissionBytes = events, bytes })

	first := logBatch(t, g, 30<<10)
	firstDone := make(chan error, 1)
	go func() { firstDone <- first.Commit(context.Background()) }()
	testkit.Eventually(t, 5*time.Second, "the first batch admitted", func() bool { return bytes.InFlight() > 30<<10 })
	if got := events.InFlight(); got != 1 {
		t.Fatalf("%d events in flight, want 1", got)
	}

	second := logBatch(t, g, 30<<10)
	err := second.Commit(context.Background())
	if !errors.Is(err, ingest.ErrOverloaded) || ingest.RetryAfter(err) != 3*time.Second {
		t.Fatalf("second batch: %v (retry after %v), want ErrOverloaded after 3s", err, ingest.RetryAfter(err))
	}
	if got := events.InFlight(); got != 1 {
		t.Errorf("%d events in flight after a refusal by bytes, want the first batch's 1 only", got)
	}

	// A source that cannot shed waits (acks withheld, reads paused) and
	// gets through once the first batch is acknowledged.
	waited := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() { waited <- second.CommitWait(ctx) }()
	select {
	case err := <-waited:
		t.Fatalf("CommitWait returned %v while the bytes were still held", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(block)
	if err := <-firstDone; err != nil {
		t.Fatalf("first batch: %v", err)
	}
	if err := <-waited; err != nil {
		t.Fatalf("CommitWait after the first batch was acknowledged: %v", err)
	}
	if events.InFlight() != 0 || bytes.InFlight() != 0 {
		t.Errorf("after both: %d events, %d bytes in flight, want none", events.InFlight(), bytes.InFlight())
	}

	huge := logBatch(t, g, 60<<10)
	if err := huge.Commit(context.Background()); !errors.Is(err, ingest.ErrBatchTooLarge) {
		t.Fatalf("batch over the byte capacity: %v, want ErrBatchTooLarge", err)
	}
	if err := huge.CommitWait(context.Background()); !errors.Is(err, ingest.ErrBatchTooLarge) {
		t.Fatalf("CommitWait of a batch over the byte capacity: %v, want ErrBatchTooLarge at once", err)
	}
	if len(fp.Produced()) != 2 {
		t.Errorf("%d messages produced, want the two that fit", len(fp.Produced()))
	}
}

// A batch encodes its events into one buffer that the next batch reuses:
// the messages it committed keep their own bytes, whatever the batches
// after it encode, and the events that no longer fit in the buffer are
// kept as well.
func TestGateBatchesKeepTheirEncodedEvents(t *testing.T) {
	fp := &testkit.FakeProducer{}
	g := newTestGate(t, fp, nil)
	const n = 1000 // some 150 KB encoded: more than the buffer holds
	commit := func(prefix string) {
		t.Helper()
		b, err := g.Begin("iot_telemetry", ingest.Origin{Source: "test"})
		if err != nil {
			t.Fatal(err)
		}
		var body strings.Builder
		body.WriteString("[")
		for i := range n {
			if i > 0 {
				body.WriteString(",")
			}
			fmt.Fprintf(&body, `{"device_id":"%s-%d","ts":"2026-11-24T10:00:00Z","metrics":{"t":%d},"tags":{"site":"%s"}}`, prefix, i, i, strings.Repeat("s", i%50))
		}
		body.WriteString("]")
		if err := b.ReadJSON(strings.NewReader(body.String())); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	commit("a")
	commit("b")
	commit("c")
	msgs := fp.Produced()
	if len(msgs) != 3*n {
		t.Fatalf("%d messages produced, want %d", len(msgs), 3*n)
	}
	for i, m := range msgs {
		want := fmt.Sprintf("%s-%d", string("abc"[i/n]), i%n)
		var v struct {
			DeviceID string `json:"device_id"`
		}
		if err := json.Unmarshal(m.Value, &v); err != nil {
			t.Fatalf("message %d: value %q: %v", i, m.Value, err)
		}
		if string(m.Key) != want || v.DeviceID != want {
			t.Fatalf("message %d: key %q, device_id %q, want %q for both", i, m.Key, v.DeviceID, want)
		}
		if cap(m.Key) != len(m.Key) || cap(m.Value) != len(m.Value) {
			t.Fatalf("message %d: key or value can be appended to in place, over its neighbour", i)
		}
	}
}
