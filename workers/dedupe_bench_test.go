package workers

import (
	"strconv"
	"testing"
	"time"
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
