package procs

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/eventually"
)

func TestGovernor(t *testing.T) {
	type step struct {
		used    float64
		want    int
		changed bool
	}
	tests := []struct {
		name  string
		max   int
		start int
		steps []step
	}{
		{"lowers only after lowerAfter quiet intervals", 2, 2, []step{
			{0.1, 2, false}, {0.2, 2, false}, {0.1, 1, true}, {0.1, 1, false},
		}},
		{"a busy interval restarts the count", 2, 2, []step{
			{0.1, 2, false}, {0.1, 2, false}, {0.9, 2, false}, {0.1, 2, false}, {0.1, 2, false}, {0.1, 1, true},
		}},
		{"raises at once when the Ps are three quarters busy", 2, 1, []step{
			{0.7, 1, false}, {0.8, 2, true}, {0.8, 2, false},
		}},
		{"between the thresholds it keeps what it has", 2, 1, []step{
			{0.55, 1, false}, {0.7, 1, false}, {0.6, 1, false},
		}},
		{"raises straight to what the load needs", 8, 1, []step{
			{0.99, 2, true}, {1.9, 4, true}, {3.9, 8, true}, {7.9, 8, false},
		}},
		{"lowers to the most any quiet interval wanted", 8, 8, []step{
			{1.2, 8, false}, {0.4, 8, false}, {2.9, 6, true},
		}},
		{"never above max", 2, 2, []step{{5, 2, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := governor{max: tt.max, p: tt.start, lowerAfter: 3}
			for i, s := range tt.steps {
				p, changed := g.observe(s.used)
				if p != s.want || changed != s.changed {
					t.Fatalf("step %d (%.2f cores): got %d procs, changed %v; want %d, %v", i, s.used, p, changed, s.want, s.changed)
				}
			}
		})
	}
}

// fakeCPU is a process clock a test moves: each reading adds the cores it
// is told to use over one interval.
type fakeCPU struct {
	mu       sync.Mutex
	at       time.Duration
	cores    float64
	interval time.Duration
}

func (f *fakeCPU) read() (time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.at += time.Duration(f.cores * float64(f.interval))
	return f.at, nil
}

func (f *fakeCPU) use(cores float64) {
	f.mu.Lock()
	f.cores = cores
	f.mu.Unlock()
}

func TestRunFollowsTheLoad(t *testing.T) {
	t.Setenv("GOMAXPROCS", "")
	interval := 20 * time.Millisecond
	cpu := &fakeCPU{interval: interval}
	var procs atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, Options{Max: 4, Interval: interval, LowerAfter: 2, cpuTime: cpu.read, setProcs: func(n int) { procs.Store(int64(n)) }})
	}()
	eventually.True(t, 10*time.Second, "lowered to 1 while idle", func() bool { return procs.Load() == 1 })
	cpu.use(1.8)
	eventually.True(t, 10*time.Second, "raised to 4 when busy", func() bool { return procs.Load() == 4 })
	cancel()
	<-done
}

func TestRunLeavesAnOperatorsChoice(t *testing.T) {
	t.Setenv("GOMAXPROCS", "2")
	called := false
	cpu := &fakeCPU{interval: time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	Run(ctx, Options{Max: 4, Interval: time.Millisecond, LowerAfter: 1, cpuTime: cpu.read, setProcs: func(int) { called = true }})
	if called {
		t.Fatal("Run changed GOMAXPROCS although GOMAXPROCS was set in the environment")
	}
}

// TestRunOnTheRuntime runs the real thing: an idle test process, read by
// its own CPU clock, loses a P, and gets the runtime's own choice back when
// Run ends. (Raising is checked with a fake clock above: on a loaded test
// machine a spinning goroutine cannot be sure of three quarters of a
// core.)
func TestRunOnTheRuntime(t *testing.T) {
	t.Setenv("GOMAXPROCS", "")
	if runtime.NumCPU() < 2 {
		t.Skip("needs 2 CPUs")
	}
	defer runtime.SetDefaultGOMAXPROCS()
	runtime.SetDefaultGOMAXPROCS()
	def := runtime.GOMAXPROCS(0)
	if def < 2 {
		t.Skipf("the runtime's default GOMAXPROCS is %d", def)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, Options{Interval: 50 * time.Millisecond, LowerAfter: 2})
	}()
	eventually.True(t, 10*time.Second, "GOMAXPROCS lowered to 1", func() bool { return runtime.GOMAXPROCS(0) == 1 })
	cancel()
	<-done
	if got := runtime.GOMAXPROCS(0); got != def {
		t.Errorf("after Run, GOMAXPROCS is %d; want the runtime's default %d back", got, def)
	}
}
