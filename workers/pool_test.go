package workers

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// countingPrepare counts the batches it prepared and panics on a batch
// whose first message is "panic".
type countingPrepare struct{ prepared atomic.Int64 }

func (h *countingPrepare) prepare(b *Batch) {
	h.prepared.Add(1)
	if len(b.Messages) > 0 && string(b.Messages[0].Value) == "panic" {
		panic("decoder exploded")
	}
	b.Decoded = make([]Decoded, len(b.Messages))
}

func TestPool(t *testing.T) {
	tests := []struct {
		name         string
		value        string
		stopped      bool
		wantPrepared int64
		wantErr      bool // every message marked bad
	}{
		{name: "prepares", value: "ok", wantPrepared: 1},
		{name: "skips a revoked partition's batch", value: "ok", stopped: true, wantPrepared: 0},
		{name: "a panic marks the batch bad instead of crashing", value: "panic", wantPrepared: 1, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &countingPrepare{}
			m := newConsumerMetrics(nil)
			p := NewPool(2, 4, m)
			stop, revoke := context.WithCancel(context.Background())
			defer revoke()
			b := &Batch{Messages: []Message{{Offset: 1, Value: []byte(tt.value)}, {Offset: 2, Value: []byte("x")}}}
			j := &job{batch: b, prepare: h.prepare, stop: stop, prepared: make(chan struct{})}
			if err := p.submit(j); err != nil {
				t.Fatal(err)
			}
			if n := testutil.ToFloat64(m.queued); n != 1 {
				t.Errorf("%v batches counted queued, want 1", n)
			}
			if tt.stopped {
				revoke() // the partition is revoked while its batch waits in the queue
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { p.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			select {
			case <-j.prepared:
			case <-time.After(5 * time.Second):
				t.Fatal("job never marked prepared: its lane would wait for ever")
			}
			if got := h.prepared.Load(); got != tt.wantPrepared {
				t.Errorf("prepared %d batches, want %d", got, tt.wantPrepared)
			}
			if n := testutil.ToFloat64(m.queued); n != 0 {
				t.Errorf("%v batches counted queued after, want 0", n)
			}
			if tt.wantErr {
				if len(b.Decoded) != 2 || b.Decoded[0].Err == nil || b.Decoded[1].Err == nil {
					t.Errorf("after a panic, Decoded = %+v; want every message marked bad", b.Decoded)
				}
			}
		})
	}
}

func TestPoolRunReleasesQueuedJobsOnStop(t *testing.T) {
	h := &countingPrepare{}
	p := NewPool(1, 4, nil)
	jobs := make([]*job, 3)
	for i := range jobs {
		jobs[i] = &job{batch: &Batch{}, prepare: h.prepare, stop: context.Background(), prepared: make(chan struct{})}
		if err := p.submit(jobs[i]); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the pool stops before its worker takes anything
	p.Run(ctx)
	for i, j := range jobs {
		select {
		case <-j.prepared:
		default:
			t.Errorf("job %d still open after the pool stopped", i)
		}
	}
}

// A full queue makes the submitting lane wait, until its partition is
// revoked.
func TestPoolSubmitWaitsForRoom(t *testing.T) {
	p := NewPool(1, 1, nil)
	first := &job{batch: &Batch{}, stop: context.Background(), prepared: make(chan struct{})}
	if err := p.submit(first); err != nil {
		t.Fatal(err)
	}
	stop, revoke := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer revoke()
	second := &job{batch: &Batch{}, stop: stop, prepared: make(chan struct{})}
	if err := p.submit(second); err == nil {
		t.Fatal("submit to a full queue returned nil without room")
	}
}

func TestNewPoolBounds(t *testing.T) {
	p := NewPool(0, -1, nil)
	if p.workers != 1 || cap(p.jobs) != 0 {
		t.Errorf("NewPool(0, -1) = %d workers, queue %d; want 1, 0", p.workers, cap(p.jobs))
	}
}
