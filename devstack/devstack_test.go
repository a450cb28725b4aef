package devstack

import (
	"log/slog"
	"testing"
)

// The broker stops, saving its state, well within the bound; a second
// Close is harmless.
func TestKafkaCloseWithin(t *testing.T) {
	k, err := StartKafka("127.0.0.1:0", t.TempDir(), false, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := k.CloseWithin(CloseWait); err != nil {
		t.Fatal(err)
	}
	if err := k.CloseWithin(CloseWait); err != nil {
		t.Fatalf("a second close: %v", err)
	}
}
