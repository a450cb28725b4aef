package schemas

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"
)

var recv0 = time.Date(2026, 11, 24, 10, 0, 1, 456e6, time.UTC)

// awkward strings: everything appendString escapes or passes through.
var awkward = []string{
	"",
	"plain",
	`quote " backslash \ slash /`,
	"newline\n tab\t cr\r bs\b ff\f nul\x00 unit\x1f del\x7f",
	"<script>&amp;</script>",
	"é ü ß 日本語 🚀",
	"line sep\u2028 para sep\u2029",
	"bad utf-8 \xff\xfe and cut \xe6\x97",
	"\xc0\x80 overlong, \xed\xa0\x80 surrogate",
	"replacement \ufffd itself",
}

// awkward numbers: both notations, the cut-offs between them, extremes.
var awkwardNumbers = []float64{
	0, math.Copysign(0, -1), 1, -1, 21.5, 0.1, 1.0 / 3, 100, 1e6, 123456789.123,
	1e-6, 9.99999e-7, 1e-7, 1.5e-7, 1e20, 1e21, 999999999999999900000, 1.2345e25, -1e-300,
	math.MaxFloat64, math.SmallestNonzeroFloat64, -math.MaxFloat64, 1 << 53, 1<<53 + 2,
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range awkward {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		if got := appendString(nil, s); string(got) != strings.TrimSuffix(want.String(), "\n") {
			t.Errorf("appendString(%q) = %s, want %s", s, got, want.String())
		}
	}
}

func TestAppendFloatMatchesEncodingJSON(t *testing.T) {
	for _, f := range awkwardNumbers {
		want, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := appendFloat(nil, f); !ok || string(got) != string(want) {
			t.Errorf("appendFloat(%g) = %s, want %s", f, got, want)
		}
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, ok := appendFloat(nil, f); ok {
			t.Errorf("appendFloat(%g) accepted", f)
		}
	}
}

// TestAppendShortDecimalMatchesStrconv holds appendFloat's fast path to
// strconv on random decimals of up to 15 digits, as readings are written,
// and on random float64s, which it must either write as strconv does or
// leave to strconv.
func TestAppendShortDecimalMatchesStrconv(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	check := func(f float64) {
		want := strconv.AppendFloat(nil, f, 'f', -1, 64)
		if got, ok := appendShortDecimal(nil, f); ok && string(got) != string(want) {
			t.Fatalf("appendShortDecimal(%v) = %s, want %s", f, got, want)
		}
	}
	fast := 0
	for range 200_000 {
		digits := 1 + r.IntN(15)
		m := r.Int64N(int64(pow10[digits]))
		k := r.IntN(min(digits, maxShortFrac) + 1)
		f := float64(m) / pow10[k]
		if r.IntN(2) == 0 {
			f = -f
		}
		check(f)
		if _, ok := appendShortDecimal(nil, f); ok {
			fast++
		}
		check(math.Float64frombits(r.Uint64()))
		check(r.Float64() * pow10[r.IntN(16)])
	}
	if fast < 190_000 {
		t.Errorf("the fast path took %d of 200,000 short decimals", fast)
	}
}

func TestAppendTimeMatchesFormat(t *testing.T) {
	times := []time.Time{
		{},
		time.Unix(0, 0),
		ts0,
		ts0.Add(999999 * time.Nanosecond), // truncated, like the layout
		time.Date(2105, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2026, 11, 24, 12, 0, 0, 7e6, time.FixedZone("CEST", 2*3600)),
		time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Now(),
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		times = append(times, time.Unix(0, r.Int64N(1<<62)).In(time.FixedZone("", 60*(r.IntN(1500)-750))))
	}
	// Days from 1970 to 9999, every leap rule among them.
	for day := int64(0); day < 2932897; day += 59 {
		times = append(times, time.Unix(day*86400+r.Int64N(86400), r.Int64N(1e9)))
	}
	for _, tm := range times {
		want := `"` + tm.UTC().Format(TimeLayout) + `"`
		if got := string(appendTime(nil, tm)); got != want {
			t.Errorf("appendTime(%s) = %s, want %s", tm, got, want)
		}
	}
}

// codecEvents are valid events of both built-in streams with awkward
// contents, as the collector completes them.
func codecEvents(tb testing.TB) []struct {
	stream *Stream
	event  Event
} {
	tb.Helper()
	iot, logs := builtinStream(tb, "iot_telemetry"), builtinStream(tb, "app_logs")
	var out []struct {
		stream *Stream
		event  Event
	}
	add := func(st *Stream, ev Event) {
		out = append(out, struct {
			stream *Stream
			event  Event
		}{st, ev})
	}
	metrics := map[string]float64{}
	for i, f := range awkwardNumbers {
		metrics[string(rune('a'+i))] = f
	}
	for i, s := range awkward {
		if !utf8.ValidString(s) {
			continue // Decode returns U+FFFD; TestEncodeInvalidUTF8 covers it
		}
		add(iot, Event{ID: "id " + s, Key: "dev" + s, ReceivedAt: recv0, Fields: map[string]any{
			"device_id": "dev" + s,
			"ts":        ts0.Add(time.Duration(i) * time.Hour),
			"metrics":   map[string]float64{"k" + s: float64(i)},
			"tags":      map[string]string{"t" + s: s, "z": s + s},
		}})
		add(logs, Event{ID: "e" + s, Key: "svc" + s, ReceivedAt: recv0, Fields: map[string]any{
			"ts":       ts0,
			"service":  "svc" + s,
			"level":    "warn",
			"message":  "m" + s,
			"host":     s,
			"trace_id": "t",
			"attrs":    map[string]string{"a" + s: s},
		}})
	}
	add(iot, Event{ID: "all numbers", Key: "d", ReceivedAt: recv0, Fields: map[string]any{
		"device_id": "d", "ts": ts0, "metrics": metrics}})
	add(iot, Event{ID: "empty tags", Key: "d", ReceivedAt: recv0, Fields: map[string]any{
		"device_id": "d", "ts": ts0, "metrics": map[string]float64{"x": 1}, "tags": map[string]string{}}})
	add(logs, Event{ID: "only required", Key: "s", ReceivedAt: time.Unix(0, 0).UTC(), Fields: map[string]any{
		"ts": time.Date(2105, 12, 31, 23, 59, 59, 999e6, time.UTC), "service": "s", "level": "fatal", "message": "x"}})

	// machine_state: numbers, booleans, enums; every number where the
	// bounds allow it, all of them without the bounds.
	typed, unbounded := typedStream(tb), unboundedTypedStream(tb)
	modes := typed.Field("mode").Values
	for i, f := range awkwardNumbers {
		ev := Event{ID: "n" + string(rune('a'+i)), Key: "m", ReceivedAt: recv0, Fields: map[string]any{
			"machine_id": "m", "ts": ts0, "temperature": f, "running": i%2 == 0, "mode": modes[i%len(modes)]}}
		add(unbounded, ev)
		if typed.Field("temperature").checkNumber(f) == "" {
			add(typed, ev)
		}
	}
	for i, s := range awkward {
		if utf8.ValidString(s) {
			add(typed, Event{ID: "t " + s, Key: "m" + s, ReceivedAt: recv0, Fields: map[string]any{
				"machine_id": "m" + s, "ts": ts0, "running": i%3 == 0, "mode": "manual"}})
		}
	}
	add(typed, Event{ID: "at the bounds", Key: "m", ReceivedAt: recv0, Fields: map[string]any{
		"machine_id": "m", "ts": ts0, "temperature": -273.15, "running": false, "mode": "idle"}})
	add(typed, Event{ID: "at the bounds", Key: "m", ReceivedAt: recv0, Fields: map[string]any{
		"machine_id": "m", "ts": ts0, "temperature": 1000.0, "running": true, "mode": "maintenance"}})
	return out
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, c := range codecEvents(t) {
		b, err := c.stream.Encode(c.event)
		if err != nil {
			t.Fatalf("Encode(%+v): %v", c.event, err)
		}
		got, err := c.stream.Decode(b)
		if err != nil {
			t.Fatalf("Decode(%s): %v", b, err)
		}
		if !reflect.DeepEqual(got, c.event) {
			t.Errorf("round trip of %s:\n got %#v\nwant %#v", b, got, c.event)
		}
		if again, _ := c.stream.Encode(got); !bytes.Equal(again, b) {
			t.Errorf("encoding is not deterministic:\n%s\n%s", b, again)
		}
		if slow, err := c.stream.decodeGeneric(b); err != nil || !reflect.DeepEqual(slow, got) {
			t.Errorf("decodeGeneric(%s) = %#v, %v; Decode gave %#v", b, slow, err, got)
		}
	}
}

// TestEncodeMatchesGeneric checks the hand-written encoder against the
// reflective one it replaced: the same JSON value, only members in
// another order and <, >, & unescaped.
func TestEncodeMatchesGeneric(t *testing.T) {
	for _, c := range codecEvents(t) {
		assertSameJSON(t, c.stream, c.event)
	}
}

func assertSameJSON(t *testing.T, st *Stream, ev Event) {
	t.Helper()
	fast, err := st.Encode(ev)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	slow, err := st.encodeGeneric(ev)
	if err != nil {
		t.Fatalf("encodeGeneric: %v", err)
	}
	var a, b any
	if err := json.Unmarshal(fast, &a); err != nil {
		t.Fatalf("Encode wrote invalid JSON %s: %v", fast, err)
	}
	if err := json.Unmarshal(slow, &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("Encode and encodeGeneric differ:\n%s\n%s", fast, slow)
	}
}

func TestEncodeLayout(t *testing.T) {
	st := builtinStream(t, "app_logs")
	ev := Event{ID: "e-1", Key: "checkout", ReceivedAt: recv0.Add(789 * time.Microsecond), Fields: map[string]any{
		"attrs":   map[string]string{"user": "u-9", "order": "A-17", "": "empty name sorts first"},
		"message": "<b>declined</b> & \"retried\"",
		"level":   "error",
		"service": "checkout",
		"ts":      ts0.In(time.FixedZone("CET", 3600)),
	}}
	want := `{"event_id":"e-1","ts":"2026-11-24T10:00:00.123Z","service":"checkout","level":"error",` +
		`"message":"<b>declined</b> & \"retried\"","attrs":{"":"empty name sorts first","order":"A-17","user":"u-9"},` +
		`"received_at":"2026-11-24T10:00:01.456Z"}`
	got, err := st.Encode(ev)
	if err != nil || string(got) != want {
		t.Errorf("Encode:\n got %s, %v\nwant %s", got, err, want)
	}
}

func TestEncodeLayoutTyped(t *testing.T) {
	st := typedStream(t)
	ev := Event{ID: "e-1", Key: "press-7", ReceivedAt: recv0, Fields: map[string]any{
		"mode":        "auto",
		"running":     true,
		"temperature": 1e-7,
		"ts":          ts0,
		"machine_id":  "press-7",
	}}
	want := `{"event_id":"e-1","machine_id":"press-7","ts":"2026-11-24T10:00:00.123Z","temperature":1e-7,` +
		`"running":true,"mode":"auto","received_at":"2026-11-24T10:00:01.456Z"}`
	got, err := st.Encode(ev)
	if err != nil || string(got) != want {
		t.Errorf("Encode:\n got %s, %v\nwant %s", got, err, want)
	}
	delete(ev.Fields, "temperature")
	ev.Fields["running"] = false
	want = strings.Replace(strings.Replace(want, `"temperature":1e-7,`, "", 1), "true", "false", 1)
	if got, err := st.Encode(ev); err != nil || string(got) != want {
		t.Errorf("Encode:\n got %s, %v\nwant %s", got, err, want)
	}
}

func TestEncodeInvalidUTF8(t *testing.T) {
	st := builtinStream(t, "app_logs")
	ev := Event{ID: "e\xff", Key: "s", ReceivedAt: recv0, Fields: map[string]any{
		"ts": ts0, "service": "s", "level": "info", "message": "a\xffb\xe6\x97c",
	}}
	b, err := st.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "e\ufffd" || got.Fields["message"] != "a\ufffdb\ufffd\ufffdc" {
		t.Errorf("got ID %q, message %q: want each bad byte as U+FFFD", got.ID, got.Fields["message"])
	}
	assertSameJSON(t, st, ev)
}

// Events that Validate does not produce still encode as before.
func TestEncodeUnusualEvents(t *testing.T) {
	st := builtinStream(t, "iot_telemetry")
	base := func() map[string]any {
		return map[string]any{"device_id": "d", "ts": ts0, "metrics": map[string]float64{"t": 1}}
	}
	tests := []struct {
		name    string
		edit    func(map[string]any)
		wantErr string
	}{
		{"field outside the schema", func(f map[string]any) { f["extra"] = []int{1, 2} }, ""},
		{"event_id among the fields", func(f map[string]any) { f["event_id"] = "shadowed" }, ""},
		{"untyped map", func(f map[string]any) { f["tags"] = map[string]any{"a": "b"} }, ""},
		{"number in a string field", func(f map[string]any) { f["device_id"] = 1.5 }, ""},
		{"boolean in a map field", func(f map[string]any) { f["tags"] = true }, ""},
		{"null", func(f map[string]any) { f["tags"] = nil }, ""},
		{"NaN", func(f map[string]any) { f["metrics"] = map[string]float64{"t": math.NaN()} },
			"encode iot_telemetry event e: json: unsupported value: NaN"},
		{"infinity", func(f map[string]any) { f["metrics"] = map[string]float64{"t": math.Inf(-1)} },
			"encode iot_telemetry event e: json: unsupported value: -Inf"},
	}
	typed := typedStream(t)
	for _, x := range []float64{math.NaN(), math.Inf(1)} {
		ev := Event{ID: "e", Key: "m", ReceivedAt: recv0, Fields: map[string]any{
			"machine_id": "m", "ts": ts0, "temperature": x, "running": true, "mode": "idle"}}
		want := "encode machine_state event e: json: unsupported value: " + strconv.FormatFloat(x, 'g', -1, 64)
		if _, err := typed.Encode(ev); err == nil || err.Error() != want {
			t.Errorf("temperature %v: err = %v, want %s", x, err, want)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := Event{ID: "e", Key: "d", ReceivedAt: recv0, Fields: base()}
			tt.edit(ev.Fields)
			got, err := st.Encode(ev)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("err = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want, _ := st.encodeGeneric(ev)
			if !bytes.Equal(got, want) {
				t.Errorf("got %s, want the generic encoding %s", got, want)
			}
		})
	}
}

// TestEncodeRandomEvents is a property test: random events of both streams,
// with random strings (including invalid UTF-8) and numbers of any bit
// pattern, encode to the same JSON value as the reflective encoder, and
// decode to what decoding that encoder's output gives.
func TestEncodeRandomEvents(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	pieces := []string{"a", "Z", "0", " ", `"`, `\`, "/", "\n", "\x01", "\x1f", "<", "&", "é", "日", "🚀",
		"\u2028", "\u2029", "\ufffd", "\xff", "\xe6\x97", "\xed\xa0\x80"}
	str := func(min int) string {
		var sb strings.Builder
		for range min + r.IntN(12) {
			sb.WriteString(pieces[r.IntN(len(pieces))])
		}
		return sb.String()
	}
	num := func() float64 {
		for {
			var f float64
			switch r.IntN(3) {
			case 0:
				f = math.Float64frombits(r.Uint64())
			case 1:
				f = float64(r.IntN(2000)-1000) / 8
			default:
				f = r.NormFloat64() * math.Pow(10, float64(r.IntN(60)-30))
			}
			if !math.IsNaN(f) && !math.IsInf(f, 0) {
				return f
			}
		}
	}
	when := func() time.Time { return time.UnixMilli(r.Int64N(4291747199999)).UTC() }
	iot, logs := builtinStream(t, "iot_telemetry"), builtinStream(t, "app_logs")
	typed := unboundedTypedStream(t)
	modes := typed.Field("mode").Values
	for i := range 4500 {
		st, ev := iot, Event{ID: str(1), ReceivedAt: when(), Fields: map[string]any{}}
		if i%3 == 2 {
			st, ev.Key = typed, str(1)
			ev.Fields = map[string]any{"machine_id": ev.Key, "ts": when(), "running": r.IntN(2) == 0,
				"mode": modes[r.IntN(len(modes))]}
			if r.IntN(3) > 0 {
				ev.Fields["temperature"] = num()
			}
		} else if i%2 == 0 {
			ev.Key = str(1)
			m := map[string]float64{}
			for range 1 + r.IntN(6) {
				m[str(1)] = num()
			}
			ev.Fields = map[string]any{"device_id": ev.Key, "ts": when(), "metrics": m}
			if r.IntN(2) == 0 {
				tags := map[string]string{}
				for range r.IntN(4) {
					tags[str(1)] = str(0)
				}
				ev.Fields["tags"] = tags
			}
		} else {
			st, ev.Key = logs, str(1)
			ev.Fields = map[string]any{"ts": when(), "service": ev.Key, "level": "debug", "message": str(1)}
			if r.IntN(2) == 0 {
				ev.Fields["host"] = str(0)
			}
		}
		assertSameJSON(t, st, ev)
		fast, _ := st.Encode(ev)
		slow, _ := st.encodeGeneric(ev)
		got, err := st.Decode(fast)
		want, err2 := st.decodeGeneric(slow)
		if err != nil || err2 != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("Decode(%s) = %#v, %v\nwant %#v, %v", fast, got, err, want, err2)
		}
		if t.Failed() {
			t.FailNow()
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	st := builtinStream(t, "iot_telemetry")
	const good = `{"event_id":"e","device_id":"d","ts":"2026-11-24T10:00:00.123Z","metrics":{"t":1},` +
		`"received_at":"2026-11-24T10:00:01.456Z"}`
	tests := []struct {
		name, in, want string
	}{
		{"not JSON", `{"event_id"`, "not a JSON object: unexpected end of JSON input"},
		{"not an object", `[1]`, "not a JSON object: json: cannot unmarshal array into Go value of type map[string]interface {}"},
		{"trailing data", good + `x`, "not a JSON object: invalid character 'x' after top-level value"},
		{"no event_id", strings.Replace(good, `"event_id":"e",`, "", 1), "event_id: required"},
		{"null event_id", strings.Replace(good, `"e"`, "null", 1), "event_id: required"},
		{"no received_at", strings.Replace(good, `,"received_at":"2026-11-24T10:00:01.456Z"`, "", 1), "received_at: required"},
		{"bad received_at", strings.Replace(good, `"2026-11-24T10:00:01.456Z"`, `"soon"`, 1), "received_at: not RFC 3339 or epoch ms"},
		{"schema changed", strings.Replace(good, `"metrics":{"t":1}`, `"metrics":{"t":"1"},"color":1`, 1),
			"metrics: t: must be a number, got string\ncolor: unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := st.Decode([]byte(tt.in))
			if err == nil || err.Error() != tt.want {
				t.Errorf("err = %v, want %s", err, tt.want)
			}
		})
	}
	if _, err := st.Decode([]byte(good)); err != nil {
		t.Errorf("good event: %v", err)
	}
}

func TestDecodeErrorsTyped(t *testing.T) {
	st := typedStream(t)
	const good = `{"event_id":"e","machine_id":"m","ts":"2026-11-24T10:00:00.123Z","temperature":21.5,` +
		`"running":true,"mode":"auto","received_at":"2026-11-24T10:00:01.456Z"}`
	long := "1" + strings.Repeat("0", 400)
	tests := []struct {
		name, in, want string
	}{
		{"NaN", strings.Replace(good, "21.5", "NaN", 1), "not a JSON object: invalid character 'N' looking for beginning of value"},
		{"Infinity", strings.Replace(good, "21.5", "Infinity", 1), "not a JSON object: invalid character 'I' looking for beginning of value"},
		{"-Infinity", strings.Replace(good, "21.5", "-Infinity", 1), "not a JSON object: invalid character 'I' in numeric literal"},
		{"out of float64's range", strings.Replace(good, "21.5", "-1e999", 1), "temperature: number -1e999 out of range"},
		{"long literal out of range", strings.Replace(good, "21.5", long, 1),
			"temperature: number " + long[:32] + "… out of range"},
		{"out of the field's range", strings.Replace(good, "21.5", "1e300", 1), "temperature: 1e+300 is above the maximum 1000"},
		{"boolean as a string", strings.Replace(good, "true", `"true"`, 1), "running: must be true or false, got string"},
		{"boolean as a number", strings.Replace(good, "true", `1`, 1), "running: must be true or false, got number"},
		{"boolean misspelt", strings.Replace(good, "true", `True`, 1), "not a JSON object: invalid character 'T' looking for beginning of value"},
		{"boolean cut", strings.Replace(good, "true", `tru`, 1), "not a JSON object: invalid character ',' in literal true (expecting 'e')"},
		{"enum changed", strings.Replace(good, `"auto"`, `"eco"`, 1), `mode: "eco" is not one of idle, auto, manual, maintenance`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := st.Decode([]byte(tt.in))
			if err == nil || err.Error() != tt.want {
				t.Errorf("err = %v, want %s", err, tt.want)
			}
		})
	}
	if _, err := st.Decode([]byte(good)); err != nil {
		t.Errorf("good event: %v", err)
	}

	// A number out of range elsewhere is named by its path.
	iot := builtinStream(t, "iot_telemetry")
	for _, tt := range []struct{ in, want string }{
		{`{"metrics":{"a":1,"t":1e999},"event_id":"e"}`, "metrics: t: number 1e999 out of range"},
		{`{"metrics":{"t":1},"x":[1,{"y":[2,-1e400]}]}`, "x: y: number -1e400 out of range"},
		{`{"` + strings.Repeat("k", 100) + `":1e999}`, strings.Repeat("k", 64) + "…: number 1e999 out of range"},
	} {
		if _, err := iot.Decode([]byte(tt.in)); err == nil || err.Error() != tt.want {
			t.Errorf("Decode(%.80s): err = %v, want %s", tt.in, err, tt.want)
		}
	}
}

// TestDecodeFastDefers lists JSON that decodeFast leaves to decodeGeneric;
// each gives the same result either way. FuzzDecode checks the general rule.
func TestDecodeFastDefers(t *testing.T) {
	st := builtinStream(t, "iot_telemetry")
	const pre = `{"event_id":"e","received_at":"2026-11-24T10:00:01.456Z","ts":1795946400123,"device_id":"d",`
	tests := []struct {
		name, in string
		fast     bool // whether decodeFast handles it
	}{
		{"Encode's output", pre + `"metrics":{"t":1}}`, true},
		{"Encode's order", `{"event_id":"e","device_id":"d","ts":1795946400123,"metrics":{"t":1},"received_at":"2026-11-24T10:00:01.456Z"}`, true},
		{"Encode's order with every field", `{"event_id":"e","device_id":"d","ts":1,"metrics":{"t":1},"tags":{"a":"b"},"received_at":1}`, true},
		{"a name the expected one begins", `{"event_id":"e","device_id":"d","ts":1,"metricsx":{"t":1},"metrics":{"t":1},"received_at":1}`, false},
		{"white space everywhere", " \t\n{ \"event_id\" : \"e\" , \"received_at\":1795946400124,\r\n\"ts\":\"1795946400123\"," +
			"\"device_id\":\"d\",\"metrics\" : { \"t\" : -1.5e+3 , \"u\":0 } }\n", true},
		{"escapes", pre + `"metrics":{"a\"\\\/\b\f\n\r\t\u00e9\u2028":1}}`, true},
		{"surrogate pair", pre + `"metrics":{"\ud83d\ude80":1}}`, false},
		{"lone surrogate", pre + `"metrics":{"\ud83d":1}}`, false},
		{"escaped name", `{"event_\u0069d":"e","received_at":1,"ts":1,"device_id":"d","metrics":{"t":1}}`, false},
		{"duplicate field", pre + `"metrics":{"t":1},"device_id":"x"}`, false},
		{"duplicate metric", pre + `"metrics":{"t":1,"t":2}}`, false},
		{"duplicate event_id", pre + `"metrics":{"t":1},"event_id":"f"}`, false},
		{"null tags", pre + `"metrics":{"t":1},"tags":null}`, false},
		{"invalid UTF-8", pre + "\"metrics\":{\"\xff\":1}}", false},
		{"control character", pre + "\"metrics\":{\"\n\":1}}", false},
		{"number grammar: leading zero", pre + `"metrics":{"t":01}}`, false},
		{"number grammar: plus", pre + `"metrics":{"t":+1}}`, false},
		{"number grammar: bare dot", pre + `"metrics":{"t":1.}}`, false},
		{"number grammar: hex", pre + `"metrics":{"t":0x10}}`, false},
		{"number grammar: Inf", pre + `"metrics":{"t":Infinity}}`, false},
		{"number out of range", pre + `"metrics":{"t":1e999}}`, false},
		{"bad hex escape", pre + `"metrics":{"\u00g0":1}}`, false},
		{"trailing comma", pre + `"metrics":{"t":1},}`, false},
		{"trailing data", pre + `"metrics":{"t":1}} {}`, false},
		{"missing required", `{"event_id":"e","received_at":1,"ts":1,"device_id":"d"}`, false},
		{"invalid field", pre + `"metrics":{}}`, false},
		{"unknown field", pre + `"metrics":{"t":1},"x":1}`, false},
	}
	checkDefers(t, st, tests)
}

func TestDecodeFastDefersTyped(t *testing.T) {
	st := typedStream(t)
	const pre = `{"event_id":"e","received_at":"2026-11-24T10:00:01.456Z","ts":1795946400123,"machine_id":"m","mode":"idle",`
	checkDefers(t, st, []struct {
		name, in string
		fast     bool
	}{
		{"Encode's output", pre + `"temperature":21.5,"running":true}`, true},
		{"false", pre + `"running":false}`, true},
		{"white space", pre + "\"temperature\" :\t-2.5e+2 ,\n\"running\" : false }", true},
		{"negative zero", pre + `"temperature":-0,"running":true}`, true},
		{"unknown field", pre + `"temperature":-273.15,"running":true,"temperature2":1}`, false},
		{"at the minimum", pre + `"temperature":-273.15,"running":true}`, true},
		{"at the maximum", pre + `"temperature":1E3,"running":true}`, true},
		{"below the minimum", pre + `"temperature":-273.16,"running":true}`, false},
		{"above the maximum", pre + `"temperature":1000.1,"running":true}`, false},
		{"out of float64's range", pre + `"temperature":1e999,"running":true}`, false},
		{"NaN", pre + `"temperature":NaN,"running":true}`, false},
		{"Infinity", pre + `"temperature":Infinity,"running":true}`, false},
		{"number as a string", pre + `"temperature":"21.5","running":true}`, false},
		{"null temperature", pre + `"temperature":null,"running":true}`, false},
		{"boolean as a string", pre + `"running":"true"}`, false},
		{"boolean as a number", pre + `"running":1}`, false},
		{"boolean null", pre + `"running":null}`, false},
		{"boolean capitalized", pre + `"running":True}`, false},
		{"boolean runs on", pre + `"running":truefalse}`, false},
		{"boolean cut", pre + `"running":fals}`, false},
		{"boolean at the end", pre + `"running":true`, false},
		{"duplicate boolean", pre + `"running":true,"running":false}`, false},
		{"missing boolean", pre + `"temperature":1}`, false},
		{"enum not one of", pre + `"running":true,"mode":"eco"}`, false},
	})
}

func checkDefers(t *testing.T, st *Stream, tests []struct {
	name, in string
	fast     bool
}) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fast, ok := st.decodeFast([]byte(tt.in), fastDst{keep: true})
			if ok != tt.fast {
				t.Errorf("decodeFast handled it: %v, want %v", ok, tt.fast)
			}
			slow, err := st.decodeGeneric([]byte(tt.in))
			if ok && (err != nil || !reflect.DeepEqual(fast, slow)) {
				t.Errorf("decodeFast = %#v\ndecodeGeneric = %#v, %v", fast, slow, err)
			}
			got, gotErr := st.Decode([]byte(tt.in))
			if !reflect.DeepEqual(got, slow) || (gotErr == nil) != (err == nil) {
				t.Errorf("Decode = %#v, %v\nwant %#v, %v", got, gotErr, slow, err)
			}
			// Envelope, for events known valid, may leave one to
			// DecodeEnvelope, but what it reads must agree with it.
			if env, ok := st.Envelope([]byte(tt.in)); ok && err == nil {
				want, err := st.DecodeEnvelope([]byte(tt.in))
				if err != nil || env.ID != want.ID || env.Key != want.Key || !env.ReceivedAt.Equal(want.ReceivedAt) {
					t.Errorf("Envelope = %#v\nDecodeEnvelope = %#v, %v", env, want, err)
				}
			}
		})
	}
}

// Envelope reads what Encode writes, whatever the fields hold.
func TestEnvelopeOfEncoded(t *testing.T) {
	for _, name := range []string{"iot_telemetry", "app_logs"} {
		st := builtinStream(t, name)
		_, _, _, enc := benchInput(t, name, map[string]string{"iot_telemetry": benchTelemetry, "app_logs": benchLog}[name])
		want, err := st.DecodeEnvelope(enc)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := st.Envelope(enc)
		if !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: Envelope = %#v, %v; want %#v", name, got, ok, want)
		}
		if _, ok := st.Envelope(enc[:len(enc)-1]); ok {
			t.Errorf("%s: Envelope of a cut event reports ok", name)
		}
	}
}

// The strings a worker decodes (Records.Decode, DecodeEnvelope, Envelope)
// point into the message rather than copy it; a string with escapes is
// unescaped into a copy of its own.
func TestWorkerDecodingAliasesInput(t *testing.T) {
	st, _, _, enc := benchInput(t, "iot_telemetry", benchTelemetry)
	inside := func(what, s string) {
		t.Helper()
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		start := uintptr(unsafe.Pointer(unsafe.SliceData(enc)))
		if s == "" || p < start || p >= start+uintptr(len(enc)) {
			t.Errorf("%s %q is a copy, not a view of the message", what, s)
		}
	}
	rs := NewRecords(st, 1)
	ev, rec, err := rs.Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	inside("Records.Decode: event_id", ev.ID)
	inside("Records.Decode: key", ev.Key)
	names, vals := rec.StringMap(st.FieldIndex("tags"))
	inside("Records.Decode: a tag's name", names[0])
	inside("Records.Decode: a tag's value", vals[0])
	env, err := st.DecodeEnvelope(enc)
	if err != nil {
		t.Fatal(err)
	}
	inside("DecodeEnvelope: event_id", env.ID)
	env, ok := st.Envelope(enc)
	if !ok {
		t.Fatal("Envelope refused what Encode wrote")
	}
	inside("Envelope: event_id", env.ID)
	inside("Envelope: key", env.Key)

	escaped := bytes.Replace(enc, []byte(`"plant-a"`), []byte(`"plant\u002da"`), 1)
	rs = NewRecords(st, 1)
	if _, rec, err = rs.Decode(escaped); err != nil {
		t.Fatal(err)
	}
	if _, vals := rec.StringMap(st.FieldIndex("tags")); !slices.Contains(vals, "plant-a") {
		t.Errorf("escaped tag value read as %q", vals)
	}
}

// A released Records comes back empty: events decoded into it after reuse
// read none of the fields, map entries or strings of the batch before,
// and releasing drops its references to that batch's messages.
func TestRecordsReleaseForgetsTheBatch(t *testing.T) {
	st, _, _, full := benchInput(t, "iot_telemetry", benchTelemetry)
	_, _, _, bare := benchInput(t, "iot_telemetry",
		`{"event_id":"e-2","device_id":"d-2","ts":"2026-11-24T10:00:00Z","metrics":{"x":1}}`)
	rs := NewRecords(st, 4)
	for range 3 {
		if _, _, err := rs.Decode(full); err != nil {
			t.Fatal(err)
		}
	}
	rs.Release()
	for i, v := range rs.vals[:cap(rs.vals)] {
		if v != (recValue{}) {
			t.Fatalf("released slot %d holds %+v", i, v)
		}
	}
	for i, s := range rs.strs[:cap(rs.strs)] {
		if s != "" || rs.names[:cap(rs.names)][i] != "" {
			t.Fatalf("released map entry %d still holds a string", i)
		}
	}
	rs.reuse(st, 4*len(st.Fields), 8)
	_, rec, err := rs.Decode(bare)
	if err != nil {
		t.Fatal(err)
	}
	if names, _ := rec.StringMap(st.FieldIndex("tags")); len(names) != 0 {
		t.Errorf("tags of the reused Records: %q, want none", names)
	}
	if names, vals := rec.NumberMap(st.FieldIndex("metrics")); !slices.Equal(names, []string{"x"}) || !slices.Equal(vals, []float64{1}) {
		t.Errorf("metrics of the reused Records: %q %v, want [x] [1]", names, vals)
	}
	if id, _ := rec.Str(st.FieldIndex("device_id")); id != "d-2" {
		t.Errorf("device_id of the reused Records: %q", id)
	}
}
