// Package eventually waits, in tests, for a condition that other
// goroutines or processes are to make true: one helper for every package,
// where each had its own copy.
package eventually

import (
	"testing"
	"time"
)

// maxPoll bounds the wait between two looks at the condition: it starts
// at a millisecond, so that a condition about to hold costs a test little,
// and doubles up to this, so that a costly one (a query to Kafka) is not
// run in a tight loop.
const maxPoll = 20 * time.Millisecond

// True returns once cond holds, and fails t (naming what was awaited)
// when it has not held within limit.
func True(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	poll := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", limit, what)
		}
		time.Sleep(poll)
		poll = min(2*poll, maxPoll)
	}
}
