package clickhouse

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/sluicehq/sluice/schemas"
)

// TestDropExpired: on 18.16 Sluice applies the TTL itself, dropping whole
// time partitions whose newest row is older than the TTL, oldest first, so
// that what is left of each Kafka partition is its newest rows.
func TestDropExpired(t *testing.T) {
	for _, layout := range []string{PartitionMonth, PartitionDay} {
		t.Run(layout, func(t *testing.T) { testDropExpired(t, layout) })
	}
}

func testDropExpired(t *testing.T, layout string) {
	s := openTest(t)
	ctx := context.Background()
	st := builtin(t, "iot_telemetry")
	s.opts = TableOptions{Partition: layout, TTL: 90 * 24 * time.Hour}
	ensure(t, s, st)
	stopMerges(t, s, st)
	day := func(m time.Month, d int) time.Time { return time.Date(2026, m, d, 12, 0, 0, 0, time.UTC) }
	writes := []struct {
		at        time.Time
		partition int32
		first     int64
	}{
		{day(1, 10), 0, 0}, {day(3, 10), 0, 10}, {day(6, 10), 0, 20}, // partition 0 goes on
		{day(2, 10), 1, 0}, // partition 1 stopped in February
	}
	for _, w := range writes {
		s.now = func() time.Time { return w.at }
		if err := s.Write(ctx, st, w.partition, iotRows(w.first, 10, w.at)); err != nil {
			t.Fatal(err)
		}
	}
	before := partsPerPartition(t, s, st)

	s.now = func() time.Time { return day(6, 20) } // horizon: March 22
	if err := s.DropExpired(ctx, []*schemas.Stream{st}); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]uint64{PartitionMonth: {"202606": 1}, PartitionDay: {"20260610": 1}}[layout]
	if got := partsPerPartition(t, s, st); !reflect.DeepEqual(got, want) {
		t.Errorf("partitions left: %v (before: %v); want %v", got, before, want)
	}
	fresh := reopen(t, s)
	if off, ok, err := fresh.Progress(ctx, st, 0); err != nil || !ok || off != 29 {
		t.Errorf("Progress of partition 0 = %d, %v, %v; want 29", off, ok, err)
	}
	// Every row of partition 1 expired: it holds nothing, and the worker
	// resumes from Kafka's committed offset.
	for _, sink := range []*Sink{s, fresh} {
		if _, ok, err := sink.Progress(ctx, st, 1); err != nil || ok {
			t.Errorf("Progress of partition 1 = %v, %v; want nothing stored", ok, err)
		}
	}
	// Idempotent, and a no-op without a TTL.
	if err := s.DropExpired(ctx, []*schemas.Stream{st}); err != nil {
		t.Fatal(err)
	}
	s.opts.TTL = 0
	s.now = func() time.Time { return day(12, 31) }
	if err := s.DropExpired(ctx, []*schemas.Stream{st}); err != nil {
		t.Fatal(err)
	}
	if got := partsPerPartition(t, s, st); !reflect.DeepEqual(got, want) {
		t.Errorf("partitions left without a TTL: %v; want %v", got, want)
	}
}
