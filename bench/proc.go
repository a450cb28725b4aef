package bench

import (
	"context"
	"sync"
	"time"

	"github.com/sluicehq/sluice/internal/procstat"
)

// peakSampler samples the resident memory of processes until stopped, and
// keeps the peak of each. VmHWM would give the peak since the process
// started; sampling gives it per phase.
//
// Its goroutine is owned by the sampler: start begins it, stop ends it and
// waits for it.
type peakSampler struct {
	pids   []int
	every  time.Duration
	mu     sync.Mutex
	peak   map[int]int64
	cancel context.CancelFunc
	done   chan struct{}
}

func newPeakSampler(every time.Duration, pids ...int) *peakSampler {
	return &peakSampler{pids: pids, every: every, peak: map[int]int64{}}
}

func (s *peakSampler) start(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(ctx)
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		t := time.NewTicker(s.every)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

func (s *peakSampler) sample() {
	for _, pid := range s.pids {
		n, err := procstat.StatusBytes(pid, "VmRSS")
		if err != nil {
			continue // the process ended: its peak so far stands
		}
		s.mu.Lock()
		s.peak[pid] = max(s.peak[pid], n)
		s.mu.Unlock()
	}
}

// stop ends sampling and returns the peak of each process, by pid.
func (s *peakSampler) stop() map[int]int64 {
	s.cancel()
	<-s.done
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int]int64, len(s.peak))
	for k, v := range s.peak {
		out[k] = v
	}
	return out
}
