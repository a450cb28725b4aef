package loadgen

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leodido/go-syslog/v4/rfc5424"

	"github.com/sluicehq/sluice/internal/testkit"
)

// syslogSink is a TCP listener that reads RFC 6587 octet-counted frames and
// keeps them, failing the test on anything else.
type syslogSink struct {
	t      *testing.T
	ln     net.Listener
	mu     sync.Mutex
	frames [][]byte
	wg     sync.WaitGroup // the accept loop and one reader per connection
}

func newSyslogSink(t *testing.T) *syslogSink {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &syslogSink{t: t, ln: ln}
	s.wg.Go(s.accept)
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *syslogSink) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Go(func() { s.read(c) })
	}
}

// read takes frames "LEN SP MSG" until the peer closes; the listener's
// closing ends a blocked read through the deadline.
func (s *syslogSink) read(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, err := br.ReadString(' ')
		if errors.Is(err, io.EOF) && n == "" {
			return
		}
		if err != nil {
			s.t.Errorf("read frame length: %v", err)
			return
		}
		size, err := strconv.Atoi(strings.TrimSuffix(n, " "))
		if err != nil || size <= 0 {
			s.t.Errorf("frame length %q: not octet counting", n)
			return
		}
		frame := make([]byte, size)
		if _, err := io.ReadFull(br, frame); err != nil {
			s.t.Errorf("read frame of %d bytes: %v", size, err)
			return
		}
		s.mu.Lock()
		s.frames = append(s.frames, frame)
		s.mu.Unlock()
	}
}

func (s *syslogSink) waitFrames(n int) [][]byte {
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		got := len(s.frames)
		frames := s.frames
		s.mu.Unlock()
		if got >= n || time.Now().After(deadline) {
			return frames
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Syslog lines are octet-counted RFC 5424 that a parser accepts, app_logs
// only, with the service as APP-NAME, the level as severity and every
// event's id in structured data.
func TestSyslogFrames(t *testing.T) {
	sink := newSyslogSink(t)
	cfg := Config{Protocol: ProtocolSyslog, SyslogAddr: sink.ln.Addr().String(), MaxEvents: 500, BatchSize: 9,
		Concurrency: 3, Mix: 0.5, RunID: "sl1", ReportInterval: -1, Logger: testkit.QuietLogger()}
	sum, err := Run(t.Context(), cfg, nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if sum.Acked[StreamLogs] != 500 || sum.Sent[StreamIoT] != 0 {
		t.Fatalf("summary %+v: want 500 app_logs written and no iot_telemetry", sum)
	}
	frames := sink.waitFrames(500)
	if len(frames) != 500 {
		t.Fatalf("listener got %d frames, want 500", len(frames))
	}
	levels := map[uint8]bool{}
	ids := map[string]bool{}
	p := rfc5424.NewParser()
	for _, f := range frames {
		m, err := p.Parse(f)
		if err != nil {
			t.Fatalf("%s: not RFC 5424: %v", f, err)
		}
		sm := m.(*rfc5424.SyslogMessage)
		if sm.Appname == nil || sm.Hostname == nil || !strings.HasPrefix(*sm.Hostname, *sm.Appname+"-") || sm.Message == nil || *sm.Message == "" {
			t.Fatalf("%s: want APP-NAME the service, HOSTNAME one of its hosts, and a message", f)
		}
		if *sm.Facility != syslogFacility {
			t.Errorf("%s: facility %d", f, *sm.Facility)
		}
		levels[*sm.Severity] = true
		if sm.StructuredData == nil || (*sm.StructuredData)[syslogSDID]["event_id"] == "" {
			t.Fatalf("%s: no event_id in structured data", f)
		}
		ids[(*sm.StructuredData)[syslogSDID]["event_id"]] = true
	}
	for seq := int64(1); seq <= 500; seq++ {
		if !ids[EventID("sl1", StreamLogs, seq)] {
			t.Errorf("%s not sent", EventID("sl1", StreamLogs, seq))
		}
	}
	for _, sev := range []uint8{3, 4, 6, 7} { // error, warn, info, debug: all common enough in 500
		if !levels[sev] {
			t.Errorf("no line with severity %d among %v", sev, levels)
		}
	}
}

// Structured-data values escape what RFC 5424 requires, and the parser
// gives the original back.
func TestSyslogEscapes(t *testing.T) {
	ev := logEvent{EventID: `a"b]c\d`, TS: "2026-11-24T10:00:00.123Z", Service: "checkout", Level: "fatal", Message: `unexpected "null" in field`, Host: "checkout-1"}
	line := appendRFC5424(nil, &ev)
	m, err := rfc5424.NewParser().Parse(line)
	if err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	sm := m.(*rfc5424.SyslogMessage)
	if got := (*sm.StructuredData)[syslogSDID]["event_id"]; got != ev.EventID {
		t.Errorf("event_id %q back as %q", ev.EventID, got)
	}
	if *sm.Severity != 2 || *sm.Message != ev.Message || !bytes.HasPrefix(line, []byte("<130>1 ")) {
		t.Errorf("%s: want severity 2 (fatal) and the message as is", line)
	}
}

// An ack log makes no sense for syslog, whose lines carry no event_id.
func TestSyslogRefusesAckLog(t *testing.T) {
	_, err := Run(t.Context(), Config{Protocol: ProtocolSyslog, AckLog: io.Discard, Logger: testkit.QuietLogger()}, nil)
	if err == nil || !strings.Contains(err.Error(), "ack log") {
		t.Fatalf("err = %v, want the ack log refused", err)
	}
}
