package backpressure

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/eventually"
)

func TestAdmissionAcquire(t *testing.T) {
	tests := []struct {
		name     string
		capacity int64
		held     int64 // taken before the call under test
		n        int64
		// releaseAfter frees the held units this long into the wait; 0 never.
		releaseAfter time.Duration
		cancelAfter  time.Duration
		wantErr      error
		wantMinWait  time.Duration
		wantMaxWait  time.Duration
	}{
		{name: "fits", capacity: 10, n: 10, wantMaxWait: 50 * time.Millisecond},
		{name: "zero units", capacity: 10, held: 10, n: 0, wantMaxWait: 50 * time.Millisecond},
		{name: "larger than capacity fails at once", capacity: 10, n: 11, wantErr: ErrTooLarge, wantMaxWait: 50 * time.Millisecond},
		{name: "full then busy after max wait", capacity: 10, held: 5, n: 6, wantErr: ErrBusy,
			wantMinWait: 80 * time.Millisecond, wantMaxWait: 2 * time.Second},
		{name: "full then released in time", capacity: 10, held: 10, n: 10, releaseAfter: 20 * time.Millisecond,
			wantMinWait: 15 * time.Millisecond, wantMaxWait: 90 * time.Millisecond},
		{name: "caller gives up", capacity: 10, held: 10, n: 1, cancelAfter: 10 * time.Millisecond,
			wantErr: context.Canceled, wantMaxWait: 90 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := NewAdmission(AdmissionConfig{Capacity: tt.capacity, MaxWait: 100 * time.Millisecond})
			if err := a.Acquire(context.Background(), tt.held); err != nil {
				t.Fatalf("setup acquire: %v", err)
			}
			if tt.releaseAfter > 0 {
				timer := time.AfterFunc(tt.releaseAfter, func() { a.Release(tt.held) })
				defer timer.Stop()
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancelAfter > 0 {
				timer := time.AfterFunc(tt.cancelAfter, cancel)
				defer timer.Stop()
			}
			start := time.Now()
			err := a.Acquire(ctx, tt.n)
			waited := time.Since(start)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Acquire(%d) = %v, want %v", tt.n, err, tt.wantErr)
			}
			if waited < tt.wantMinWait || waited > tt.wantMaxWait {
				t.Errorf("waited %s, want between %s and %s", waited, tt.wantMinWait, tt.wantMaxWait)
			}
			wantHeld := tt.held
			if tt.releaseAfter > 0 {
				wantHeld = 0
			}
			if err == nil {
				wantHeld += tt.n
			}
			if got := a.InFlight(); got != wantHeld {
				t.Errorf("InFlight = %d, want %d", got, wantHeld)
			}
		})
	}
}

// A large waiter at the front must not be overtaken by small ones, and when
// it gives up the small ones behind it must be served.
func TestAdmissionFIFO(t *testing.T) {
	// The big waiter gives up when the test says so (its context), not on
	// a timer, so that a slow scheduler cannot reorder the steps.
	a := NewAdmission(AdmissionConfig{Capacity: 10, MaxWait: time.Minute})
	if err := a.Acquire(context.Background(), 5); err != nil {
		t.Fatal(err)
	}
	bigCtx, giveUp := context.WithCancel(context.Background())
	bigErr := make(chan error, 1)
	go func() { bigErr <- a.Acquire(bigCtx, 10) }()
	waiting := func(n int64) func() bool {
		return func() bool { return a.Waiting() == n }
	}
	eventually.True(t, 5*time.Second, "one waiter", waiting(1))
	// Counted as waiting is not yet queued: with 5 units free, a probe of
	// 1 fails only once the big waiter is in the semaphore's queue.
	eventually.True(t, 5*time.Second, "the big waiter in the semaphore's queue", func() bool {
		if a.sem.TryAcquire(1) {
			a.sem.Release(1)
			return false
		}
		return true
	})

	// 5 units are free, but the big waiter came first.
	smallErr := make(chan error, 1)
	go func() { smallErr <- a.Acquire(context.Background(), 3) }()
	eventually.True(t, 5*time.Second, "two waiters", waiting(2))
	select {
	case err := <-smallErr:
		t.Fatalf("small waiter overtook the big one: %v", err)
	default:
	}
	giveUp()
	if err := <-bigErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("big waiter: %v, want it cancelled", err)
	}
	if err := <-smallErr; err != nil {
		t.Fatalf("small waiter after the big one gave up: %v", err)
	}
	if got := a.InFlight(); got != 8 {
		t.Errorf("InFlight = %d, want 8", got)
	}
}

// An admission of bytes: weights are large, a request over the whole
// capacity fails at once however long the wait, and the units come back.
func TestAdmissionBytes(t *testing.T) {
	a := NewAdmission(AdmissionConfig{Capacity: 64 << 20, MaxWait: time.Hour})
	start := time.Now()
	if err := a.Acquire(context.Background(), 64<<20+1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Acquire over capacity = %v, want ErrTooLarge", err)
	}
	if time.Since(start) > time.Minute {
		t.Fatalf("Acquire over capacity waited")
	}
	if err := a.Acquire(context.Background(), 48<<20); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- a.Acquire(ctx, 32<<20) }()
	eventually.True(t, 5*time.Second, "one waiter", func() bool { return a.Waiting() == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait = %v, want context.Canceled", err)
	}
	a.Release(48 << 20)
	if err := a.Acquire(context.Background(), 64<<20); err != nil {
		t.Fatalf("whole capacity after release: %v", err)
	}
	if got := a.InFlight(); got != 64<<20 {
		t.Errorf("InFlight = %d, want %d", got, 64<<20)
	}
	a.Release(64 << 20)
	if got := a.InFlight(); got != 0 {
		t.Errorf("InFlight after release = %d", got)
	}
}

func TestAdmissionOverRelease(t *testing.T) {
	a := NewAdmission(AdmissionConfig{Capacity: 1})
	defer func() {
		if recover() == nil {
			t.Error("releasing more than acquired did not panic")
		}
	}()
	a.Release(1)
}

// Under contention the bound holds and every unit comes back.
func TestAdmissionConcurrent(t *testing.T) {
	const capacity = 50
	a := NewAdmission(AdmissionConfig{Capacity: capacity, MaxWait: 5 * time.Millisecond})
	var inUse, peak atomic.Int64
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				n := int64(1 + (g+i)%capacity)
				if err := a.Acquire(context.Background(), n); err != nil {
					if !errors.Is(err, ErrBusy) {
						t.Errorf("Acquire: %v", err)
					}
					continue
				}
				cur := inUse.Add(n)
				for p := peak.Load(); cur > p && !peak.CompareAndSwap(p, cur); p = peak.Load() {
				}
				inUse.Add(-n)
				a.Release(n)
			}
		}()
	}
	wg.Wait()
	if p := peak.Load(); p > capacity {
		t.Errorf("peak in use %d exceeds capacity %d", p, capacity)
	}
	if got := a.InFlight(); got != 0 {
		t.Errorf("InFlight after all released = %d", got)
	}
}

// TestAdmissionNoWaitLimit: with NoWaitLimit a caller waits past the
// default wait for capacity to be released, and stops waiting when its
// context ends.
func TestAdmissionNoWaitLimit(t *testing.T) {
	a := NewAdmission(AdmissionConfig{Capacity: 10, MaxWait: NoWaitLimit})
	if err := a.Acquire(context.Background(), 10); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- a.Acquire(context.Background(), 5) }()
	select {
	case err := <-got:
		t.Fatalf("Acquire returned %v while the capacity was held", err)
	case <-time.After(3 * DefaultAdmissionMaxWait):
	}
	a.Release(10)
	if err := <-got; err != nil {
		t.Fatalf("Acquire after the release: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { got <- a.Acquire(ctx, 10) }()
	time.Sleep(3 * DefaultAdmissionMaxWait)
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire whose context ended: %v, want context.Canceled", err)
	}
	if a.InFlight() != 5 || a.Waiting() != 0 || a.Waited() != 2 {
		t.Fatalf("in flight %d, waiting %d, waited %d; want 5, 0, 2", a.InFlight(), a.Waiting(), a.Waited())
	}
	// TryAcquire takes what is free at once, and never waits.
	if a.TryAcquire(6) || !a.TryAcquire(5) || a.InFlight() != 10 || a.Waited() != 2 {
		t.Fatalf("TryAcquire: in flight %d, waited %d; want 6 refused, 5 taken, 10 in flight, still 2 waited", a.InFlight(), a.Waited())
	}
}
