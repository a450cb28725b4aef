package relp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/ingest/relp"
	"github.com/sluicehq/sluice/internal/testkit"
)

type testServer struct {
	*relp.Server
	reg  *prometheus.Registry
	stop func()
}

func startServer(t testing.TB, g *ingest.Gate, tweak func(*relp.Config)) *testServer {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := relp.Config{Addr: "127.0.0.1:0", Gate: g, Logger: testkit.FileLogger(t, "relp.log"), Registerer: reg}
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := relp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	run := testkit.RunSource(t, s)
	return &testServer{Server: s, reg: reg, stop: func() { run.Stop(t, 30*time.Second) }}
}

func (s *testServer) addr() string { return s.Addr().String() }

// metric is the value of a counter or gauge without labels (summed over
// labels when it has some).
func (s *testServer) metric(t testing.TB, name string) float64 {
	t.Helper()
	return testkit.Metric(t, s.reg, name, nil)
}

// line is the i-th test message, RFC 5424, severity i%8, facility local0.
func line(i int) string {
	return fmt.Sprintf("<%d>1 2026-11-30T10:00:00.%03dZ web-%d checkout %d m%d - payment %05d", 16*8+i%8, i%1000, i%3, 1000+i, i%5, i)
}

var levels = []string{"fatal", "fatal", "fatal", "error", "warn", "info", "info", "debug"}

// expectAnswers reads n answers and checks they are rsp 200 for
// transaction numbers from, from+1, ... in that order.
func expectAnswers(t testing.TB, c *testkit.RELPClient, from, n int) {
	t.Helper()
	_ = c.Conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	defer func() { _ = c.Conn.SetReadDeadline(time.Time{}) }()
	for i := range n {
		f, err := c.ReadFrame()
		if err != nil {
			t.Fatalf("answer %d of %d: %v", i+1, n, err)
		}
		if f.Txnr != from+i || f.Cmd != "rsp" || f.Data != "200 OK" {
			t.Fatalf("answer %d: %+v, want rsp 200 OK for txnr %d", i+1, f, from+i)
		}
	}
}

// sendLines queues one syslog frame per line and sends them at once,
// pipelined; it returns the first transaction number used.
func sendLines(t testing.TB, c *testkit.RELPClient, lines []string) int {
	t.Helper()
	first := c.Txnr() + 1
	for _, l := range lines {
		if err := c.Queue("syslog", []byte(l)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	return first
}

// appLogs returns the app_logs events in Kafka by message.
func appLogs(t testing.TB, k *testkit.Kafka) (byMessage map[string]map[string]any, total int) {
	t.Helper()
	byMessage = map[string]map[string]any{}
	msgs := k.ReadTopic(t, testkit.StreamTopic("app_logs"))
	for _, m := range msgs {
		var ev map[string]any
		if err := json.Unmarshal(m.Value, &ev); err != nil {
			t.Fatalf("event %q: %v", m.Value, err)
		}
		byMessage[fmt.Sprint(ev["message"])] = ev
	}
	return byMessage, len(msgs)
}

func TestAnswersInOrderAfterKafka(t *testing.T) {
	k := testkit.StartKafka(t)
	s := startServer(t, testkit.NewGate(t, k, nil), nil)
	c := testkit.OpenRELP(t, s.addr())

	const n = 300
	lines := make([]string, n)
	for i := range lines {
		lines[i] = line(i)
	}
	lines[17] = "no PRI at all"
	lines[200] = "<999>1 broken"
	first := sendLines(t, c, lines)
	expectAnswers(t, c, first, n)

	events, total := appLogs(t, k)
	if total != n-2 {
		t.Fatalf("%d events in Kafka, want %d", total, n-2)
	}
	for i, l := range lines {
		if i == 17 || i == 200 {
			continue
		}
		ev := events[fmt.Sprintf("payment %05d", i)]
		if ev == nil {
			t.Fatalf("line %d missing from Kafka", i)
		}
		want := map[string]any{"service": "checkout", "host": fmt.Sprintf("web-%d", i%3), "level": levels[i%8], "event_id": ingest.DeriveID([]byte(l))}
		for f, v := range want {
			if ev[f] != v {
				t.Errorf("line %d: %s = %v, want %v (event %v)", i, f, ev[f], v, ev)
			}
		}
		if attrs, _ := ev["attrs"].(map[string]any); attrs["procid"] != fmt.Sprint(1000+i) || attrs["facility"] != "local0" {
			t.Errorf("line %d: attrs %v", i, ev["attrs"])
		}
	}
	dead := k.DeadLetters(t)
	if len(dead) != 2 {
		t.Fatalf("%d dead letters, want 2: %+v", len(dead), dead)
	}
	for _, d := range dead {
		if d.Source != "relp" || d.Reason == "" || (d.RawEvent != lines[17] && d.RawEvent != lines[200]) {
			t.Errorf("dead letter %+v", d)
		}
	}
	if got := s.metric(t, "sluice_relp_parse_failures_total"); got != 2 {
		t.Errorf("parse failures %v, want 2", got)
	}
}

// heldGate is a gate on k whose producer holds every Produce until
// released.
func heldGate(t *testing.T, k *testkit.Kafka) (*heldProducer, *ingest.Gate) {
	held := &heldProducer{release: make(chan struct{}), calls: make(chan struct{}, 1)}
	g := testkit.NewGate(t, k, nil, func(cfg *ingest.GateConfig) {
		held.Producer = cfg.Producer
		cfg.Producer = held
		cfg.ProduceTimeout = time.Minute
	})
	return held, g
}

// heldProducer holds every Produce until released, as a Kafka that does
// not acknowledge would.
type heldProducer struct {
	ingest.Producer
	release chan struct{}
	calls   chan struct{}
}

func (p *heldProducer) Produce(ctx context.Context, msgs []ingest.Message) error {
	select {
	case p.calls <- struct{}{}:
	default:
	}
	select {
	case <-p.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return p.Producer.Produce(ctx, msgs)
}

// TestNoAnswerUntilKafkaAcks: while Kafka holds its acknowledgement, no rsp
// goes out, whatever the wait; once Kafka acknowledges, every frame is
// answered, in order.
func TestNoAnswerUntilKafkaAcks(t *testing.T) {
	k := testkit.StartKafka(t)
	held, g := heldGate(t, k)
	s := startServer(t, g, nil)
	c := testkit.OpenRELP(t, s.addr())
	lines := []string{line(1), line(2), "unparseable", line(3)}
	first := sendLines(t, c, lines)

	select {
	case <-held.calls:
	case <-time.After(10 * time.Second):
		t.Fatal("the frames never reached the producer")
	}
	_ = c.Conn.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
	if f, err := c.ReadFrame(); err == nil {
		t.Fatalf("answered %+v before Kafka acknowledged", f)
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("connection failed while Kafka held its ack: %v", err)
	}
	if got := s.metric(t, "sluice_relp_frames_answered_total"); got != 0 {
		t.Fatalf("%v frames counted answered before Kafka acknowledged", got)
	}
	close(held.release)
	expectAnswers(t, c, first, len(lines))
	if _, total := appLogs(t, k); total != 3 {
		t.Fatalf("%d events in Kafka, want 3", total)
	}
	if d := k.DeadLetters(t); len(d) != 1 {
		t.Fatalf("%d dead letters, want 1", len(d))
	}
}

// TestKafkaDownNoAnswer closes the broker: frames stay unanswered (never a
// non-200 answer), and the connection stays up waiting.
func TestKafkaDownNoAnswer(t *testing.T) {
	k := testkit.StartKafka(t)
	g := testkit.NewGate(t, k, nil, func(cfg *ingest.GateConfig) { cfg.ProduceTimeout = time.Second })
	s := startServer(t, g, func(cfg *relp.Config) { cfg.ShutdownGrace = 100 * time.Millisecond })
	c := testkit.OpenRELP(t, s.addr())
	k.Cluster.Close()
	sendLines(t, c, []string{line(1), line(2)})
	_ = c.Conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	f, err := c.ReadFrame()
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("with Kafka down got %+v, %v; want no answer at all", f, err)
	}
	if got := s.metric(t, "sluice_relp_frames_received_total"); got != 2 {
		t.Fatalf("%v frames received, want 2", got)
	}
}

// expectClosed checks that the server closes c without answering anything
// more.
func expectClosed(t *testing.T, c *testkit.RELPClient, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = c.Conn.SetReadDeadline(start.Add(within))
	f, err := c.ReadFrame()
	if err == nil {
		t.Fatalf("got %+v, want the connection closed", f)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open after %s", within)
	}
	if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("read: %v, want EOF", err)
	}
	return time.Since(start)
}

// TestBadFramesCloseConnection: each malformed input closes its connection
// with nothing answered for it, while another connection keeps flowing.
func TestBadFramesCloseConnection(t *testing.T) {
	k := testkit.StartKafka(t)
	s := startServer(t, testkit.NewGate(t, k, nil), func(cfg *relp.Config) { cfg.MaxFrameBytes = 1000 })
	steady := testkit.OpenRELP(t, s.addr())
	bad := []struct {
		name, in string
		open     bool
	}{
		{"datalen mismatch", "2 syslog 50 " + line(1) + "\n3 syslog 5 abcde\n", true},
		{"datalen 2^40", "2 syslog 1099511627776 x\n", true},
		{"datalen over the maximum", fmt.Sprintf("2 syslog 1001 %s\n", strings.Repeat("x", 1001)), true},
		{"binary garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\xff\xfe", false},
		{"garbage after open", "\x00\x01\x02\x03\n", true},
		{"txnr out of sequence", "5 syslog 3 abc\n", true},
		{"syslog before open", "1 syslog 3 abc\n", false},
	}
	for i, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			var c *testkit.RELPClient
			if b.open {
				c = testkit.OpenRELP(t, s.addr())
			} else {
				var err error
				if c, err = testkit.DialRELP(s.addr()); err != nil {
					t.Fatal(err)
				}
				defer c.Conn.Close()
			}
			if _, err := c.Conn.Write([]byte(b.in)); err != nil {
				t.Fatal(err)
			}
			expectClosed(t, c, 5*time.Second)
			first := sendLines(t, steady, []string{line(i)})
			expectAnswers(t, steady, first, 1)
		})
	}
	if _, total := appLogs(t, k); total != len(bad) {
		t.Fatalf("%d events in Kafka, want %d (only the steady connection's)", total, len(bad))
	}
	if got := s.metric(t, "sluice_relp_connection_errors_total"); got != float64(len(bad)) {
		t.Errorf("%v connection errors counted, want %d", got, len(bad))
	}
}

// TestStalledHalfFrame: a connection that stops inside a frame is closed
// after the frame timeout; an idle one between frames is not, and others
// keep flowing meanwhile.
func TestStalledHalfFrame(t *testing.T) {
	k := testkit.StartKafka(t)
	const timeout = 500 * time.Millisecond
	s := startServer(t, testkit.NewGate(t, k, nil), func(cfg *relp.Config) { cfg.FrameTimeout = timeout })
	idle := testkit.OpenRELP(t, s.addr())
	steady := testkit.OpenRELP(t, s.addr())
	stalled := testkit.OpenRELP(t, s.addr())
	if _, err := stalled.Conn.Write([]byte("2 syslog 100 <13>1 - - half")); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	flowed := make(chan int)
	go func() {
		n := 0
		defer func() { flowed <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			first := sendLines(t, steady, []string{line(n)})
			expectAnswers(t, steady, first, 1)
			n++
		}
	}()
	took := expectClosed(t, stalled, 10*time.Second)
	close(stop)
	n := <-flowed
	if took < timeout-100*time.Millisecond {
		t.Errorf("closed after %s, before the %s timeout", took, timeout)
	}
	if n == 0 {
		t.Error("no frame flowed on another connection while one stalled")
	}
	time.Sleep(timeout)
	first := sendLines(t, idle, []string{line(9999)})
	expectAnswers(t, idle, first, 1)
	if got := s.metric(t, "sluice_relp_connection_errors_total"); got != 1 {
		t.Errorf("%v connection errors, want 1 (stalled)", got)
	}
}

// TestIdleSessionClosed: a session that sends nothing for the idle timeout
// is told serverclose and closed, once the frames it sent are answered;
// one that keeps sending stays open.
func TestIdleSessionClosed(t *testing.T) {
	k := testkit.StartKafka(t)
	// Wide enough that a slow acknowledgement (a loaded machine) does not
	// eat the busy session's margin: it sends every tenth of it.
	const idle = 2 * time.Second
	s := startServer(t, testkit.NewGate(t, k, nil), func(cfg *relp.Config) { cfg.IdleTimeout = idle })
	quiet := testkit.OpenRELP(t, s.addr())
	busy := testkit.OpenRELP(t, s.addr())
	// The idle time runs from the last frame read, which is after this.
	start := time.Now()
	first := sendLines(t, quiet, []string{line(1)})
	expectAnswers(t, quiet, first, 1)
	stop := make(chan struct{})
	flowed := make(chan int)
	go func() {
		n := 0
		defer func() { flowed <- n }()
		for {
			select {
			case <-stop:
				return
			case <-time.After(idle / 10):
			}
			first := sendLines(t, busy, []string{line(100 + n)})
			expectAnswers(t, busy, first, 1)
			n++
		}
	}()
	_ = quiet.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := quiet.ReadFrame()
	if err != nil || f.Cmd != "serverclose" {
		t.Fatalf("idle session got %+v, %v; want serverclose", f, err)
	}
	if took := time.Since(start); took < idle {
		t.Errorf("serverclose after %s, before the %s idle timeout", took, idle)
	}
	expectClosed(t, quiet, 10*time.Second)
	// The busy session outlives the idle timeout several times over.
	time.Sleep(2 * idle)
	close(stop)
	if n := <-flowed; n == 0 {
		t.Error("nothing flowed on the busy session")
	}
	first = sendLines(t, busy, []string{line(9999)})
	expectAnswers(t, busy, first, 1)
	if got := testkit.Metric(t, s.reg, "sluice_relp_connection_errors_total", map[string]string{"reason": "idle"}); got != 1 {
		t.Errorf("%v connections closed idle, want 1", got)
	}
}

func TestMaxConnections(t *testing.T) {
	k := testkit.StartKafka(t)
	s := startServer(t, testkit.NewGate(t, k, nil), func(cfg *relp.Config) { cfg.MaxConnections = 2 })
	a := testkit.OpenRELP(t, s.addr())
	testkit.OpenRELP(t, s.addr())
	extra, err := testkit.DialRELP(s.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Conn.Close()
	expectClosed(t, extra, 5*time.Second)
	first := sendLines(t, a, []string{line(1)})
	expectAnswers(t, a, first, 1)
	if got := s.metric(t, "sluice_relp_connections_refused_total"); got != 1 {
		t.Errorf("%v refused, want 1", got)
	}
	// A closed session frees its slot.
	if err := a.Queue("close", nil); err != nil {
		t.Fatal(err)
	}
	_ = a.Flush()
	if f, err := a.ReadFrame(); err != nil || f.Cmd != "rsp" || f.Data != "" {
		t.Fatalf("close answered %+v, %v", f, err)
	}
	expectClosed(t, a, 5*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for s.metric(t, "sluice_relp_connections") != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	testkit.OpenRELP(t, s.addr())
}

// TestShutdownSendsServerClose: when Run's context ends, an open session
// is told serverclose and Run returns.
func TestShutdownSendsServerClose(t *testing.T) {
	k := testkit.StartKafka(t)
	s := startServer(t, testkit.NewGate(t, k, nil), nil)
	c := testkit.OpenRELP(t, s.addr())
	first := sendLines(t, c, []string{line(1)})
	expectAnswers(t, c, first, 1)
	s.stop()
	_ = c.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if f, err := c.ReadFrame(); err != nil || f.Cmd != "serverclose" || f.Txnr != 0 {
		t.Fatalf("got %+v, %v; want 0 serverclose", f, err)
	}
	expectClosed(t, c, 5*time.Second)
}

// TestEventIDs: a line resent (here: sent twice) keeps its derived
// event_id; with RandomIDs (--syslog-derive-ids=false) each copy gets its
// own.
func TestEventIDs(t *testing.T) {
	for _, random := range []bool{false, true} {
		t.Run(fmt.Sprintf("random=%v", random), func(t *testing.T) {
			k := testkit.StartKafka(t)
			s := startServer(t, testkit.NewGate(t, k, nil), func(cfg *relp.Config) { cfg.RandomIDs = random })
			c := testkit.OpenRELP(t, s.addr())
			first := sendLines(t, c, []string{line(7), line(7)})
			expectAnswers(t, c, first, 2)
			ids := map[string]bool{}
			for _, m := range k.ReadTopic(t, testkit.StreamTopic("app_logs")) {
				var ev map[string]any
				if err := json.Unmarshal(m.Value, &ev); err != nil {
					t.Fatal(err)
				}
				ids[fmt.Sprint(ev["event_id"])] = true
			}
			want := map[bool]int{false: 1, true: 2}[random]
			if len(ids) != want {
				t.Fatalf("%d distinct event_ids for a line sent twice, want %d: %v", len(ids), want, ids)
			}
			if !random && !ids[ingest.DeriveID([]byte(line(7)))] {
				t.Fatalf("event_id %v is not derived from the raw line", ids)
			}
		})
	}
}

// TestStopsReadingWhileKafkaHolds: while Kafka does not acknowledge, the
// server reads no more than MaxPendingBytes ahead, so the sender's frames
// wait in TCP buffers and then in the sender; once Kafka acknowledges,
// all are answered in order.
func TestStopsReadingWhileKafkaHolds(t *testing.T) {
	k := testkit.StartKafka(t)
	held, g := heldGate(t, k)
	s := startServer(t, g, func(cfg *relp.Config) { cfg.MaxPendingBytes = 4 << 10 })
	c := testkit.OpenRELP(t, s.addr())
	const n = 1000
	lines := make([]string, n)
	for i := range lines {
		lines[i] = line(i)
	}
	first := c.Txnr() + 1
	for _, l := range lines {
		if err := c.Queue("syslog", []byte(l)); err != nil {
			t.Fatal(err)
		}
	}
	flushed := make(chan error, 1)
	go func() { flushed <- c.Flush() }() // may block in write: the point
	<-held.calls
	time.Sleep(time.Second)
	// About 4 KiB of ~120-byte frames, plus the one being read.
	if got := s.metric(t, "sluice_relp_frames_received_total"); got > 60 {
		t.Fatalf("%v frames read while Kafka held its acknowledgement; the budget allows about 40", got)
	}
	close(held.release)
	expectAnswers(t, c, first, n)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
}

// TestBufferBoundsAllConnections: while Kafka does not acknowledge, all
// connections together read no more than MaxBufferBytes ahead, though
// each alone may hold more; the others wait, their reads paused, and once
// Kafka acknowledges every frame of every connection is answered in order.
func TestBufferBoundsAllConnections(t *testing.T) {
	k := testkit.StartKafka(t)
	held, g := heldGate(t, k)
	const buffer = 16 << 10
	s := startServer(t, g, func(cfg *relp.Config) { cfg.MaxBufferBytes = buffer })
	const conns, n = 8, 300
	clients := make([]*testkit.RELPClient, conns)
	firsts := make([]int, conns)
	flushed := make(chan error, conns)
	for i := range clients {
		// All open first: an open is a frame, which waits for the buffer
		// like any other once it is full.
		clients[i] = testkit.OpenRELP(t, s.addr())
		firsts[i] = clients[i].Txnr() + 1
	}
	for i, c := range clients {
		for j := range n {
			if err := c.Queue("syslog", []byte(line(i*n+j))); err != nil {
				t.Fatal(err)
			}
		}
		go func() { flushed <- c.Flush() }() // may block in write: the point
	}
	<-held.calls
	time.Sleep(time.Second)
	// Frames of ~75 bytes and 64 of overhead, in the half of the buffer
	// for small frames: about 60 fit (every frame counted received has
	// taken its share).
	if got := s.metric(t, "sluice_relp_frames_received_total"); got > 60+conns {
		t.Errorf("%v frames read while Kafka held its acknowledgement; the buffer holds about 60", got)
	}
	if got := s.metric(t, "sluice_relp_buffer_bytes"); got > buffer/2 || got < buffer/4 {
		t.Errorf("buffer holds %v bytes, want at most %d and most of it", got, buffer/2)
	}
	if got := s.metric(t, "sluice_relp_buffer_waiting"); got < 1 {
		t.Errorf("%v connections waiting for the buffer, want some", got)
	}
	close(held.release)
	for i, c := range clients {
		expectAnswers(t, c, firsts[i], n)
	}
	for range conns {
		if err := <-flushed; err != nil {
			t.Fatal(err)
		}
	}
	// A frame's share goes back just after its answer is written.
	testkit.Eventually(t, 10*time.Second, "the buffer empty once every frame was answered", func() bool {
		return s.metric(t, "sluice_relp_buffer_bytes") == 0
	})
}

// TestStalledLargeFramesHoldOnlyTheBuffer: senders that announce large
// frames and stall get memory for as many as MaxBufferBytes holds; the
// rest wait without it, and are not closed for the wait. A stalled frame
// is closed after the frame timeout and gives its share back, and a
// normal sender gets through afterwards.
func TestStalledLargeFramesHoldOnlyTheBuffer(t *testing.T) {
	k := testkit.StartKafka(t)
	// Long enough that the two stalled frames holding the buffer are
	// surely still held when it is looked at on a slow machine.
	const timeout = 5 * time.Second
	s := startServer(t, testkit.NewGate(t, k, nil), func(cfg *relp.Config) {
		cfg.MaxBufferBytes = 512 << 10 // 256 KiB for large frames
		cfg.FrameTimeout = timeout
	})
	const stalled = 6
	for range stalled {
		c := testkit.OpenRELP(t, s.addr())
		if _, err := c.Conn.Write([]byte("2 syslog 100000 <13>1 - - large")); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, timeout, "4 of 6 stalled large frames waiting for the buffer",
		func() bool { return s.metric(t, "sluice_relp_buffer_waiting") == stalled-2 })
	// The frame's data and its overhead, twice: two frames fit 256 KiB.
	if got, want := s.metric(t, "sluice_relp_buffer_bytes"), float64(2*(100000+64)); got != want {
		t.Errorf("buffer holds %v bytes, want %v", got, want)
	}
	// Each stalled frame is closed a frame timeout after it got its
	// share, and the waiting ones get theirs in turn.
	testkit.Eventually(t, 4*timeout+5*time.Second, "every stalled frame closed (stalled) and its share given back", func() bool {
		return s.metric(t, "sluice_relp_buffer_bytes") == 0 && s.metric(t, "sluice_relp_connection_errors_total") == stalled
	})
	c := testkit.OpenRELP(t, s.addr())
	first := sendLines(t, c, []string{line(1)})
	expectAnswers(t, c, first, 1)
}
