package backpressure

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"
)

var (
	errTransient = errors.New("connection refused")
	errPermanent = errors.New("row does not fit the table")
)

func TestRetry(t *testing.T) {
	tiny := RetryPolicy{Initial: time.Microsecond, Max: 50 * time.Microsecond,
		IsPermanent: func(err error) bool { return errors.Is(err, errPermanent) }}
	tests := []struct {
		name   string
		policy RetryPolicy
		// results are what op returns, attempt by attempt; after the last,
		// it succeeds.
		results []error
		// failForever makes op fail with errTransient after results too.
		failForever bool
		// cancelAfter cancels the context this long after Retry starts.
		cancelAfter  time.Duration
		wantErr      error
		wantAttempts int
		wantMinTime  time.Duration
		wantMaxTime  time.Duration
	}{
		{name: "succeeds at once", policy: tiny,
			wantAttempts: 1},
		{name: "succeeds after transient failures", policy: tiny,
			results:      []error{errTransient, errTransient, errTransient},
			wantAttempts: 4},
		{name: "no attempt limit", policy: tiny,
			results:      repeat(errTransient, 20),
			wantAttempts: 21},
		{name: "attempt limit returns the last error",
			policy:      RetryPolicy{Initial: time.Microsecond, Max: time.Microsecond, MaxAttempts: 3},
			failForever: true,
			wantErr:     errTransient, wantAttempts: 3},
		{name: "permanent error stops at once", policy: tiny,
			results: []error{errPermanent, errTransient},
			wantErr: errPermanent, wantAttempts: 1},
		{name: "permanent error after transient ones", policy: tiny,
			results: []error{errTransient, errTransient, fmt.Errorf("insert: %w", errPermanent)},
			wantErr: errPermanent, wantAttempts: 3},
		{name: "without IsPermanent every error is transient",
			policy:       RetryPolicy{Initial: time.Microsecond, Max: time.Microsecond},
			results:      []error{errPermanent, errPermanent},
			wantAttempts: 3},
		{name: "waits between attempts",
			policy:       RetryPolicy{Initial: 20 * time.Millisecond, Max: 20 * time.Millisecond},
			results:      []error{errTransient, errTransient},
			wantAttempts: 3, wantMinTime: 20 * time.Millisecond}, // at least 2 × 20 ms × (1 - 0.5 jitter)
		{name: "cancelled while waiting",
			policy:      RetryPolicy{Initial: time.Hour, Max: time.Hour},
			results:     []error{errTransient, errTransient},
			cancelAfter: 20 * time.Millisecond,
			wantErr:     context.Canceled, wantAttempts: 1, wantMaxTime: 10 * time.Second},
		{name: "cancelled during a run of failures", policy: tiny,
			failForever: true,
			cancelAfter: 20 * time.Millisecond,
			wantErr:     context.Canceled, wantMaxTime: 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancelAfter > 0 {
				time.AfterFunc(tt.cancelAfter, cancel)
			}
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			attempts := 0
			var last error // op's last result
			start := time.Now()
			err := Retry(ctx, log, "insert into t", tt.policy, func(opCtx context.Context) error {
				if opCtx != ctx {
					t.Error("op did not get Retry's context")
				}
				attempts++
				switch {
				case attempts <= len(tt.results):
					last = tt.results[attempts-1]
				case tt.failForever:
					last = errTransient
				default:
					last = nil
				}
				return last
			})
			took := time.Since(start)

			if tt.wantErr == nil && err != nil {
				t.Fatalf("err = %v, want nil", err)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if tt.wantErr == errPermanent && err != last {
					t.Errorf("err = %#v, want op's own error %#v, not wrapped", err, last)
				}
				var pe *backoff.PermanentError
				if errors.As(err, &pe) {
					t.Errorf("err %v still wrapped in backoff.PermanentError", err)
				}
			}
			if tt.wantAttempts > 0 && attempts != tt.wantAttempts {
				t.Errorf("%d attempts, want %d", attempts, tt.wantAttempts)
			}
			if took < tt.wantMinTime {
				t.Errorf("took %s, want at least %s", took, tt.wantMinTime)
			}
			if tt.wantMaxTime > 0 && took > tt.wantMaxTime {
				t.Errorf("took %s, want at most %s", took, tt.wantMaxTime)
			}

			// Each failure that is retried is logged, with what and the
			// attempt; the last failure and permanent errors are not.
			retried := attempts - 1
			if tt.wantErr == context.Canceled {
				retried = -1 // the count depends on when the cancel lands
			}
			lines := strings.Count(logs.String(), "msg=retrying")
			if retried >= 0 && lines != retried {
				t.Errorf("%d retries logged, want %d:\n%s", lines, retried, logs.String())
			}
			if lines > 0 && !strings.Contains(logs.String(), `what="insert into t" attempt=1 `) {
				t.Errorf("log lacks what or attempt:\n%s", logs.String())
			}
		})
	}
}

// A nil logger is allowed: the retries are just not logged.
func TestRetryNilLogger(t *testing.T) {
	n := 0
	err := Retry(context.Background(), nil, "x", RetryPolicy{Initial: time.Microsecond, Max: time.Microsecond},
		func(context.Context) error {
			if n++; n < 3 {
				return errTransient
			}
			return nil
		})
	if err != nil || n != 3 {
		t.Errorf("err = %v after %d attempts, want nil after 3", err, n)
	}
}

func repeat(err error, n int) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}
