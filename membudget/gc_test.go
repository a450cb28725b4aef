package membudget

import (
	"context"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

// gogc reads GOGC without changing it.
func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

func TestGCPercent(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		live, floor int64
		want        int
	}{
		{10 * mib, 115 * mib, 1000}, // 1050, capped: next GC at 110 MiB
		{20 * mib, 115 * mib, 475},  // next GC at 20 MiB × 5.75 = 115 MiB
		{60 * mib, 115 * mib, 100},  // 2 × live is past the floor: plain GOGC=100
		{200 * mib, 115 * mib, 100}, // never below 100
		{0, 115 * mib, 1000},        // nothing live yet: capped, not infinite
		{40 * mib, 115 * mib, 175},  // 187.5 rounded down to a multiple of 25
	} {
		if got := gcPercent(tc.live, tc.floor); got != tc.want {
			t.Errorf("gcPercent(%d MiB, %d MiB) = %d, want %d", tc.live/mib, tc.floor/mib, got, tc.want)
		}
	}
}

// TestTuneGC: with a small live heap, the tuner raises GOGC after the next
// collection so that the target is near the floor, and puts GOGC back to
// 100 once its context ends.
func TestTuneGC(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	b := Budget{GoLimit: 400 << 20}
	b.TuneGC(ctx)
	runtime.GC()
	runtime.GC() // the cleanup runs after the cycle that found the sentinel
	deadline := time.Now().Add(5 * time.Second)
	for gogc() < 200 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		runtime.GC()
	}
	if p := gogc(); p < 200 {
		t.Fatalf("GOGC %d after collections with a floor of 50 MiB and a small live heap, want it raised", p)
	}
	cancel()
	for gogc() != 100 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		runtime.GC()
	}
	if p := gogc(); p != 100 {
		t.Errorf("GOGC %d after the tuner stopped, want 100", p)
	}
}
