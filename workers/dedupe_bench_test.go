package workers

import (
	"strconv"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventkey"
)

// BenchmarkDedupeWindow is the store's lane asking a full window (1.5
// million ids, as a 512 MiB work role holds at saturation) about events
// it has not seen: a lookup that misses, an insertion, and the eviction
// of the oldest id, each at a random place of a table far larger than the
// caches.
func BenchmarkDedupeWindow(b *testing.B) {
	const ids = 1_500_000
	w := newDedupeWindow(time.Hour, ids)
	at := time.Unix(1_700_000_000, 0)
	names := make([]string, 2*ids)
	for i := range names {
		names[i] = "bench-iot_telemetry-" + strconv.Itoa(i)
	}
	for i := range ids {
		w.Duplicate(names[i], int64(i), at, true)
	}
	i := ids
	for b.Loop() {
		w.Duplicate(names[i%len(names)], int64(i), at, true)
		i++
	}
}

// BenchmarkDedupeWindowBatch is BenchmarkDedupeWindow a batch of 256 new
// ids at a time, as the store's lane decides them: one by one, or after
// Warm has read their slots ahead. It reports ns a decision.
func BenchmarkDedupeWindowBatch(b *testing.B) {
	for _, warmed := range []bool{false, true} {
		b.Run(map[bool]string{false: "one-by-one", true: "warmed"}[warmed], func(b *testing.B) {
			const ids, batch = 1_500_000, 256
			w := newDedupeWindow(time.Hour, ids)
			at := time.Unix(1_700_000_000, 0)
			keys := make([]eventkey.Key, 3*ids)
			for i := range keys {
				keys[i] = idHasher.Sum("bench-iot_telemetry-" + strconv.Itoa(i))
			}
			for i := range ids {
				w.DuplicateKey(keys[i], int64(i), at, true)
			}
			scratch := make([]eventkey.Key, 0, 2*batch)
			i := ids
			for b.Loop() {
				ks := keys[i%(len(keys)-batch):][:batch]
				if warmed {
					scratch = w.Warm(append(scratch[:0], ks...))
				}
				for j, k := range ks {
					w.DuplicateKey(k, int64(i+j), at, true)
				}
				i += batch
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/decision")
		})
	}
}

// BenchmarkDedupeWindowFill is a new work role's window filling up: 1.5
// million new ids into an empty window of that size, with the table's
// growing. It reports ns an id.
func BenchmarkDedupeWindowFill(b *testing.B) {
	const ids = 1_500_000
	at := time.Unix(1_700_000_000, 0)
	keys := make([]eventkey.Key, ids)
	for i := range keys {
		keys[i] = idHasher.Sum("bench-iot_telemetry-" + strconv.Itoa(i))
	}
	for b.Loop() {
		w := newDedupeWindow(time.Hour, ids)
		for i, k := range keys {
			w.DuplicateKey(k, int64(i), at, true)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*ids), "ns/id")
}
