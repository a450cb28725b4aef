package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"regexp"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/schemas"
)

// nopProducer takes every message: FuzzReadBody only reads batches.
type nopProducer struct{}

func (nopProducer) Produce(context.Context, []Message) error { return nil }

// bodyGate returns a gate on the built-in streams that produces nothing.
func bodyGate(tb testing.TB) *Gate {
	tb.Helper()
	reg, err := schemas.Builtin()
	if err != nil {
		tb.Fatal(err)
	}
	g, err := NewGate(GateConfig{Registry: reg, Producer: nopProducer{},
		Logger: slog.New(slog.DiscardHandler), MaxReportedErrors: 1 << 20})
	if err != nil {
		tb.Fatal(err)
	}
	return g
}

// bodyOutcome is what reading one body made of a batch, as far as the old
// and the new reading must agree.
type bodyOutcome struct {
	Accepted []string // encoded events
	Rejected int
	Dead     int
	Err      string
}

// readBody reads body into a new batch of stream with read, at a fixed
// time and with derived event_ids so that two readings can be compared.
func readBody(tb testing.TB, g *Gate, stream string, o Origin, body []byte, read func(*Batch, io.Reader) error) (bodyOutcome, Response) {
	tb.Helper()
	b, err := g.Begin(stream, o)
	if err != nil {
		tb.Fatal(err)
	}
	b.now = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	var out bodyOutcome
	if err := read(b, bytes.NewReader(body)); err != nil {
		out.Err = err.Error()
	}
	for _, m := range b.msgs {
		out.Accepted = append(out.Accepted, string(m.Value))
	}
	out.Rejected, out.Dead = b.resp.Rejected, len(b.dead)
	return out, b.Report()
}

// bodyReaders are the ways a body is read: new and old, JSON and NDJSON.
var bodyReaders = []struct {
	name     string
	new, old func(*Batch, io.Reader) error
}{
	{"json", (*Batch).ReadJSON, (*Batch).oracleReadJSON},
	{"ndjson",
		func(b *Batch, r io.Reader) error { return b.ReadNDJSON(r, 1<<20) },
		func(b *Batch, r io.Reader) error { return b.oracleReadNDJSON(r, 1<<20) }},
}

// readBodySeeds are bodies of each framing, valid and not.
var readBodySeeds = []string{
	`{"device_id":"d","ts":1795946400123,"metrics":{"t":1},"tags":{"site":"a"}}`,
	`[{"device_id":"d","ts":"2026-11-24T10:00:00Z","metrics":{"t":1}},{"ts":1,"metrics":{}},7,"s",null,[]]`,
	"{\"device_id\":\"a\",\"ts\":1,\"metrics\":{\"t\":1}}\n\n{\"device_id\":\n[1]\r\n{\"x\":1} {}\n",
	`{"event_id":"e","device_id":"d","ts":1,"metrics":{"t":1e400}}`,
	`[{"device_id":"d","ts":1,"metrics":{"t":1}}] x`,
	`[] x`,
	`  [ ]  `,
	"",
	`{"device_id" "x"}`,
	`{"ts":"2026-11-24T10:00:00Z","service":"s","level":"info","message":"m","attrs":{"k":"v"}}`,
	`{"ts":1,"metrics":{"t":1}}{"device_id":"own","ts":1,"metrics":{"t":1}}`,
}

// readBodyOrigins are origins to read each body for: HTTP's, and MQTT's
// with a field from the topic, dead letters and derived ids.
var readBodyOrigins = []Origin{
	{Source: "http", Identity: []byte("body")},
	{Source: "mqtt", Identity: []byte("body"), Fields: map[string]string{"device_id": "from-topic"},
		DeadLetter: true, Raw: []byte("raw")},
}

// FuzzReadBody reads arbitrary bodies as JSON and as NDJSON, for each
// built-in stream and origin, with ReadJSON and ReadNDJSON and with the
// map-based reading they replace: both must accept the same events,
// encoded alike, reject as many, dead-letter as many and fail alike.
// Where the new reading is stricter on purpose (comparableBody), only its
// answer's size is checked.
func FuzzReadBody(f *testing.F) {
	for _, s := range readBodySeeds {
		f.Add([]byte(s))
	}
	g := bodyGate(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, stream := range []string{"iot_telemetry", "app_logs"} {
			for _, o := range readBodyOrigins {
				for _, r := range bodyReaders {
					got, resp := readBody(t, g, stream, o, body, r.new)
					checkResponseSize(t, resp, body)
					if !comparableBody(body, r.name == "ndjson") {
						continue
					}
					want, _ := readBody(t, g, stream, o, body, r.old)
					if !reflect.DeepEqual(got, want) {
						t.Fatalf("%s %s %s %q:\n got %+v\nwant %+v\n%+v", stream, o.Source, r.name, body, got, want, resp)
					}
				}
			}
		}
	})
}

// checkResponseSize checks that every listed problem is short, whatever
// the body: a problem quotes at most a bounded part of it.
func checkResponseSize(t *testing.T, resp Response, body []byte) {
	t.Helper()
	for _, e := range resp.Errors {
		if len(e.Error) > 400 || !utf8.ValidString(e.Error) {
			t.Fatalf("%q: problem %q", body, e.Error)
		}
	}
}

// comparableBody reports whether the old reading of body must agree with
// the new one: the new one refuses what the old one let through, on
// purpose, in invalid UTF-8 (replaced by encoding/json), names given twice
// in one object (the last kept), number literals over
// schemas.MaxNumberLength, and NDJSON lines edged with white space that
// JSON does not know (trimmed by bytes.TrimSpace).
func comparableBody(body []byte, ndjson bool) bool {
	if !utf8.Valid(body) || duplicateNames(body) || longNumber.Match(body) {
		return false
	}
	if ndjson {
		for line := range bytes.SplitSeq(body, []byte("\n")) {
			if !bytes.Equal(bytes.TrimSpace(line), bytes.Trim(line, " \t\r")) {
				return false
			}
		}
	}
	return true
}

// longNumber matches a number literal over schemas.MaxNumberLength, or
// something that could be one.
var longNumber = regexp.MustCompile(fmt.Sprintf(`[-+.eE0-9]{%d,}`, schemas.MaxNumberLength+1))

// duplicateNames reports whether an object anywhere in the top-level
// values of body names a member twice. It stops at the first syntax error:
// whatever follows is not read by either reading.
func duplicateNames(body []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	var stack []map[string]bool // names so far of each open object; nil for arrays
	key := false                // whether the next string is a member name
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if s, ok := tok.(string); ok && key {
			top := stack[len(stack)-1]
			if top[s] {
				return true
			}
			top[s], key = true, false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack, key = append(stack, map[string]bool{}), true
			continue
		case json.Delim('['):
			stack, key = append(stack, nil), false
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		key = len(stack) > 0 && stack[len(stack)-1] != nil
	}
}

// TestReadBodyMatchesOracle runs the seeds through FuzzReadBody's check.
func TestReadBodyMatchesOracle(t *testing.T) {
	g := bodyGate(t)
	for _, body := range readBodySeeds {
		for _, o := range readBodyOrigins {
			for _, r := range bodyReaders {
				got, _ := readBody(t, g, "iot_telemetry", o, []byte(body), r.new)
				want, _ := readBody(t, g, "iot_telemetry", o, []byte(body), r.old)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s %s %q:\n got %+v\nwant %+v", o.Source, r.name, body, got, want)
				}
			}
		}
	}
}

// A batch's encoding buffer never grows: the events past it are encoded
// apart, so that a large body holds no more than its events and one
// buffer, and seal copies no more than the buffer.
func TestBatchEncodingBufferStaysBounded(t *testing.T) {
	g := bodyGate(t)
	b, err := g.Begin("iot_telemetry", Origin{Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.ReadJSONBytes(benchBody(2000)); err != nil {
		t.Fatal(err)
	}
	if len(b.msgs) != 2000 || cap(b.enc) != encodedCap || !b.encFull || b.inEnc == 0 || b.inEnc >= 2000 {
		t.Fatalf("%d messages, %d of them in a buffer of %d bytes (full: %v): want 2000, some in a buffer of %d",
			len(b.msgs), b.inEnc, cap(b.enc), b.encFull, encodedCap)
	}
	want := make([]string, len(b.msgs))
	for i, m := range b.msgs {
		want[i] = string(m.Key) + " " + string(m.Value)
	}
	b.seal()
	if b.enc != nil || b.inEnc != 0 {
		t.Fatal("seal kept the buffer")
	}
	for i, m := range b.msgs {
		if got := string(m.Key) + " " + string(m.Value); got != want[i] {
			t.Fatalf("message %d after seal: %q, want %q", i, got, want[i])
		}
	}
}
