package testkit

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/ingest"
)

// Running is a source a test runs in the background.
type Running struct {
	cancel context.CancelFunc
	done   chan error // Run's result, once; closed after
	once   sync.Once
}

// RunSource runs src until Stop, or until t ends, when Stop is called for
// it: a source the test forgot to stop must still end.
func RunSource(t testing.TB, src ingest.Source) *Running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{cancel: cancel, done: make(chan error, 1)}
	go func() {
		r.done <- src.Run(ctx)
		close(r.done)
	}()
	t.Cleanup(func() { r.Stop(t, 30*time.Second) })
	return r
}

// Done yields Run's error once Run has returned.
func (r *Running) Done() <-chan error { return r.done }

// Cancel ends Run's context without waiting.
func (r *Running) Cancel() { r.cancel() }

// Stop ends Run's context and fails t unless Run returns nil within
// within. Only the first call waits.
func (r *Running) Stop(t testing.TB, within time.Duration) {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case err, ok := <-r.done:
			if ok && err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(within):
			t.Errorf("Run did not return within %s of its context ending", within)
		}
	})
}
