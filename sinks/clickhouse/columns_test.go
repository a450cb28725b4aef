package clickhouse

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// A Write gives its columns back when the INSERT was sent, and the next
// Write fills them with its own rows: what it stores is its rows, not what
// the buffers held before.
func TestWriteRecyclesColumns(t *testing.T) {
	// No collection while the test looks into the pools, which would
	// empty them, and one P, whose private slot a pool keeps its last
	// slice in: another P's Get would not see it.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	s := openTest(t)
	st := builtin(t, "iot_telemetry")
	ensure(t, s, st)
	rng := rand.New(rand.NewPCG(3, 4))
	first, err := withRecords(st, demoBatch(rng, 0, 300, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), st, 0, first); err != nil {
		t.Fatal(err)
	}
	// What comes back is the first INSERT's: sized for it, not for what
	// is asked, as a new one would be.
	size := 0
	for _, r := range first {
		size += len(r.Event.ID)
	}
	ids := buffersOf(columnKey{s.table(st), ColEventID})
	if buf := ids.bytes.Get(size / 2); cap(buf) != size {
		t.Errorf("the event_id column's buffer did not go back to its pool: got room for %d bytes, want the %d of the first INSERT", cap(buf), size)
	} else {
		ids.bytes.Put(buf)
	}
	offsets := buffersOf(columnKey{s.table(st), ColKafkaOffset})
	if col := offsets.int64s.Get(len(first) / 2); cap(col) != len(first) {
		t.Errorf("the kafka_offset column's buffer did not go back to its pool: got room for %d, want %d", cap(col), len(first))
	} else {
		offsets.int64s.Put(col)
	}
	received := buffersOf(columnKey{s.table(st), ColReceivedAt})
	if col := received.dateTimes.Get(len(first) / 2); cap(col) != len(first) {
		t.Errorf("the received_at column's buffer did not go back to its pool: got room for %d, want %d", cap(col), len(first))
	} else {
		received.dateTimes.Put(col)
	}
	if col := stringCols.Get(len(first) / 2); cap(col) != len(first) {
		t.Errorf("no column of %d strings went back to the pool: got room for %d", len(first), cap(col))
	} else {
		stringCols.Put(col)
	}

	// Fewer rows, with event_ids of another length, in the same buffers.
	second, err := withRecords(st, demoBatch(rng, 300, 120, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	for i := range second {
		second[i].Event.ID = fmt.Sprintf("again-%d", i)
	}
	if err := s.Write(context.Background(), st, 0, second); err != nil {
		t.Fatal(err)
	}
	got := selectAll(t, s, st)
	if len(got) != len(first)+len(second) {
		t.Fatalf("read %d rows, want %d", len(got), len(first)+len(second))
	}
	for i, r := range append(first, second...) {
		if got[i]["event_id"] != r.Event.ID || got[i]["device_id"] != r.Event.Key {
			t.Fatalf("row %d: event_id %v, device_id %v; want %s, %s", i, got[i]["event_id"], got[i]["device_id"], r.Event.ID, r.Event.Key)
		}
	}
}
