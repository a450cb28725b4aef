package testkit

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/procstat"
)

// ProcStatusBytes reads a "kB" field of /proc/<pid>/status (VmRSS, VmHWM),
// in bytes.
func ProcStatusBytes(t testing.TB, pid int, field string) int64 {
	t.Helper()
	n, err := procstat.StatusBytes(pid, field)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// MiB renders a byte count in MiB with one decimal.
func MiB(b int64) string { return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20)) }

// RSSWatch samples a process's resident set (VmRSS) on a fixed period in
// the background, so that a test can drive load meanwhile and ask at the
// end for the peak and whether any sample passed a limit.
type RSSWatch struct {
	pid   int
	limit int64
	stop  chan struct{}
	done  chan struct{}

	mu      sync.Mutex
	peak    int64
	samples int
	over    int   // samples above limit
	firstAt int64 // first sample above limit, in bytes
	err     error // a failed read: the process is gone
}

// WatchRSS starts sampling pid every period; samples above limit are
// counted. The sampling stops at Stop or when t ends.
func WatchRSS(t testing.TB, pid int, limit int64, period time.Duration) *RSSWatch {
	w := &RSSWatch{pid: pid, limit: limit, stop: make(chan struct{}), done: make(chan struct{})}
	go w.run(period)
	t.Cleanup(w.Stop)
	return w
}

func (w *RSSWatch) run(period time.Duration) {
	defer close(w.done)
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		rss, err := procstat.StatusBytes(w.pid, "VmRSS")
		w.mu.Lock()
		if err != nil {
			w.err = err
			w.mu.Unlock()
			return
		}
		w.samples++
		w.peak = max(w.peak, rss)
		if rss > w.limit {
			if w.over == 0 {
				w.firstAt = rss
			}
			w.over++
		}
		w.mu.Unlock()
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
	}
}

// Stop ends the sampling (idempotent) and waits for the sampler.
func (w *RSSWatch) Stop() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// RSSReport is what an RSSWatch saw.
type RSSReport struct {
	Peak, Limit int64
	Samples     int
	// Over counts samples above Limit; FirstOver is the first of them.
	Over      int
	FirstOver int64
	// Err is set when a read failed (the process exited) and the
	// sampling stopped early.
	Err error
}

// Report returns what was sampled so far.
func (w *RSSWatch) Report() RSSReport {
	w.mu.Lock()
	defer w.mu.Unlock()
	return RSSReport{Peak: w.peak, Limit: w.limit, Samples: w.samples, Over: w.over, FirstOver: w.firstAt, Err: w.err}
}

// String summarises the report for a test log.
func (r RSSReport) String() string {
	return fmt.Sprintf("peak VmRSS %s in %d samples (limit %s, %d samples over)", MiB(r.Peak), r.Samples, MiB(r.Limit), r.Over)
}
