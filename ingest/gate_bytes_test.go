package ingest_test

import (
	"context"
	"errors"
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
