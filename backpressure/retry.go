package backpressure

import (
	"context"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// RetryPolicy says how Retry waits between attempts.
type RetryPolicy struct {
	// Initial is the first wait; it grows exponentially up to Max.
	Initial, Max time.Duration
	// IsPermanent classifies errors that retrying cannot fix. Nil means every
	// error is transient.
	IsPermanent func(error) bool
	// MaxAttempts, when above zero, gives up after that many attempts and
	// returns the last error. Zero retries for as long as ctx lasts, which
	// is what sinks want; start-up steps want a clear exit instead.
	MaxAttempts uint
}

// DefaultRetry waits 100 ms at first and at most 5 s between attempts.
var DefaultRetry = RetryPolicy{Initial: 100 * time.Millisecond, Max: 5 * time.Second}

// Retry runs op until it succeeds, fails permanently, runs out of
// p.MaxAttempts, or ctx ends. Transient
// failures are retried without an attempt limit: a sink that is down must
// stall its partition (and, through bounded queues, the consumer), never drop
// what Kafka holds. Each failure is logged with what, so an operator sees
// why the pipeline waits.
func Retry(ctx context.Context, log *slog.Logger, what string, p RetryPolicy, op func(context.Context) error) error {
	// A zero policy would retry in a tight loop; fall back to the default.
	if p.Initial <= 0 {
		p.Initial = DefaultRetry.Initial
	}
	if p.Max < p.Initial {
		p.Max = max(p.Initial, DefaultRetry.Max)
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = p.Initial
	b.MaxInterval = p.Max
	attempt := 0
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		attempt++
		err := op(ctx)
		if err != nil && p.IsPermanent != nil && p.IsPermanent(err) {
			return struct{}{}, backoff.Permanent(err)
		}
		return struct{}{}, err
	},
		backoff.WithBackOff(b),
		backoff.WithMaxElapsedTime(0),
		backoff.WithMaxTries(p.MaxAttempts),
		backoff.WithNotify(func(err error, next time.Duration) {
			if log != nil {
				log.Warn("retrying", "what", what, "attempt", attempt, "wait", next, "err", err)
			}
		}),
	)
	return err
}
