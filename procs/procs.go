// Package procs sizes the Go scheduler to the CPU the process uses: it
// lowers GOMAXPROCS while the process uses a fraction of a core, and raises
// it again as soon as the process is busy.
//
// Why: a Sluice role that handles 20,000 events a second uses a fifth of a
// core, in many short bursts (an HTTP request, a Kafka answer, a batch to
// write). With a P for every core, each goroutine made ready while the
// other Ps are idle wakes a thread to run or steal it, which finds nothing
// and sleeps again; on a 2-core machine shared by two Sluice processes, a
// broker and ClickHouse that waking was a sixth of the roles' CPU at that
// rate (docs/benchmarks.md). One P runs the same bursts one after the
// other, without the wake-ups. A fixed GOMAXPROCS=1 would cap a busy
// process at one core whatever the machine has; Run gives the Ps back
// within an interval of the process needing them.
package procs

import (
	"context"
	"log/slog"
	"math"
	"os"
	"runtime"
	"time"

	"github.com/sluicehq/sluice/internal/procstat"
)

// Defaults for Options.
const (
	// DefaultInterval is how often Run reads the process's CPU time.
	DefaultInterval = time.Second
	// DefaultLowerAfter is how many intervals in a row must want fewer Ps
	// before Run lowers GOMAXPROCS: raising is at once, lowering is slow,
	// so that a pause in a busy stream does not cost a burst its Ps.
	DefaultLowerAfter = 5
)

// busyPerP and raiseAt are the governor's thresholds, in cores used per P.
// It keeps enough Ps for each to be busy at most half the time, and raises
// as soon as the Ps it has are three quarters busy: between the two, it
// keeps what it has, so that a steady load does not move it back and forth.
const (
	busyPerP = 0.5
	raiseAt  = 0.75
)

// Options configure Run.
type Options struct {
	// Max is the most Ps Run sets; zero means what GOMAXPROCS is when Run
	// starts (the runtime's choice: the CPUs, or a container's CPU limit).
	Max int
	// Interval is the time between two readings (default DefaultInterval).
	Interval time.Duration
	// LowerAfter is DefaultLowerAfter when zero.
	LowerAfter int
	// Logger gets a line at start and one at each change (debug level).
	Logger *slog.Logger

	// cpuTime and setProcs stand in for the process's CPU time and for
	// runtime.GOMAXPROCS in tests.
	cpuTime  func() (time.Duration, error)
	setProcs func(int)
}

// Run adjusts GOMAXPROCS every Interval, between 1 and Max, until ctx
// ends; then it gives the runtime back its own choice. It does nothing
// when the operator set GOMAXPROCS in the environment (their choice wins),
// when Max is 1, or when the process's CPU time cannot be read.
//
// Run blocks; start it on a goroutine of its own.
func Run(ctx context.Context, o Options) {
	o.setDefaults()
	// Empty is unset, as the runtime reads it.
	if os.Getenv("GOMAXPROCS") != "" || o.Max <= 1 {
		return
	}
	last, err := o.cpuTime()
	if err != nil {
		o.Logger.Warn("adaptive GOMAXPROCS off: cannot read the process's CPU time", "err", err)
		return
	}
	o.Logger.Info("adaptive GOMAXPROCS on", "min", 1, "max", o.Max)
	defer runtime.SetDefaultGOMAXPROCS()
	g := governor{max: o.Max, p: o.Max, lowerAfter: o.LowerAfter}
	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	at := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			cpu, err := o.cpuTime()
			if err != nil {
				continue
			}
			used := float64(cpu-last) / float64(now.Sub(at))
			last, at = cpu, now
			if p, changed := g.observe(used); changed {
				o.setProcs(p)
				o.Logger.Debug("GOMAXPROCS changed", "procs", p, "cores_used", math.Round(used*100)/100)
			}
		}
	}
}

func (o *Options) setDefaults() {
	if o.Max <= 0 {
		o.Max = runtime.GOMAXPROCS(0)
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.LowerAfter <= 0 {
		o.LowerAfter = DefaultLowerAfter
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.cpuTime == nil {
		o.cpuTime = procstat.SelfCPUTime
	}
	if o.setProcs == nil {
		o.setProcs = func(n int) { runtime.GOMAXPROCS(n) }
	}
}

// governor decides the Ps from the cores used, one interval at a time.
type governor struct {
	max, p     int
	lowerAfter int
	// low counts the intervals in a row that wanted fewer Ps than p, and
	// lowTo is the most any of them wanted: lowering goes no further.
	low, lowTo int
}

// observe takes the cores used over the last interval and returns the Ps
// for the next, and whether that is a change.
func (g *governor) observe(used float64) (int, bool) {
	want := min(g.max, max(1, int(math.Ceil(used/busyPerP))))
	switch {
	case used > raiseAt*float64(g.p) && g.p < g.max:
		g.low, g.lowTo = 0, 0
		g.p = max(want, g.p+1)
		return g.p, true
	case want < g.p:
		g.low, g.lowTo = g.low+1, max(g.lowTo, want)
		if g.low < g.lowerAfter {
			return g.p, false
		}
		g.p, g.low, g.lowTo = g.lowTo, 0, 0
		return g.p, true
	default:
		g.low, g.lowTo = 0, 0
		return g.p, false
	}
}
