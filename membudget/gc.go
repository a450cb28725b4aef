package membudget

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// GCFloor is the heap the garbage collector may grow to before it runs,
// however little of it is live: the room for garbage the plan leaves, a
// quarter of what GoLimit holds above Base (100.8 MiB of the default
// 512 MiB ceiling).
//
// Why: with GOGC=100 alone the collector runs whenever the heap doubles.
// A collector process keeps little live (a few MiB of requests in flight)
// and allocates fast, so it collected ten times a second at 20,000
// events/s, a quarter of its CPU. Memory the budget has planned for the
// worst case sits unused meanwhile. Letting the heap reach the floor
// first spends some of that planned memory on fewer collections. It never
// raises the ceiling: once twice the live heap exceeds the floor the
// collector runs as with GOGC=100, and GoLimit caps both.
//
// An eighth of GoLimit before, it still left the work role a tenth of its
// CPU in collections at 20,000 events/s.
func (b Budget) GCFloor() int64 { return (b.GoLimit - b.Base) / 4 }

// TuneGC keeps the collector's target at max(2 × live heap, GCFloor) by
// setting GOGC from the live heap at the end of every collection, until
// ctx ends; then it restores GOGC=100. It does nothing when the operator
// set GOGC in the environment: their choice wins.
//
// It runs at the end of each cycle, not on a timer, because the target of
// the next cycle is the live heap just marked times 1+GOGC/100: a GOGC set
// from a live heap that has since grown fourfold would put the next target
// at four times the floor. It needs no goroutine of its own: a cleanup
// attached to a sentinel object runs once the collector has found the
// sentinel unreachable, and attaches itself to a new one.
func (b Budget) TuneGC(ctx context.Context) {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	t := &gcTuner{ctx: ctx, floor: b.GCFloor(), current: 100}
	t.arm()
}

// gcTuner is TuneGC's state; only the runtime's cleanup goroutine touches
// it, one cycle at a time.
type gcTuner struct {
	ctx     context.Context
	floor   int64
	current int
	live    [1]metrics.Sample
}

// gcSentinel is allocated only to be collected. The pointer keeps it out
// of the tiny allocator, whose blocks are shared and freed late.
type gcSentinel struct {
	_ *int
	_ [8]byte
}

func (t *gcTuner) arm() {
	runtime.AddCleanup(&gcSentinel{}, func(t *gcTuner) { t.afterGC() }, t)
}

func (t *gcTuner) afterGC() {
	if t.ctx.Err() != nil {
		debug.SetGCPercent(100)
		return
	}
	t.live[0].Name = "/gc/heap/live:bytes"
	metrics.Read(t.live[:])
	if t.live[0].Value.Kind() == metrics.KindUint64 {
		if p := gcPercent(int64(t.live[0].Value.Uint64()), t.floor); p != t.current {
			debug.SetGCPercent(p)
			t.current = p
		}
	}
	t.arm()
}

// gcPercent is the GOGC that puts the next collection at floor for a live
// heap of live bytes, never below 100, rounded down to a multiple of 25 so
// that small changes in the live heap do not reset it every cycle, and at
// most 1000. The cap bounds the overshoot when the live heap jumps before
// the tuner has seen it: the target is then at most eleven times the new
// live heap, instead of a hundred times.
func gcPercent(live, floor int64) int {
	if live <= 0 {
		live = 1 << 20
	}
	p := (floor - live) * 100 / live
	if p <= 100 {
		return 100
	}
	return int(min(p, 1000) / 25 * 25)
}
