package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/schemas"
)

// fakeFetcher serves offsets [0, high) of one partition and fails once at
// each offset in fail, as kafka-go's reader does after failed
// initialisations.
type fakeFetcher struct {
	s      *fetchScript
	offset int64
}

type fetchScript struct {
	mu      sync.Mutex
	high    int64
	fail    map[int64]bool
	readers []int64 // the offset each new reader was set to
}

func (f *fakeFetcher) SetOffset(o int64) error {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	f.offset = o
	f.s.readers = append(f.s.readers, o)
	return nil
}

func (f *fakeFetcher) FetchMessage(ctx context.Context) (kafka.Message, error) {
	f.s.mu.Lock()
	if f.offset >= f.s.high {
		f.s.mu.Unlock()
		<-ctx.Done()
		return kafka.Message{}, ctx.Err()
	}
	if f.s.fail[f.offset] {
		delete(f.s.fail, f.offset)
		f.s.mu.Unlock()
		return kafka.Message{}, errors.New("failed to dial: broker not available")
	}
	m := kafka.Message{Offset: f.offset, HighWaterMark: f.s.high}
	f.offset++
	f.s.mu.Unlock()
	return m, nil
}

func (f *fakeFetcher) Close() error { return nil }

// A failed read does not end a lane: it reads on from the next offset on a
// new reader, skipping and repeating nothing, and counts the failure.
func TestLaneFetchSurvivesErrors(t *testing.T) {
	old := fetchRetry
	fetchRetry.Initial, fetchRetry.Max = time.Millisecond, 5*time.Millisecond
	t.Cleanup(func() { fetchRetry = old })

	script := &fetchScript{high: 50, fail: map[int64]bool{0: true, 10: true, 11: true, 30: true}}
	c := &Consumer{
		log:        slog.New(slog.DiscardHandler),
		metrics:    newConsumerMetrics(nil),
		newFetcher: func(string, int32) fetcher { return &fakeFetcher{s: script} },
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := &lane{c: c, topic: "sluice.iot_telemetry", stream: testkit.Stream(t, "iot_telemetry"), partition: 3, stop: ctx}
	msgs := make(chan kafka.Message)
	go l.fetch(msgs)

	for want := int64(0); want < script.high; want++ {
		select {
		case m := <-msgs:
			if m.Offset != want {
				t.Fatalf("offset %d read, want %d", m.Offset, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("lane stopped reading at offset %d", want)
		}
	}
	cancel()
	if _, open := <-msgs; open {
		t.Error("msgs not closed when the lane stopped")
	}
	if n := testutil.ToFloat64(c.metrics.fetchErrors.WithLabelValues("iot_telemetry")); n != 4 {
		t.Errorf("%v fetch errors counted, want 4", n)
	}
	script.mu.Lock()
	defer script.mu.Unlock()
	if want := []int64{0, 0, 10, 11, 30}; fmt.Sprint(script.readers) != fmt.Sprint(want) {
		t.Errorf("readers set to %v, want %v", script.readers, want)
	}
}

// flakyOpener fails its first fails calls, as ClickHouse does while it is
// down.
type flakyOpener struct {
	mu    sync.Mutex
	fails int
	calls int
}

func (o *flakyOpener) OpenPartition(context.Context, *schemas.Stream, int32) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls++
	if o.calls <= o.fails {
		return errors.New("clickhouse: connection refused")
	}
	return nil
}

func (o *flakyOpener) ClosePartition(*schemas.Stream, int32) {}

// A partition that cannot be opened at once is opened when it can, not
// skipped for the rest of the generation; the wait ends with the
// generation.
func TestOpenPartitionRetries(t *testing.T) {
	c := &Consumer{log: slog.New(slog.DiscardHandler), metrics: newConsumerMetrics(nil)}
	st := testkit.Stream(t, "iot_telemetry")
	o := &flakyOpener{fails: 2}
	if err := c.open(context.Background(), o, st, "sluice.iot_telemetry", 1); err != nil {
		t.Fatalf("open = %v, want success after the failures", err)
	}
	if o.calls != 3 || testutil.ToFloat64(c.metrics.openErrors.WithLabelValues("iot_telemetry")) != 2 {
		t.Errorf("%d calls, %v errors counted; want 3 and 2", o.calls, testutil.ToFloat64(c.metrics.openErrors.WithLabelValues("iot_telemetry")))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := c.open(ctx, &flakyOpener{fails: 1 << 30}, st, "sluice.iot_telemetry", 1); err == nil {
		t.Error("open of a partition that never opens returned nil when the generation ended")
	}
}
