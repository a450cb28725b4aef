package nats

import (
	"context"
	"fmt"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/devstack"
	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/schemas"
)

func startServer(t *testing.T) string {
	t.Helper()
	srv, err := devstack.StartNATS("127.0.0.1:-1", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv.URL()
}

func testStream(t *testing.T) *schemas.Stream {
	t.Helper()
	return testkit.Stream(t, "iot_telemetry")
}

func batch(n int) []Message {
	msgs := make([]Message, n)
	for i := range msgs {
		id := fmt.Sprintf("ev-%04d", i)
		msgs[i] = Message{Key: fmt.Sprintf("dev.%d", i%3), EventID: id, Data: []byte(`{"event_id":"` + id + `"}`)}
	}
	return msgs
}

func TestPublishCoreNATS(t *testing.T) {
	url := startServer(t)
	pub, err := Connect(Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	nc, err := natsgo.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("sluice.iot_telemetry.>")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()

	st := testStream(t)
	if js := pub.JetStream(context.Background(), st.Name); js != "" {
		t.Fatalf("mode = JetStream %q without any stream defined", js)
	}
	msgs := batch(30)
	if err := pub.Publish(context.Background(), st, msgs); err != nil {
		t.Fatal(err)
	}
	for i, want := range msgs {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if wantSubj := Subject("sluice.", st.Name, want.Key); m.Subject != wantSubj || string(m.Data) != string(want.Data) {
			t.Fatalf("message %d: got %s %s, want %s %s (order must be kept)", i, m.Subject, m.Data, wantSubj, want.Data)
		}
	}
}

func TestPublishJetStreamDeduplicatesRepublishedBatch(t *testing.T) {
	url := startServer(t)
	nc, err := natsgo.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SLUICE", Subjects: []string{"sluice.>"}, Duplicates: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}

	pub, err := Connect(Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	st := testStream(t)
	if got := pub.JetStream(ctx, st.Name); got != "SLUICE" {
		t.Fatalf("mode = %q, want JetStream stream SLUICE", got)
	}
	msgs := batch(500)
	// The second publish is what a worker does after a crash between
	// publishing and committing.
	for range 2 {
		if err := pub.Publish(ctx, st, msgs); err != nil {
			t.Fatal(err)
		}
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != uint64(len(msgs)) {
		t.Fatalf("JetStream holds %d messages, want %d (republished batch not deduplicated)", info.State.Msgs, len(msgs))
	}
}
