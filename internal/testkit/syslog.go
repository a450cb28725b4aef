package testkit

import (
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// WaitTopic reads topic until it holds at least n messages or timeout
// passes, and returns what it holds then (failing the test when fewer than
// n): for sources whose producers get no acknowledgement to wait on.
func (k *Kafka) WaitTopic(t testing.TB, topic string, n int, timeout time.Duration) []kafka.Message {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msgs := k.ReadTopic(t, topic)
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d messages after %s, want %d", topic, len(msgs), timeout, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Eventually polls cond every 20 ms until it holds or timeout passes, then
// fails the test with what.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
