package nats

import (
	"context"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluicehq/sluice/internal/eventually"
)

// TestPublishWhileServerDown: a publish while the server is down fails at
// once, and leaves nothing behind in the client that a later publish of
// the same batch (the caller's retry) would duplicate.
func TestPublishWhileServerDown(t *testing.T) {
	for _, jetStream := range []bool{false, true} {
		name := map[bool]string{false: "core", true: "jetstream"}[jetStream]
		t.Run(name, func(t *testing.T) { testPublishWhileServerDown(t, jetStream) })
	}
}

func testPublishWhileServerDown(t *testing.T, jetStream bool) {
	srv := startServer(t, nil)
	var stream jetstream.Stream
	if jetStream {
		stream = createStream(t, srv.URL(), jetstream.StreamConfig{Name: "SLUICE", Subjects: []string{"sluice.>"}})
	}
	pub := connect(t, srv.URL(), nil)
	subReady := make(chan struct{}, 1)
	sub := subscribe(t, srv.URL(), natsgo.MaxReconnects(-1), natsgo.ReconnectWait(100*time.Millisecond),
		natsgo.ReconnectHandler(func(c *natsgo.Conn) {
			c.Flush() // its subscription is back on the server
			subReady <- struct{}{}
		}))
	st := testStream(t)
	ctx := context.Background()
	first := rows(0, 20)
	if err := pub.Publish(ctx, st, 0, first); err != nil {
		t.Fatal(err)
	}
	receive(t, sub, first)

	srv.stop()
	eventually.True(t, 10*time.Second, "the publisher to notice the server is gone", func() bool { return testutil.ToFloat64(pub.m.connected) == 0 })
	batch := rows(20, 50)
	start := time.Now()
	err := pub.Publish(ctx, st, 0, batch)
	if err == nil {
		t.Fatal("Publish while the server is down succeeded")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Publish while the server is down took %v, want it to fail at once", d)
	}

	srv.start()
	eventually.True(t, 10*time.Second, "the publisher to reconnect", func() bool { return testutil.ToFloat64(pub.m.connected) == 1 })
	select {
	case <-subReady:
	case <-time.After(10 * time.Second):
		t.Fatal("the subscriber did not reconnect")
	}
	if err := pub.Publish(ctx, st, 0, batch); err != nil {
		t.Fatalf("retry after the server returned: %v", err)
	}
	receive(t, sub, batch)
	noMore(t, sub) // exactly one copy
	if got := testutil.ToFloat64(pub.m.reconnects); got != 1 {
		t.Errorf("sluice_nats_reconnects_total = %v, want 1", got)
	}
	if jetStream {
		if n := streamMsgs(t, stream); n != uint64(len(first)+len(batch)) {
			t.Errorf("JetStream holds %d messages, want %d", n, len(first)+len(batch))
		}
	}
}
