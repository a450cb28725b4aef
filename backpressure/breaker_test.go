package backpressure

import (
	"context"
	"errors"
	"testing"
	"time"
)

var errKafka = errors.New("kafka down")

func TestBreaker(t *testing.T) {
	type call struct {
		err       error         // what the wrapped function returns
		cancel    bool          // the caller's context is cancelled first
		sleep     time.Duration // pause before this call
		wantErr   error
		wantRun   bool // whether the wrapped function must run
		wantState State
	}
	fail := call{err: errKafka, wantErr: errKafka, wantRun: true, wantState: Closed}
	failOpens := call{err: errKafka, wantErr: errKafka, wantRun: true, wantState: Open}
	refused := call{wantErr: ErrOpen, wantState: Open}
	ok := call{wantRun: true, wantState: Closed}

	tests := []struct {
		name  string
		calls []call
	}{
		{name: "opens after consecutive failures", calls: []call{fail, fail, failOpens, refused}},
		{name: "a success resets the count", calls: []call{fail, fail, ok, fail, fail, failOpens}},
		{name: "cancelled callers do not count", calls: []call{
			fail, fail,
			{err: context.Canceled, cancel: true, wantErr: context.Canceled, wantRun: true, wantState: Closed},
			{err: context.Canceled, cancel: true, wantErr: context.Canceled, wantRun: true, wantState: Closed},
			failOpens,
		}},
		{name: "half-open probe success closes", calls: []call{
			fail, fail, failOpens,
			{sleep: 60 * time.Millisecond, wantRun: true, wantState: Closed},
			ok,
		}},
		{name: "half-open probe failure reopens", calls: []call{
			fail, fail, failOpens,
			{sleep: 60 * time.Millisecond, err: errKafka, wantErr: errKafka, wantRun: true, wantState: Open},
			refused,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBreaker(BreakerConfig{Name: "kafka", Failures: 3, OpenTimeout: 50 * time.Millisecond})
			for i, c := range tt.calls {
				time.Sleep(c.sleep)
				ctx, cancel := context.WithCancel(context.Background())
				if c.cancel {
					cancel()
				}
				ran := false
				err := b.Do(ctx, func(context.Context) error { ran = true; return c.err })
				cancel()
				if !errors.Is(err, c.wantErr) || (c.wantErr == nil) != (err == nil) {
					t.Errorf("call %d: err = %v, want %v", i, err, c.wantErr)
				}
				if ran != c.wantRun {
					t.Errorf("call %d: ran = %v, want %v", i, ran, c.wantRun)
				}
				if got := b.State(); got != c.wantState {
					t.Errorf("call %d: state = %s, want %s", i, got, c.wantState)
				}
			}
		})
	}
}

func TestBreakerRetryAfter(t *testing.T) {
	b := NewBreaker(BreakerConfig{Failures: 1, OpenTimeout: 30 * time.Second})
	if got := b.RetryAfter(); got != time.Second {
		t.Errorf("closed: RetryAfter = %s, want 1s", got)
	}
	_ = b.Do(context.Background(), func(context.Context) error { return errKafka })
	if b.State() != Open {
		t.Fatalf("state = %s, want open", b.State())
	}
	if got := b.RetryAfter(); got < 29*time.Second || got > 30*time.Second {
		t.Errorf("open: RetryAfter = %s, want about 30s", got)
	}
	if err := b.Do(context.Background(), func(context.Context) error { return nil }); !errors.Is(err, ErrOpen) {
		t.Errorf("Do while open = %v, want ErrOpen", err)
	}
}
