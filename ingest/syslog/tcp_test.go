package syslog

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testkit"
)

func octet(msg string) string { return fmt.Sprintf("%d %s", len(msg), msg) }

// TestTCPFramingMixed sends octet-counted and newline-delimited frames,
// LF and CRLF, an LF after an octet frame and a line that is not syslog,
// all on one connection.
func TestTCPFramingMixed(t *testing.T) {
	r := startRig(t, Config{DeriveIDs: true})
	conn := r.dial(t)
	stream := octet("<14>1 2026-11-30T10:00:00Z h app - - - one, octet counted") +
		"<14>Nov 30 10:00:01 h app: two, newline\n" +
		octet("<14>1 2026-11-30T10:00:02Z h app - - - three\nwith an LF inside") + "\n" +
		"<14>Nov 30 10:00:03 h app: four, CRLF\r\n" +
		"not syslog at all\n" +
		octet("<14>Nov 30 10:00:05 h app: six, octet counted 3164")
	if _, err := io.WriteString(conn, stream); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close() // the last frame has no LF: it must not wait for one
	evs := byMessage(r.logs(t, 5))
	for _, want := range []string{"one, octet counted", "two, newline", "three\nwith an LF inside",
		"four, CRLF", "six, octet counted 3164"} {
		if evs[want] == nil {
			t.Errorf("missing %q; got %v", want, evs)
		}
	}
	if len(evs) != 5 {
		t.Errorf("%d events, want 5: %v", len(evs), evs)
	}
	dl := r.k.DeadLetters(t)
	if len(dl) != 1 || letterValue(dl[0]) != "not syslog at all" || !strings.Contains(dl[0].Reason, "no PRI") ||
		dl[0].Source != "syslog" || !strings.HasPrefix(dl[0].Origin, "127.0.0.1:") {
		t.Fatalf("dead letters: %+v", dl)
	}
	if n := counter(r.c.metrics.parseFailed, "tcp"); n != 1 {
		t.Errorf("parse failures: %v", n)
	}
	if n := counter(r.c.metrics.lines, "tcp"); n != 6 {
		t.Errorf("lines: %v", n)
	}
}

// TestTCPHugeLine: a 10 MB newline-delimited line is cut and dead-lettered,
// and the next line on the same connection still arrives.
func TestTCPHugeLine(t *testing.T) {
	r := startRig(t, Config{})
	conn := r.dial(t)
	go func() {
		huge := "<14>1 - h app - - - " + strings.Repeat("x", 10<<20) + "\n"
		_, _ = io.WriteString(conn, huge+"<14>1 - h app - - - after the huge one\n")
	}()
	evs := r.logs(t, 1)
	if len(evs) != 1 || evs[0]["message"] != "after the huge one" {
		t.Fatalf("events: %v", evs)
	}
	dl := r.k.WaitTopic(t, "sluice.dlq", 1, 10*time.Second)
	_ = dl
	letters := r.k.DeadLetters(t)
	if len(letters) != 1 || !strings.Contains(letters[0].Reason, fmt.Sprintf("message of %d bytes over the 65536-byte maximum", 10<<20+20)) {
		t.Fatalf("dead letters: %d, %v", len(letters), letters[0].Reason)
	}
	if len(letterValue(letters[0])) > 65536 {
		t.Errorf("dead letter holds %d bytes", len(letterValue(letters[0])))
	}
}

// TestTCPHugeOctetCount: a frame length of 2^40 closes the connection (and
// only it); the lines before it arrive.
func TestTCPHugeOctetCount(t *testing.T) {
	r := startRig(t, Config{})
	conn := r.dial(t)
	if _, err := io.WriteString(conn, octet("<14>1 - h app - - - before")+"1099511627776 <14>1 - h app - - - x"); err != nil {
		t.Fatal(err)
	}
	assertClosedByServer(t, conn, 5*time.Second)
	evs := r.logs(t, 1)
	if len(evs) != 1 || evs[0]["message"] != "before" {
		t.Fatalf("events: %v", evs)
	}
	if n := counter(r.c.metrics.connErrors, "frame_too_large"); n != 1 {
		t.Fatalf("frame_too_large: %v", n)
	}
	other := r.dial(t)
	if _, err := io.WriteString(other, "<14>1 - h app - - - next sender\n"); err != nil {
		t.Fatal(err)
	}
	if evs := r.logs(t, 2); len(evs) != 2 {
		t.Fatalf("events: %v", evs)
	}
}

// TestTCPBinaryGarbage: random bytes neither crash nor block the collector;
// what looks like lines is dead-lettered, and a normal sender gets through.
func TestTCPBinaryGarbage(t *testing.T) {
	r := startRig(t, Config{})
	garbage := make([]byte, 1<<20)
	_, _ = rand.Read(garbage)
	// Strip digits at line starts so that the garbage is read as lines to
	// the end rather than the connection closing at a bogus octet count.
	for i := range garbage {
		if (i == 0 || garbage[i-1] == '\n') && garbage[i] >= '0' && garbage[i] <= '9' {
			garbage[i] = 'x'
		}
	}
	conn := r.dial(t)
	if _, err := conn.Write(garbage); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close()
	lines := bytes.Count(garbage, []byte{'\n'}) + 1
	testkit.Eventually(t, 20*time.Second, "garbage lines counted", func() bool {
		// Empty lines (two LFs in a row) are skipped, not counted.
		return counter(r.c.metrics.lines, "tcp") >= float64(lines*9/10)
	})
	raw := r.dial(t)
	if _, err := raw.Write(append(garbage[:4096:4096], []byte("\n")...)); err != nil {
		t.Fatal(err)
	}
	good := r.dial(t)
	if _, err := io.WriteString(good, "<14>1 - h app - - - still fine\n"); err != nil {
		t.Fatal(err)
	}
	evs := r.logs(t, 1)
	if byMessage(evs)["still fine"] == nil {
		t.Fatalf("events: %v", len(evs))
	}
	if n := counter(r.c.metrics.parseFailed, "tcp"); n < float64(lines/2) {
		t.Errorf("parse failures %v for about %d lines", n, lines)
	}
}

// TestTCPStalledFrame: a sender that stops in the middle of a frame is
// closed after the read timeout, while another sender keeps flowing.
func TestTCPStalledFrame(t *testing.T) {
	r := startRig(t, Config{ReadTimeout: 500 * time.Millisecond})
	stalled := r.dial(t)
	if _, err := io.WriteString(stalled, "100 <14>1 - h app - - - half a fr"); err != nil {
		t.Fatal(err)
	}
	good := r.dial(t)
	start := time.Now()
	for i := range 10 {
		if _, err := fmt.Fprintf(good, "<14>1 - h app - - - line %d\n", i); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	assertClosedByServer(t, stalled, 5*time.Second)
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("closed after %s, before the read timeout", d)
	}
	if evs := r.logs(t, 10); len(evs) != 10 {
		t.Fatalf("%d events", len(evs))
	}
	if n := counter(r.c.metrics.connErrors, "read_timeout"); n != 1 {
		t.Fatalf("read_timeout: %v", n)
	}
}

// TestTCPIdleAndCap: beyond MaxConnections a connection is accepted and
// closed; an idle connection is closed after IdleTimeout, which frees a
// slot for a new sender.
func TestTCPIdleAndCap(t *testing.T) {
	r := startRig(t, Config{MaxConnections: 3, IdleTimeout: time.Second})
	var idle []net.Conn
	for range 3 {
		idle = append(idle, r.dial(t))
	}
	testkit.Eventually(t, 5*time.Second, "3 connections open", func() bool {
		return value(r.c.metrics.connsOpen) == 3
	})
	refused := r.dial(t)
	assertClosedByServer(t, refused, 2*time.Second)
	if n := counter(r.c.metrics.conns, "refused"); n != 1 {
		t.Fatalf("refused: %v", n)
	}
	for _, c := range idle {
		assertClosedByServer(t, c, 5*time.Second)
	}
	testkit.Eventually(t, 5*time.Second, "idle connections closed", func() bool {
		return value(r.c.metrics.connsOpen) == 0
	})
	good := r.dial(t)
	if _, err := io.WriteString(good, "<14>1 - h app - - - after the idle ones\n"); err != nil {
		t.Fatal(err)
	}
	if evs := r.logs(t, 1); evs[0]["message"] != "after the idle ones" {
		t.Fatalf("events: %v", evs)
	}
}

// TestTCPManyIdleConnections: 2,000 idle connections do not stop a normal
// sender, and the process holds them within bounded memory.
func TestTCPManyIdleConnections(t *testing.T) {
	r := startRig(t, Config{MaxConnections: 4096})
	before := peakRSS()
	for range 2000 {
		r.dial(t)
	}
	testkit.Eventually(t, 20*time.Second, "2,000 connections open", func() bool {
		return value(r.c.metrics.connsOpen) == 2000
	})
	good := r.dial(t)
	sendNumbered(t, good, 100)
	if evs := r.logs(t, 100); len(evs) != 100 {
		t.Fatalf("%d events", len(evs))
	}
	// The whole test process: broker, gate and 2,000 client sockets too.
	t.Logf("peak RSS %d MiB before the connections, %d MiB after", before>>20, peakRSS()>>20)
}

// assertClosedByServer fails unless the server closes conn within d.
func assertClosedByServer(t *testing.T, conn net.Conn, d time.Duration) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 1)
	_, err := conn.Read(buf)
	if err == nil {
		t.Fatal("server sent data")
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open after %s", d)
	}
}

// TestTCPStalledLongMessagesHoldOnlyTheBudget: senders that announce
// messages longer than the read buffer and stall get memory for as many as
// MaxLongMessageBytes holds; the others wait without it, while ordinary
// lines keep flowing. Every stalled sender is closed within about two read
// timeouts, the budget is given back, and a long message is taken
// afterwards.
func TestTCPStalledLongMessagesHoldOnlyTheBudget(t *testing.T) {
	// Long enough that the two stalled messages holding the budget, and
	// the four waiting, surely still do when they are looked at on a slow
	// machine.
	const timeout = 5 * time.Second
	r := startRig(t, Config{MaxLongMessageBytes: 128 << 10, ReadTimeout: timeout})
	const stalled, size = 6, 60000
	for range stalled {
		c := r.dial(t)
		if _, err := fmt.Fprintf(c, "%d <14>1 - h app - - - a long one", size); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, timeout, "4 of 6 stalled long messages waiting for memory", func() bool {
		return value(r.c.metrics.longWaiting) == stalled-2
	})
	if got := value(r.c.metrics.longHeld); got != 2*size {
		t.Errorf("long messages hold %v bytes, want %d (two)", got, 2*size)
	}
	good := r.dial(t)
	sendNumbered(t, good, 5)
	if evs := r.logs(t, 5); len(evs) != 5 {
		t.Fatalf("%d events while long messages stalled, want 5", len(evs))
	}
	testkit.Eventually(t, 3*timeout+5*time.Second, "every stalled sender closed and the memory given back", func() bool {
		return value(r.c.metrics.longHeld) == 0 && value(r.c.metrics.longWaiting) == 0 &&
			counter(r.c.metrics.connErrors, "read_timeout")+counter(r.c.metrics.connErrors, "long_message_memory") == stalled
	})
	long := "<14>1 - h app - - - " + strings.Repeat("x", size-20)
	if _, err := fmt.Fprintf(good, "%d %s", len(long), long); err != nil {
		t.Fatal(err)
	}
	var lens []int
	for _, ev := range r.logs(t, 6) {
		lens = append(lens, len(ev["message"].(string)))
	}
	if !slices.Contains(lens, size-20) {
		t.Fatalf("no message of %d bytes after the stalls; messages of %v bytes", size-20, lens)
	}
}

// TestTCPLongMessageGivesItsMemoryBack: a long message's memory goes back
// once the message is in a batch, not when its sender sends more: a
// sender that sent one long message and went quiet holds none, and
// another's long message is taken at once.
func TestTCPLongMessageGivesItsMemoryBack(t *testing.T) {
	const size = 60000 // one fits the budget, two do not
	r := startRig(t, Config{MaxLongMessageBytes: 100000})
	long := func(who string) string {
		m := "<14>1 - h app - - - " + who + " " + strings.Repeat("x", size)
		return fmt.Sprintf("%d %s", len(m), m)
	}
	quiet := r.dial(t)
	if _, err := io.WriteString(quiet, long("quiet")); err != nil {
		t.Fatal(err)
	}
	r.logs(t, 1)
	other := r.dial(t)
	if _, err := io.WriteString(other, long("other")); err != nil {
		t.Fatal(err)
	}
	r.logs(t, 2)
	testkit.Eventually(t, 5*time.Second, "no memory held for long messages while their senders are quiet", func() bool {
		return value(r.c.metrics.longHeld) == 0
	})
}
