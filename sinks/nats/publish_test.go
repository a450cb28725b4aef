package nats

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks"
)

// createStream creates a JetStream stream with a plain client.
func createStream(t *testing.T, url string, cfg jetstream.StreamConfig) jetstream.Stream {
	t.Helper()
	nc, err := natsgo.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.CreateStream(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return stream
}

func streamMsgs(t *testing.T, stream jetstream.Stream) uint64 {
	t.Helper()
	info, err := stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestPublishCoreNATS(t *testing.T) {
	srv := startServer(t, nil)
	reg := prometheus.NewRegistry()
	pub := connect(t, srv.URL(), reg)
	sub := subscribe(t, srv.URL())
	st := testStream(t)
	ctx := context.Background()

	if js, err := pub.JetStream(ctx, st.Name); err != nil || js != "" {
		t.Fatalf("mode = JetStream %q, %v without any stream defined", js, err)
	}
	want := rows(0, 30)
	if err := pub.Publish(ctx, st, 0, want); err != nil {
		t.Fatal(err)
	}
	receive(t, sub, want)
	if got := testutil.ToFloat64(pub.m.mode.WithLabelValues(st.Name)); got != 0 {
		t.Errorf("sluice_nats_mode = %v on core NATS, want 0", got)
	}
	if got := testutil.ToFloat64(pub.m.connected); got != 1 {
		t.Errorf("sluice_nats_connected = %v, want 1", got)
	}
	if n, err := testutil.GatherAndCount(reg, "sluice_nats_connected", "sluice_nats_mode", "sluice_nats_reconnects_total"); err != nil || n != 3 {
		t.Errorf("registry holds %d of the 3 metrics: %v", n, err)
	}
	if pub.Name() != "nats" {
		t.Errorf("Name() = %q", pub.Name())
	}
}

func TestPublishWithoutJetStreamUsesCoreNATS(t *testing.T) {
	srv := startServer(t, func(o *natsserver.Options) { o.JetStream = false })
	pub := connect(t, srv.URL(), nil)
	sub := subscribe(t, srv.URL())
	want := rows(0, 5)
	if err := pub.Publish(context.Background(), testStream(t), 0, want); err != nil {
		t.Fatalf("publish to a server without JetStream: %v", err)
	}
	receive(t, sub, want)
}

func TestPublishJetStreamDeduplicatesRepublishedBatch(t *testing.T) {
	srv := startServer(t, nil)
	stream := createStream(t, srv.URL(), jetstream.StreamConfig{Name: "SLUICE", Subjects: []string{"sluice.>"}, Duplicates: 5 * time.Minute})
	pub := connect(t, srv.URL(), nil)
	st := testStream(t)
	ctx := context.Background()
	if got, err := pub.JetStream(ctx, st.Name); err != nil || got != "SLUICE" {
		t.Fatalf("mode = %q, %v, want JetStream stream SLUICE", got, err)
	}
	if got := testutil.ToFloat64(pub.m.mode.WithLabelValues(st.Name)); got != 1 {
		t.Errorf("sluice_nats_mode = %v in JetStream mode, want 1", got)
	}
	batch := rows(0, 500)
	// The second publish is what a worker does after a crash between
	// publishing and saving its progress.
	for range 2 {
		if err := pub.Publish(ctx, st, 0, batch); err != nil {
			t.Fatal(err)
		}
	}
	if n := streamMsgs(t, stream); n != uint64(len(batch)) {
		t.Fatalf("JetStream holds %d messages, want %d (republished batch not deduplicated)", n, len(batch))
	}
}

func TestPublishJetStreamPartialFailureReportsDone(t *testing.T) {
	srv := startServer(t, nil)
	// A full stream that discards new messages refuses every publish past
	// its 10th.
	stream := createStream(t, srv.URL(), jetstream.StreamConfig{
		Name: "SLUICE", Subjects: []string{"sluice.>"}, MaxMsgs: 10, Discard: jetstream.DiscardNew,
	})
	pub := connect(t, srv.URL(), nil)
	st := testStream(t)
	ctx := context.Background()

	batch := rows(0, 25)
	err := pub.Publish(ctx, st, 3, batch[:4])
	if err != nil {
		t.Fatal(err)
	}
	err = pub.Publish(ctx, st, 3, batch[4:])
	var pe *sinks.PartialError
	if !errors.As(err, &pe) {
		t.Fatalf("Publish past the stream's limit: %v, want a *PartialError", err)
	}
	if pe.Done != 6 || sinks.IsPermanent(err) || strings.Contains(err.Error(), "ahead") {
		t.Fatalf("PartialError{Done: %d}, permanent %v; want Done 6, not permanent, nothing stored ahead: %v", pe.Done, sinks.IsPermanent(err), err)
	}
	if !strings.Contains(err.Error(), batch[4+pe.Done].Event.ID) {
		t.Errorf("error does not name the first unconfirmed event %s: %v", batch[4+pe.Done].Event.ID, err)
	}
	// The caller resumes from the first unconfirmed row: nothing of it is
	// held, and the stream still holds the confirmed prefix exactly once.
	err = pub.Publish(ctx, st, 3, batch[4+pe.Done:])
	if !errors.As(err, &pe) || pe.Done != 0 {
		t.Fatalf("resumed publish into a full stream: %v, want a *PartialError with Done 0", err)
	}
	if n := streamMsgs(t, stream); n != 10 {
		t.Fatalf("JetStream holds %d messages, want 10", n)
	}
}

func TestPublishJetStreamTooLargeIsPermanent(t *testing.T) {
	srv := startServer(t, nil)
	stream := createStream(t, srv.URL(), jetstream.StreamConfig{Name: "SLUICE", Subjects: []string{"sluice.>"}, MaxMsgSize: 200})
	pub := connect(t, srv.URL(), nil)
	batch := rows(0, 5)
	batch[3].Value = []byte(`{"event_id":"` + batch[3].Event.ID + `","pad":"` + strings.Repeat("x", 300) + `"}`)

	err := pub.Publish(context.Background(), testStream(t), 0, batch)
	var pe *sinks.PartialError
	if !errors.As(err, &pe) || pe.Done != 3 || !sinks.IsPermanent(err) {
		t.Fatalf("Publish with an oversized row 3: %v, want a permanent *PartialError with Done 3", err)
	}
	// Row 4 was stored ahead of row 3, and Publish says so.
	if !strings.Contains(err.Error(), "1 later events of the batch were stored ahead") || streamMsgs(t, stream) != 4 {
		t.Fatalf("stream holds %d, want 4, and the error must say 1 event was stored ahead: %v", streamMsgs(t, stream), err)
	}
}

func TestPublishCoreTooLargeIsPermanent(t *testing.T) {
	srv := startServer(t, func(o *natsserver.Options) { o.JetStream = false; o.MaxPayload = 1024 })
	pub := connect(t, srv.URL(), nil)
	sub := subscribe(t, srv.URL())
	batch := rows(0, 4)
	batch[2].Value = []byte(strings.Repeat("x", 2048))

	err := pub.Publish(context.Background(), testStream(t), 0, batch)
	var pe *sinks.PartialError
	if !errors.As(err, &pe) || pe.Done != 2 || !sinks.IsPermanent(err) {
		t.Fatalf("Publish with an oversized row 2: %v, want a permanent *PartialError with Done 2", err)
	}
	receive(t, sub, batch[:2])
	noMore(t, sub)
}

func TestPublishJetStreamIDsDifferingInWhitespace(t *testing.T) {
	srv := startServer(t, nil)
	stream := createStream(t, srv.URL(), jetstream.StreamConfig{Name: "SLUICE", Subjects: []string{"sluice.>"}})
	pub := connect(t, srv.URL(), nil)
	ids := []string{"a", " a", "a ", "a\n", "a\r\n", "\ta", "a\u00a0", "a b", "a\nb"}
	batch := make([]sinks.Row, len(ids))
	for i, id := range ids {
		batch[i] = sinks.Row{Offset: int64(i), Event: schemas.Event{ID: id, Key: "dev"}, Value: []byte(`{}`)}
	}
	for range 2 { // the second time, all are duplicates
		if err := pub.Publish(context.Background(), testStream(t), 0, batch); err != nil {
			t.Fatal(err)
		}
	}
	if n := streamMsgs(t, stream); n != uint64(len(ids)) {
		t.Fatalf("JetStream holds %d messages for %d distinct event_ids", n, len(ids))
	}
	for i, id := range ids {
		m, err := stream.GetMsg(context.Background(), uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Header.Get(jetstream.MsgIDHeader); got != MsgID(id) {
			t.Errorf("message %d: Nats-Msg-Id %q, want MsgID(%q) = %q", i+1, got, id, MsgID(id))
		}
	}
}

func TestPublishHostileKeys(t *testing.T) {
	srv := startServer(t, func(o *natsserver.Options) { o.JetStream = false })
	pub := connect(t, srv.URL(), nil)
	sub := subscribe(t, srv.URL())
	keys := []string{strings.Repeat("k", 4096), "nul\x00", "crlf\r\nPUB evil 1\r\nx", "sp ace\u3000\u2028", "\xff\xfe", "", "*", ">", "a.b"}
	batch := make([]sinks.Row, len(keys))
	for i, k := range keys {
		batch[i] = sinks.Row{Offset: int64(i), Event: schemas.Event{ID: "id", Key: k}, Value: []byte{byte('0' + i)}}
	}
	// Twice: a key that broke the control line would have dropped the
	// connection, and the second publish would fail.
	for range 2 {
		if err := pub.Publish(context.Background(), testStream(t), 0, batch); err != nil {
			t.Fatal(err)
		}
		receive(t, sub, batch)
	}
	noMore(t, sub)
	if got := testutil.ToFloat64(pub.m.reconnects); got != 0 {
		t.Errorf("the connection was re-established %v times", got)
	}
}

// TestPublishFailsWhenModeUnknown: a publisher that cannot use the
// JetStream API (here denied by permissions, so lookups time out) must not
// guess core NATS.
func TestPublishFailsWhenModeUnknown(t *testing.T) {
	srv := startServer(t, func(o *natsserver.Options) {
		o.Users = []*natsserver.User{{Username: "sluice", Password: "pw", Permissions: &natsserver.Permissions{
			Publish: &natsserver.SubjectPermission{Allow: []string{"sluice.>"}, Deny: []string{"$JS.API.>"}},
		}}}
	})
	pub := connect(t, "nats://sluice:pw@"+strings.TrimPrefix(srv.URL(), "nats://"), nil)
	sub := subscribe(t, "nats://sluice:pw@"+strings.TrimPrefix(srv.URL(), "nats://"))

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := pub.Publish(ctx, testStream(t), 0, rows(0, 3))
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish with the JetStream lookup failing: %v, want the lookup's error", err)
	}
	noMore(t, sub)
}
