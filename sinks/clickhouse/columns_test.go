package clickhouse

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/sluicehq/sluice/sinks"
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
	const n, rounds = 300, 10
	var written []sinks.Row
	write := func(rows []sinks.Row) {
		t.Helper()
		if err := s.Write(context.Background(), st, 0, rows); err != nil {
			t.Fatal(err)
		}
		written = append(written, rows...)
	}
	batch := func(round int) []sinks.Row {
		t.Helper()
		rows, err := withRecords(st, demoBatch(rng, int64(round*n), n, time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		for i := range rows {
			rows[i].Event.ID = fmt.Sprintf("round%02d-%04d", round, i)
		}
		return rows
	}
	// What comes back is the INSERT's: sized for it, not for what is
	// asked, as a new one would be. A pool may drop what it is given (the
	// race detector's drops a quarter on purpose), so each column's must
	// come back in one round of several at least; each round takes it
	// out, so that the next INSERT's buffers are its own.
	size := n * len("round00-0000")
	came := map[string]int{}
	for round := range rounds {
		write(batch(round))
		if cap(buffersOf(columnKey{s.table(st), ColEventID}).bytes.Get(size/2)) == size {
			came["the event_id column's bytes"]++
		}
		if cap(buffersOf(columnKey{s.table(st), ColKafkaOffset}).int64s.Get(n/2)) == n {
			came["the kafka_offset column"]++
		}
		if cap(buffersOf(columnKey{s.table(st), ColReceivedAt}).dateTimes.Get(n/2)) == n {
			came["the received_at column"]++
		}
		if cap(stringCols.Get(n/2)) == n {
			came["a column of strings of ours"]++
		}
	}
	for _, what := range []string{"the event_id column's bytes", "the kafka_offset column", "the received_at column", "a column of strings of ours"} {
		if came[what] == 0 {
			t.Errorf("%s never went back to its pool in %d INSERTs", what, rounds)
		}
	}
	write(batch(rounds)) // leaves its buffers in the pools

	// Fewer rows, with event_ids of another length, in the same buffers.
	second, err := withRecords(st, demoBatch(rng, int64((rounds+1)*n), 120, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	for i := range second {
		second[i].Event.ID = fmt.Sprintf("again-%d", i)
	}
	write(second)
	got := selectAll(t, s, st)
	if len(got) != len(written) {
		t.Fatalf("read %d rows, want %d", len(got), len(written))
	}
	for i, r := range written {
		if got[i]["event_id"] != r.Event.ID || got[i]["device_id"] != r.Event.Key {
			t.Fatalf("row %d: event_id %v, device_id %v; want %s, %s", i, got[i]["event_id"], got[i]["device_id"], r.Event.ID, r.Event.Key)
		}
	}
}
