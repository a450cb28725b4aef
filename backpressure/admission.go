// Package backpressure holds the primitives that let Sluice refuse work it
// cannot take instead of queueing it without bound: Admission caps the events
// in flight inside a component, and Breaker stops calling a dependency that
// keeps failing so that callers fail fast instead of each waiting out a
// timeout.
package backpressure

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrBusy means the capacity did not free up within the admission's wait
// limit. The caller should shed the work (HTTP 429 with Retry-After).
var ErrBusy = errors.New("too many events in flight")

// ErrTooLarge means a single request asks for more than the whole capacity,
// so no amount of waiting would admit it. The caller should ask for smaller
// requests (HTTP 413).
var ErrTooLarge = errors.New("request larger than the admission capacity")

// Defaults for AdmissionConfig.
const (
	DefaultAdmissionCapacity   = 200_000
	DefaultAdmissionMaxWait    = 100 * time.Millisecond
	DefaultAdmissionRetryAfter = time.Second
)

// AdmissionConfig configures an Admission. Zero values take the defaults.
type AdmissionConfig struct {
	// Capacity is how many units (events) may be held at once.
	Capacity int64
	// MaxWait bounds how long Acquire waits for capacity. It is short on
	// purpose: a client told to come back later is cheaper than a request
	// parked in memory while the backlog grows.
	MaxWait time.Duration
	// RetryAfter is what callers should tell refused clients.
	RetryAfter time.Duration
}

// Admission bounds the units of work in flight, weighted (an HTTP request
// holding 100 events takes 100 units). Waiters are served first come, first
// served, so a large request is not starved by a stream of small ones. It is
// safe for concurrent use.
type Admission struct {
	capacity   int64
	maxWait    time.Duration
	retryAfter time.Duration

	mu      sync.Mutex
	held    int64
	waiters list.List // of *waiter, oldest first
}

type waiter struct {
	n     int64
	ready chan struct{} // closed by whoever grants the units
}

// NewAdmission returns an Admission with the given limits.
func NewAdmission(cfg AdmissionConfig) *Admission {
	if cfg.Capacity <= 0 {
		cfg.Capacity = DefaultAdmissionCapacity
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = DefaultAdmissionMaxWait
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = DefaultAdmissionRetryAfter
	}
	return &Admission{capacity: cfg.Capacity, maxWait: cfg.MaxWait, retryAfter: cfg.RetryAfter}
}

// Acquire takes n units, waiting at most the configured MaxWait for them. It
// fails with ErrTooLarge at once when n exceeds the capacity, with ErrBusy
// when the wait runs out, and with the context's error when ctx ends first.
// On success the caller must Release(n) exactly once.
func (a *Admission) Acquire(ctx context.Context, n int64) error {
	if n <= 0 {
		return nil
	}
	if n > a.capacity {
		return fmt.Errorf("%w: %d units asked, capacity %d", ErrTooLarge, n, a.capacity)
	}

	a.mu.Lock()
	if a.waiters.Len() == 0 && a.capacity-a.held >= n {
		a.held += n
		a.mu.Unlock()
		return nil
	}
	w := &waiter{n: n, ready: make(chan struct{})}
	elem := a.waiters.PushBack(w)
	a.mu.Unlock()

	timer := time.NewTimer(a.maxWait)
	defer timer.Stop()
	var err error
	select {
	case <-w.ready:
		return nil
	case <-timer.C:
		err = fmt.Errorf("%w: waited %s for %d units", ErrBusy, a.maxWait, n)
	case <-ctx.Done():
		err = fmt.Errorf("waiting for admission: %w", ctx.Err())
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	select {
	case <-w.ready:
		// Granted between the timeout and taking the lock: keep it rather
		// than hand back units another waiter may already be counting on.
		return nil
	default:
	}
	front := a.waiters.Front() == elem
	a.waiters.Remove(elem)
	if front {
		// We may have been the one blocking smaller waiters behind us.
		a.grantLocked()
	}
	return err
}

// Release returns n units taken by a successful Acquire.
func (a *Admission) Release(n int64) {
	if n <= 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.held -= n
	if a.held < 0 {
		panic("backpressure: Admission released more than acquired")
	}
	a.grantLocked()
}

// grantLocked hands free units to waiters in arrival order, stopping at the
// first that does not fit so that it is not overtaken.
func (a *Admission) grantLocked() {
	for {
		front := a.waiters.Front()
		if front == nil {
			return
		}
		w := front.Value.(*waiter)
		if a.capacity-a.held < w.n {
			return
		}
		a.held += w.n
		a.waiters.Remove(front)
		close(w.ready)
	}
}

// InFlight reports the units currently held.
func (a *Admission) InFlight() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.held
}

// Capacity reports the configured capacity.
func (a *Admission) Capacity() int64 { return a.capacity }

// RetryAfter is how long a refused client should wait before retrying.
func (a *Admission) RetryAfter() time.Duration { return a.retryAfter }
