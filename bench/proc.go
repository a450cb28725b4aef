package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat's CPU
// times: 100 on every Linux architecture Sluice runs on.
const clockTicks = 100

// cpuTime returns the CPU time (user and system) a process has used so far,
// from /proc/<pid>/stat.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu time of %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces: count from after it.
	s := string(b)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return 0, fmt.Errorf("cpu time of %d: malformed stat", pid)
	}
	fields := strings.Fields(s[end+1:])
	// Fields from the state (3rd) on: utime is the 14th, stime the 15th.
	if len(fields) < 13 {
		return 0, fmt.Errorf("cpu time of %d: malformed stat", pid)
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cpu time of %d: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// rss returns a process's resident memory in bytes, from VmRSS in
// /proc/<pid>/status.
func rss(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("resident memory of %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "VmRSS:") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 2 {
			break
		}
		kb, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("resident memory of %d: %w", pid, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("resident memory of %d: no VmRSS", pid)
}

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
		n, err := rss(pid)
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
