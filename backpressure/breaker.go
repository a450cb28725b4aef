package backpressure

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// ErrOpen means the breaker is refusing calls because the dependency kept
// failing. The caller should fail fast (HTTP 503 with Retry-After).
var ErrOpen = errors.New("circuit breaker open")

// State is a breaker's state.
type State int

// Breaker states.
const (
	// Closed lets every call through.
	Closed State = iota
	// HalfOpen lets a few probe calls through to see whether the dependency
	// has recovered.
	HalfOpen
	// Open refuses every call until the open timeout has passed.
	Open
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case HalfOpen:
		return "half-open"
	case Open:
		return "open"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Defaults for BreakerConfig.
const (
	DefaultBreakerFailures    = 5
	DefaultBreakerOpenTimeout = 5 * time.Second
)

// BreakerConfig configures a Breaker. Zero values take the defaults.
type BreakerConfig struct {
	// Name appears in errors and logs, e.g. "kafka".
	Name string
	// Failures is how many consecutive failed calls open the breaker.
	Failures uint32
	// OpenTimeout is how long the breaker stays open before it lets a probe
	// through. Short, because an ingest path that stays shut after the
	// dependency recovered loses data at the producers.
	OpenTimeout time.Duration
	// HalfOpenProbes is how many calls may probe at once while half-open,
	// and how many must succeed in a row to close again.
	HalfOpenProbes uint32
	// Logger receives state changes; nil means slog.Default().
	Logger *slog.Logger
}

// Breaker is a circuit breaker around calls to one dependency, built on
// sony/gobreaker. A call whose context was cancelled by its caller counts as
// neither success nor failure: a client hanging up says nothing about Kafka.
type Breaker struct {
	name        string
	openTimeout time.Duration
	cb          *gobreaker.CircuitBreaker[struct{}]
	// openedAt is the UnixNano time the breaker last opened; it is written
	// from gobreaker's state-change hook, which runs under its lock, so it
	// must not call back into the breaker.
	openedAt atomic.Int64
}

// errCallerGone marks calls to leave out of the failure counts.
var errCallerGone = errors.New("caller cancelled")

// NewBreaker returns a closed breaker.
func NewBreaker(cfg BreakerConfig) *Breaker {
	if cfg.Name == "" {
		cfg.Name = "dependency"
	}
	if cfg.Failures == 0 {
		cfg.Failures = DefaultBreakerFailures
	}
	if cfg.OpenTimeout <= 0 {
		cfg.OpenTimeout = DefaultBreakerOpenTimeout
	}
	if cfg.HalfOpenProbes == 0 {
		cfg.HalfOpenProbes = 1
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	b := &Breaker{name: cfg.Name, openTimeout: cfg.OpenTimeout}
	b.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        cfg.Name,
		MaxRequests: cfg.HalfOpenProbes,
		Timeout:     cfg.OpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= cfg.Failures },
		IsExcluded:  func(err error) bool { return errors.Is(err, errCallerGone) },
		OnStateChange: func(name string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				b.openedAt.Store(time.Now().UnixNano())
			}
			level := slog.LevelInfo
			if to == gobreaker.StateOpen {
				level = slog.LevelWarn
			}
			log.Log(context.Background(), level, "circuit breaker state change",
				"breaker", name, "from", fromGobreaker(from).String(), "to", fromGobreaker(to).String())
		},
	})
	return b
}

// Do runs fn unless the breaker is open, in which case it returns an error
// wrapping ErrOpen without calling fn. Otherwise it returns fn's error as is.
func (b *Breaker) Do(ctx context.Context, fn func(context.Context) error) error {
	var fnErr error
	_, err := b.cb.Execute(func() (struct{}, error) {
		fnErr = fn(ctx)
		if fnErr != nil && errors.Is(ctx.Err(), context.Canceled) {
			return struct{}{}, errCallerGone
		}
		return struct{}{}, fnErr
	})
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return fmt.Errorf("%s: %w", b.name, ErrOpen)
	}
	return fnErr
}

// State reports the breaker's state.
func (b *Breaker) State() State { return fromGobreaker(b.cb.State()) }

// RetryAfter estimates how long a caller refused now should wait: the rest
// of the open period while open, otherwise one second, which is about what
// a half-open probe or a recovering dependency needs.
func (b *Breaker) RetryAfter() time.Duration {
	if b.State() == Open {
		left := b.openTimeout - time.Since(time.Unix(0, b.openedAt.Load()))
		if left > time.Second {
			return left
		}
	}
	return time.Second
}

func fromGobreaker(s gobreaker.State) State {
	switch s {
	case gobreaker.StateOpen:
		return Open
	case gobreaker.StateHalfOpen:
		return HalfOpen
	}
	return Closed
}
