package verify

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// progressInterval is how often a long phase reports. Phases shorter than
// that print nothing, so small topics verify silently.
const progressInterval = time.Second

// phase reports the progress of one long step (reading a partition from
// Kafka, scanning its rows in ClickHouse) to a writer, typically stderr.
type phase struct {
	w     io.Writer
	label string
	unit  string
	total int64
	done  atomic.Int64
	start time.Time

	stop    chan struct{}
	wg      sync.WaitGroup
	printed bool // only touched by the reporting goroutine until end
}

// startPhase starts reporting; end must be called. A nil w reports nothing.
func startPhase(w io.Writer, label, unit string, total int64) *phase {
	p := &phase{w: w, label: label, unit: unit, total: total, start: time.Now(), stop: make(chan struct{})}
	if w == nil {
		return p
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.print()
			}
		}
	}()
	return p
}

func (p *phase) add(n int64) { p.done.Add(n) }

func (p *phase) print() {
	p.printed = true
	done := p.done.Load()
	elapsed := time.Since(p.start)
	rate := float64(done) / elapsed.Seconds()
	if p.total > 0 {
		fmt.Fprintf(p.w, "verify: %s: %d/%d %s (%.1f%%), %.0f/s\n", p.label, done, p.total, p.unit, 100*float64(done)/float64(p.total), rate)
		return
	}
	fmt.Fprintf(p.w, "verify: %s: %d %s, %.0f/s\n", p.label, done, p.unit, rate)
}

// end stops reporting. A phase that reported progress also reports that it
// finished, so the last line is not left at 97%.
func (p *phase) end() {
	if p.w == nil {
		return
	}
	close(p.stop)
	p.wg.Wait()
	if p.printed {
		p.print()
	}
}
