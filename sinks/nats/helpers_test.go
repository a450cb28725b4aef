package nats

import (
	"fmt"
	"net"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks"
)

// server is an embedded NATS server a test can stop and start again on the
// same port and store directory.
type server struct {
	t    *testing.T
	opts natsserver.Options
	srv  *natsserver.Server
}

// startServer starts a server with JetStream on a free port; edit, when
// given, adjusts its options first.
func startServer(t *testing.T, edit func(*natsserver.Options)) *server {
	t.Helper()
	s := &server{t: t, opts: natsserver.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
	}}
	if edit != nil {
		edit(&s.opts)
	}
	s.start()
	// Later starts reuse the port, so the clients' reconnects find it.
	s.opts.Port = s.srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(s.stop)
	return s
}

func (s *server) start() {
	s.t.Helper()
	opts := s.opts
	srv, err := natsserver.NewServer(&opts)
	if err != nil {
		s.t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		s.t.Fatal("nats server not ready")
	}
	s.srv = srv
}

func (s *server) stop() {
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
		s.srv = nil
	}
}

func (s *server) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.opts.Port) }

func connect(t *testing.T, url string, reg prometheus.Registerer) *Publisher {
	t.Helper()
	pub, err := Connect(Options{URL: url, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	return pub
}

// subscribe returns a plain client's subscription to every Sluice subject.
func subscribe(t *testing.T, url string, opts ...natsgo.Option) *natsgo.Subscription {
	t.Helper()
	nc, err := natsgo.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	sub, err := nc.SubscribeSync("sluice.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return sub
}

func testStream(t *testing.T) *schemas.Stream {
	t.Helper()
	return testkit.Stream(t, "iot_telemetry")
}

// rows returns n rows over three keys, at offsets from, with event_ids
// ev-<offset>.
func rows(from, n int) []sinks.Row {
	out := make([]sinks.Row, n)
	for i := range out {
		off := from + i
		id := fmt.Sprintf("ev-%04d", off)
		out[i] = sinks.Row{
			Offset: int64(off),
			Event:  schemas.Event{ID: id, Key: fmt.Sprintf("dev.%d", off%3)},
			Value:  []byte(`{"event_id":"` + id + `"}`),
		}
	}
	return out
}

// receive reads n messages and checks they are rows, in order, on their
// subjects.
func receive(t *testing.T, sub *natsgo.Subscription, want []sinks.Row) {
	t.Helper()
	for i, r := range want {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("message %d of %d: %v", i, len(want), err)
		}
		if subj := Subject("sluice.", "iot_telemetry", r.Event.Key); m.Subject != subj || string(m.Data) != string(r.Value) {
			t.Fatalf("message %d: got %s %s, want %s %s (order must be kept)", i, m.Subject, m.Data, subj, r.Value)
		}
	}
}

// noMore fails if sub receives anything within a short while.
func noMore(t *testing.T, sub *natsgo.Subscription) {
	t.Helper()
	if m, err := sub.NextMsg(300 * time.Millisecond); err == nil {
		t.Fatalf("unexpected extra message %s %s", m.Subject, m.Data)
	}
}
