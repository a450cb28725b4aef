// Package backpressure holds the primitives that let Sluice refuse work it
// cannot take instead of queueing it without bound: Admission caps the events
// (or bytes) in flight inside a component, and Breaker stops calling a dependency that
// keeps failing so that callers fail fast instead of each waiting out a
// timeout.
package backpressure

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// ErrBusy means the capacity did not free up within the admission's wait
// limit. The caller should shed the work (HTTP 429 with Retry-After).
var ErrBusy = errors.New("too many events in flight")

// NoWaitLimit is AdmissionConfig.MaxWait for an admission whose callers
// wait for capacity as long as their context lasts: a reader that pauses
// while others hold the memory it needs, rather than a request told to
// come back later.
const NoWaitLimit time.Duration = -1

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
	// Capacity is how many units (events, or bytes) may be held at once.
	Capacity int64
	// MaxWait bounds how long Acquire waits for capacity. It is short on
	// purpose: a client told to come back later is cheaper than a request
	// parked in memory while the backlog grows. NoWaitLimit waits for as
	// long as Acquire's context lasts.
	MaxWait time.Duration
	// RetryAfter is what callers should tell refused clients.
	RetryAfter time.Duration
}

// Admission bounds the units of work in flight, weighted (an HTTP request
// holding 100 events takes 100 units, or its bytes for an admission of
// bytes). It is golang.org/x/sync/semaphore.Weighted with what callers
// need around it: a short wait, a clear error for a request that can never
// fit, the units held (for metrics) and the Retry-After to tell a refused
// client. Waiters are served first come, first served, so a large request
// is not starved by a stream of small ones. It is safe for concurrent use.
type Admission struct {
	capacity   int64
	maxWait    time.Duration
	retryAfter time.Duration

	sem *semaphore.Weighted
	// held mirrors what sem has handed out (it does not say), waiting
	// counts callers blocked in Acquire, and waited those that ever were;
	// they are for metrics and tests.
	held, waiting, waited atomic.Int64
}

// NewAdmission returns an Admission with the given limits.
func NewAdmission(cfg AdmissionConfig) *Admission {
	if cfg.Capacity <= 0 {
		cfg.Capacity = DefaultAdmissionCapacity
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = DefaultAdmissionMaxWait
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = DefaultAdmissionRetryAfter
	}
	return &Admission{
		capacity: cfg.Capacity, maxWait: cfg.MaxWait, retryAfter: cfg.RetryAfter,
		sem: semaphore.NewWeighted(cfg.Capacity),
	}
}

// Acquire takes n units, waiting at most the configured MaxWait for them. It
// fails with ErrTooLarge at once when n exceeds the capacity (the semaphore
// would wait for ever), with ErrBusy when the wait runs out, and with the
// context's error when ctx ends first. On success the caller must
// Release(n) exactly once.
func (a *Admission) Acquire(ctx context.Context, n int64) error {
	if n <= 0 {
		return nil
	}
	if n > a.capacity {
		return fmt.Errorf("%w: %d units asked, capacity %d", ErrTooLarge, n, a.capacity)
	}
	if a.TryAcquire(n) {
		return nil
	}
	a.waited.Add(1)
	a.waiting.Add(1)
	defer a.waiting.Add(-1)
	wctx, cancel := ctx, context.CancelFunc(func() {})
	if a.maxWait > 0 {
		wctx, cancel = context.WithTimeout(ctx, a.maxWait)
	}
	defer cancel()
	if err := a.sem.Acquire(wctx, n); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("waiting for admission: %w", ctx.Err())
		}
		return fmt.Errorf("%w: waited %s for %d units", ErrBusy, a.maxWait, n)
	}
	a.held.Add(n)
	return nil
}

// TryAcquire takes n units if they are free and nobody waits for units,
// without waiting; it reports whether it took them. A caller that must
// build something to wait with (a context with its deadline) tries this
// first, so that it builds nothing when the units are there.
func (a *Admission) TryAcquire(n int64) bool {
	if n <= 0 {
		return true
	}
	if !a.sem.TryAcquire(n) {
		return false
	}
	a.held.Add(n)
	return true
}

// Release returns n units taken by a successful Acquire or TryAcquire.
// Releasing more than is held is a bug in the caller, and panics.
func (a *Admission) Release(n int64) {
	if n <= 0 {
		return
	}
	if a.held.Add(-n) < 0 {
		panic("backpressure: Admission released more than acquired")
	}
	a.sem.Release(n)
}

// Waited counts the Acquire calls that found no units free and waited,
// since the start.
func (a *Admission) Waited() int64 { return a.waited.Load() }

// InFlight reports the units currently held.
func (a *Admission) InFlight() int64 { return a.held.Load() }

// Waiting reports how many callers are waiting in Acquire.
func (a *Admission) Waiting() int64 { return a.waiting.Load() }

// Capacity reports the configured capacity.
func (a *Admission) Capacity() int64 { return a.capacity }

// RetryAfter is how long a refused client should wait before retrying.
func (a *Admission) RetryAfter() time.Duration { return a.retryAfter }
