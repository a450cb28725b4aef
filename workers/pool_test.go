package workers

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// countingHandler records how many batches were prepared.
type countingHandler struct{ prepared atomic.Int64 }

func (h *countingHandler) Prepare(b *Batch) {
	h.prepared.Add(1)
	if len(b.Messages) > 0 && string(b.Messages[0].Value) == "panic" {
		panic("decoder exploded")
	}
	b.Decoded = make([]Decoded, len(b.Messages))
}

func (h *countingHandler) Deliver(context.Context, *Batch) error { return nil }

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
			h := &countingHandler{}
			p := NewPool(2, 4, h, nil)
			stop, revoke := context.WithCancel(context.Background())
			defer revoke()
			b := &Batch{Messages: []Message{{Offset: 1, Value: []byte(tt.value)}, {Offset: 2, Value: []byte("x")}}}
			j := &job{batch: b, stop: stop, prepared: make(chan struct{})}
			if err := p.submit(j); err != nil {
				t.Fatal(err)
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
			if tt.wantErr {
				if len(b.Decoded) != 2 || b.Decoded[0].Err == nil || b.Decoded[1].Err == nil {
					t.Errorf("after a panic, Decoded = %+v; want every message marked bad", b.Decoded)
				}
			}
		})
	}
}

func TestPoolRunReleasesQueuedJobsOnStop(t *testing.T) {
	p := NewPool(1, 4, &countingHandler{}, nil)
	jobs := make([]*job, 3)
	for i := range jobs {
		jobs[i] = &job{batch: &Batch{}, stop: context.Background(), prepared: make(chan struct{})}
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
