package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// decodeAll reads every value of src with a Decoder of st, returning what
// each gave and the error that ended the input (nil at its end).
func decodeAll(tb testing.TB, st *Stream, src string, cfg DecoderConfig) ([]Decoded, error) {
	tb.Helper()
	return decodeFrom(st.NewDecoder(strings.NewReader(src), cfg), cfg)
}

// decodeFrom reads every value d holds, as decodeAll does.
func decodeFrom(d *Decoder, cfg DecoderConfig) ([]Decoded, error) {
	var out []Decoded
	for {
		var v Decoded
		err := d.Next(&v)
		if err == io.EOF {
			return out, nil
		}
		var se *SyntaxError
		if errors.As(err, &se) && cfg.Framing == FramingNDJSON {
			out = append(out, Decoded{NotObject: "syntax: " + se.Error()})
			continue
		}
		if err != nil {
			return out, err
		}
		v.Problems = slices.Clone(v.Problems)
		v.Raw = slices.Clone(v.Raw)
		v.Event() // kept past the next Next
		out = append(out, v)
	}
}

// checkBytesDecoder checks that a Decoder of input in memory reads what a
// Decoder of a reader does, and leaves the input as it was.
func checkBytesDecoder(t *testing.T, st *Stream, data []byte) {
	t.Helper()
	for _, cfg := range []DecoderConfig{{Framing: FramingJSON, KeepRaw: true}, {Framing: FramingNDJSON, MaxLine: 1 << 20, KeepRaw: true}} {
		want, wantErr := decodeAll(t, st, string(data), cfg)
		in := slices.Clone(data)
		got, gotErr := decodeFrom(st.NewDecoderBytes(in, cfg), cfg)
		if !bytes.Equal(in, data) {
			t.Fatalf("NewDecoderBytes wrote to its input")
		}
		if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got, want) {
			t.Fatalf("framing %v: from bytes %+v, %v; from a reader %+v, %v", cfg.Framing, got, gotErr, want, wantErr)
		}
	}
}

func TestDecoderBytes(t *testing.T) {
	st := builtinStream(t, "iot_telemetry")
	for _, s := range decoderSeeds {
		checkBytesDecoder(t, st, []byte(s))
	}
	// Values longer than the read buffer, which a Decoder of a reader
	// reads across refills and one of bytes in one piece.
	hostile := hostileBodies()
	for _, name := range []string{"long number", "long string"} {
		t.Run(name, func(t *testing.T) { checkBytesDecoder(t, st, hostile[name]) })
	}
}

// problemsOf renders what a Decoder said of one value as the collector
// lists it, with the count of omitted problems last when there are any.
func problemsOf(v Decoded) []string {
	out := errStrings(v.Problems)
	if v.NotObject != "" {
		out = append(out, "not an object: "+v.NotObject)
	}
	if v.Omitted > 0 {
		out = append(out, "omitted: "+strings.Repeat("|", min(v.Omitted, 3)))
	}
	return out
}

func TestDecoderIoTTelemetry(t *testing.T) {
	st := builtinStream(t, "iot_telemetry")
	const head = `{"device_id":"d","ts":1795946400123,"metrics":{"t":1}`
	big := strings.Repeat("7", 1<<20)
	tests := []struct {
		name string
		in   string
		want []string // nil means valid
	}{
		{"valid", head + `}`, nil},
		{"valid with surrogate pair and escapes", head + `,"tags":{"a\u00e9":"\ud83d\ude00\n\/"}}`, nil},
		{"lone surrogate is U+FFFD as in encoding/json", head + `,"tags":{"a":"\ud800x"}}`, nil},
		{"unknown key", head + `,"x":1}`, []string{"x: unknown field"}},
		{"empty unknown key", head + `,"":1}`, []string{`"": unknown field`}},
		{"long unknown key cut", head + `,"` + strings.Repeat("k", 1000) + `":1}`,
			[]string{strings.Repeat("k", 64) + "…: unknown field"}},
		{"unknown keys listed in name order, rest counted", `{"e":1,"d":1,"c":1,"b":1,"a":1,"f":1,"g":1}`,
			[]string{"a: unknown field", "b: unknown field", "c: unknown field", "d: unknown field",
				"e: unknown field", "omitted: |||"}},
		{"schema order", `{"x":1,"ts":"no","metrics":{}}`,
			[]string{"device_id: required", "ts: not RFC 3339 or epoch ms",
				"metrics: must have at least one entry", "x: unknown field"}},
		{"duplicate key", head + `,"device_id":"e"}`, []string{"device_id: duplicate key"}},
		{"duplicate map key", head + `,"tags":{"a":"x","a":"y"}}`, []string{"tags: a: duplicate key"}},
		// A duplicate is the problem, whatever the second value is.
		{"duplicate metric", `{"device_id":"d","ts":1,"metrics":{"t":1,"u":2,"t":3}}`, []string{"metrics: t: duplicate key"}},
		{"duplicate metric of the wrong kind", `{"device_id":"d","ts":1,"metrics":{"t":1,"t":"x"}}`,
			[]string{"metrics: t: duplicate key"}},
		{"duplicate metric out of range", `{"device_id":"d","ts":1,"metrics":{"t":1,"t":1e400}}`,
			[]string{"metrics: t: duplicate key"}},
		{"duplicate tag too long", head + `,"tags":{"a":"x","a":"` + strings.Repeat("y", 1025) + `"}}`,
			[]string{"tags: a: duplicate key"}},
		{"duplicate tag of the wrong kind", head + `,"tags":{"a":"x","a":1}}`, []string{"tags: a: duplicate key"}},
		// Past seenLinear names a map's names are kept in a set, one per map.
		{"duplicate metric past the first names", `{"device_id":"d","ts":1,"metrics":` +
			strings.TrimSuffix(manyEntries(40, "1"), "}") + `,"k33":2}}`, []string{"metrics: k33: duplicate key"}},
		{"the same names in two large maps", `{"device_id":"d","ts":1,"metrics":` + manyEntries(40, "1") +
			`,"tags":` + manyEntries(40, `"v"`) + `}`, nil},
		{"bad metric before its duplicate", `{"device_id":"d","ts":1,"metrics":{"t":"x","t":1}}`,
			[]string{"metrics: t: must be a number, got string"}},
		{"duplicate event_id", `{"event_id":"a","event_id":"a","device_id":"d","ts":1,"metrics":{"t":1}}`,
			[]string{"event_id: duplicate key"}},
		{"invalid UTF-8 in a key", head + `,"a` + "\xff" + `":1}`,
			[]string{"a\uFFFD: unknown field (name not valid UTF-8)"}},
		{"invalid UTF-8 in a value", `{"device_id":"d` + "\xff" + `","ts":1,"metrics":{"t":1}}`,
			[]string{"device_id: invalid UTF-8"}},
		{"invalid UTF-8 in a tag", head + `,"tags":{"a":"` + "\xc3" + `"}}`, []string{"tags: a: invalid UTF-8"}},
		{"invalid UTF-8 in a tag name", head + `,"tags":{"` + "\xc3" + `":"a"}}`,
			[]string{"tags: name \"\uFFFD\" is not valid UTF-8"}},
		{"out-of-range number names its field", `{"device_id":"d","ts":1,"metrics":{"t":1e400}}`,
			[]string{"metrics: t: number 1e400 out of range"}},
		{"1 MB number", `{"device_id":"d","ts":1,"metrics":{"t":` + big + `}}`,
			[]string{"metrics: t: number " + big[:32] + "… longer than 256 bytes"}},
		{"1 MB ts", `{"device_id":"d","ts":` + big + `,"metrics":{"t":1}}`,
			[]string{"ts: number " + big[:32] + "… longer than 256 bytes"}},
		{"1 MB string over max_length", `{"device_id":"` + big + `","ts":1,"metrics":{"t":1}}`,
			[]string{"device_id: longer than 256 bytes"}},
		{"1 MB tag", head + `,"tags":{"a":"` + big + `"}}`, []string{"tags: a: longer than 1024 bytes"}},
		{"deep nesting in a field", `{"device_id":` + strings.Repeat("[", 9000) + strings.Repeat("]", 9000) + `,"ts":1,"metrics":{"t":1}}`,
			[]string{"device_id: must be a string, got array"}},
		{"deep nesting in a metric", `{"device_id":"d","ts":1,"metrics":{"t":` + strings.Repeat(`{"a":`, 9000) + "1" + strings.Repeat("}", 9000) + `}}`,
			[]string{"metrics: t: must be a number, got object"}},
		{"too many tags", head + `,"tags":` + manyEntries(100, `"v"`) + `}`, []string{"tags: more than 64 entries"}},
		{"received_at", head + `,"received_at":"2026-11-24T10:00:00Z"}`,
			[]string{"received_at: set by Sluice, not by producers"}},
		{"null is absent", `{"device_id":null,"ts":1,"metrics":{"t":1},"tags":null,"event_id":null}`,
			[]string{"device_id: required"}},
		{"not an object", `"x"`, []string{"not an object: string"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeAll(t, st, tt.in, DecoderConfig{})
			if err != nil || len(got) != 1 {
				t.Fatalf("%d values, error %v", len(got), err)
			}
			if p := problemsOf(got[0]); !reflect.DeepEqual(p, tt.want) {
				t.Errorf("problems\n got %q\nwant %q", p, tt.want)
			}
			if tt.want == nil && got[0].Event().Key != "d" {
				t.Errorf("event %+v", got[0].Event())
			}
			if tt.want == nil {
				checkDecoderMatchesValidate(t, st, []byte(tt.in))
			}
		})
	}
}

func TestDecoderSyntax(t *testing.T) {
	st := builtinStream(t, "iot_telemetry")
	tests := []struct {
		name, in string
		want     string // the SyntaxError
	}{
		{"truncated", `{"device_id":"d","ts":1,"met`, "unexpected end of input"},
		{"truncated array", `[{}`, "unexpected end of input"},
		{"missing colon", `{"device_id" "x"}`, `invalid character '"' after object key`},
		{"bad escape", `{"device_id":"\x"}`, `invalid character 'x' in string escape code`},
		{"bad literal", `{"device_id":nul}`, `invalid character '}' in literal null (expecting 'l')`},
		{"bad number", `{"device_id":-x}`, `invalid character 'x' in numeric literal`},
		{"control character", "{\"device_id\":\"a\x01\"}", `invalid character '\x01' in string literal`},
		{"nesting beyond encoding/json's bound", `{"x":` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + `}`,
			"exceeded max depth"},
		{"array without comma", `[{} {}]`, "expected comma after array element"},
		{"data after the array", `[{}] x`, `invalid character 'x' looking for beginning of value`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeAll(t, st, tt.in, DecoderConfig{})
			var se *SyntaxError
			if !errors.As(err, &se) || se.Error() != tt.want {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestDecoderNDJSON(t *testing.T) {
	st := builtinStream(t, "iot_telemetry")
	const ok = `{"device_id":"d","ts":1,"metrics":{"t":1}}`
	in := ok + "\n\n  \r\n" + `{"device_id":` + "\n" + `{"device_id":"a` + "\n" + `{} x` + "\n" + `7` + "\n" + ok
	got, err := decodeAll(t, st, in, DecoderConfig{Framing: FramingNDJSON})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, v := range got {
		lines = append(lines, strings.Join(problemsOf(v), "; "))
	}
	want := []string{"", "not an object: syntax: unexpected end of input",
		"not an object: syntax: unexpected end of input",
		"not an object: syntax: invalid character 'x' after top-level value",
		"not an object: number", ""}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("lines\n got %q\nwant %q", lines, want)
	}
	_, err = decodeAll(t, st, ok+"\n"+strings.Repeat(" ", 100)+ok, DecoderConfig{Framing: FramingNDJSON, MaxLine: 100})
	if !errors.Is(err, ErrLineTooLong) {
		t.Errorf("a line over MaxLine: %v", err)
	}
}

func TestDecoderFill(t *testing.T) {
	st := builtinStream(t, "iot_telemetry")
	fill := map[string]string{"device_id": "from-topic", "site": "x"}
	got, err := decodeAll(t, st, `{"ts":1,"metrics":{"t":1}} {"device_id":"own","ts":1,"metrics":{"t":1},"site":1}`,
		DecoderConfig{Fill: fill, KeepRaw: true})
	if err != nil || len(got) != 2 {
		t.Fatal(len(got), err)
	}
	if p := problemsOf(got[0]); !reflect.DeepEqual(p, []string{"site: unknown field"}) {
		t.Errorf("first: %q", p)
	}
	if p := problemsOf(got[1]); !reflect.DeepEqual(p, []string{"site: unknown field"}) {
		t.Errorf("second (site given once, not filled again): %q", p)
	}
	if string(got[1].Raw) != `{"device_id":"own","ts":1,"metrics":{"t":1},"site":1}` {
		t.Errorf("raw %q", got[1].Raw)
	}
	delete(fill, "site")
	got, _ = decodeAll(t, st, `{"ts":1,"metrics":{"t":1}}`, DecoderConfig{Fill: fill})
	if len(got) != 1 || got[0].Event().Key != "from-topic" {
		t.Errorf("filled event %+v", got)
	}
}

// hostileBodies are 8 MiB bodies built to cost memory in a decoder that
// builds what it reads before checking it.
func hostileBodies() map[string][]byte {
	const size = 8 << 20
	repeat := func(head, unit, tail string) []byte {
		var b bytes.Buffer
		b.WriteString(head)
		for i := 0; b.Len() < size-len(tail)-len(unit); i++ {
			if i > 0 && unit[0] != '[' && unit[0] != '{' {
				b.WriteByte(',')
			}
			b.WriteString(strings.ReplaceAll(unit, "#", string(rune('a'+i%26))+strings.Repeat("z", i%7)))
		}
		b.WriteString(tail)
		return b.Bytes()
	}
	return map[string][]byte{
		"unknown keys":    repeat("{", `"k#":0`, "}"),
		"empty objects":   repeat("[", `{},`, "{}]"),
		"deep nesting":    []byte(`{"x":` + strings.Repeat("[", MaxDepth-2) + strings.Repeat("]", MaxDepth-2) + `}`),
		"long number":     []byte(`{"device_id":"d","ts":1,"metrics":{"t":1` + strings.Repeat("0", size) + `}}`),
		"long string":     []byte(`{"device_id":"` + strings.Repeat("x", size) + `","ts":1,"metrics":{"t":1}}`),
		"unknown strings": repeat("{", `"k#":"vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"`, "}"),
		"many tags":       repeat(`{"device_id":"d","ts":1,"metrics":{"t":1},"tags":{`, `"t#":"v"`, "}}"),
	}
}

// TestDecoderHostileAllocations checks the property that bounds memory:
// reading an 8 MiB hostile body allocates a small, fixed amount, not a
// multiple of the body.
func TestDecoderHostileAllocations(t *testing.T) {
	st := builtinStream(t, "iot_telemetry")
	for name, body := range hostileBodies() {
		t.Run(name, func(t *testing.T) {
			var v Decoded
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			d := st.NewDecoder(bytes.NewReader(body), DecoderConfig{})
			values, problems := 0, 0
			var err error
			for err = d.Next(&v); err == nil; err = d.Next(&v) {
				values++
				problems += len(v.Problems) + v.Omitted
			}
			runtime.ReadMemStats(&after)
			if err != io.EOF {
				t.Fatalf("after %d values: %v", values, err)
			}
			if problems == 0 {
				t.Errorf("%d values and no problem", values)
			}
			const limit = 1 << 20
			n := after.TotalAlloc - before.TotalAlloc
			if n > limit {
				t.Errorf("reading %d bytes allocated %d bytes, over %d", len(body), n, limit)
			}
			t.Logf("%d values, %d problems: %d bytes allocated for %d bytes read", values, problems, n, len(body))
		})
	}
}

// TestDecoderMatchesValidate runs the fuzz seeds through FuzzDecoder's
// check; FuzzDecoder does it for the inputs the fuzzer makes.
func TestDecoderMatchesValidate(t *testing.T) {
	for _, st := range fuzzStreams(t) {
		for _, s := range slices.Concat(fuzzSeeds, decoderSeeds) {
			checkDecoderMatchesValidate(t, st, []byte(s))
		}
	}
}

var decoderSeeds = []string{
	`{"device_id":"d","ts":"2026-11-24T10:00:00Z","metrics":{"t":1e400}}`,
	`{"device_id":"d","ts":1,"metrics":{"t":1},"tags":{"a\ud800":"\udc00\ud83d\ude00"}}`,
	`{"device_id":"d","ts":1,"metrics":{"t":1},"x":[[{"a":[1,{"b":null}]}]]}`,
	`{"device_id":"d","ts":1,"metrics":{"t":1},"tags":{}} trailing`,
	`{"device_id":"d","ts":1,"metrics":{"t":1},"tags":{"a":"b"}`,
	`{"ts":"2026-11-24T10:00:00Z","service":"s","level":"info","message":"m","attrs":{"k":""}}`,
	"{\"device_id\":\"d\xff\",\"ts\":1,\"metrics\":{\"t\":1}}",
	`{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"device_id":7}`,
}

// checkDecoderMatchesValidate compares the Decoder with encoding/json and
// Validate on the first value of data, where that is an object: both must
// find it malformed, or both accept it as the same Event, or both reject
// it for problems with the same fields. The Decoder is stricter than
// encoding/json on purpose, where only the acceptance is not compared:
// invalid UTF-8 (encoding/json replaces it), duplicate names
// (encoding/json keeps the last) and number literals over MaxNumberLength.
func checkDecoderMatchesValidate(t *testing.T, st *Stream, data []byte) {
	t.Helper()
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return
	}
	var got Decoded
	err := st.NewDecoder(bytes.NewReader(data), DecoderConfig{}).Next(&got)
	var o map[string]any
	oerr := json.NewDecoder(bytes.NewReader(data)).Decode(&o)
	var se *SyntaxError
	var jse *json.SyntaxError
	var jte *json.UnmarshalTypeError
	switch {
	case errors.As(oerr, &jse) || errors.Is(oerr, io.ErrUnexpectedEOF):
		if !errors.As(err, &se) {
			t.Fatalf("%s: %q: encoding/json: %v; Decoder: %v", st.Name, data, oerr, err)
		}
		return
	case errors.As(err, &se):
		t.Fatalf("%s: %q: Decoder: %v; encoding/json: %v", st.Name, data, err, oerr)
	case err != nil:
		t.Fatalf("%s: %q: Decoder: %v", st.Name, data, err)
	}
	if len(got.Problems) == 0 && got.Omitted != 0 {
		t.Fatalf("%s: %q: omitted problems without listed ones", st.Name, data)
	}
	for _, p := range got.Problems {
		if p.Field == "" || p.Problem == "" || !utf8.ValidString(p.Error()) || len(p.Error()) > 300 {
			t.Fatalf("%s: %q: problem %q", st.Name, data, p.Error())
		}
	}
	strict := !utf8.Valid(data) || hasDuplicateNames(data) || hasLongNumber(data)
	if strict {
		if oerr == nil {
			if _, errs := st.Validate(o); errs != nil && len(got.Problems) == 0 {
				t.Fatalf("%s: %q: Validate rejects, Decoder accepts: %v", st.Name, data, errs)
			}
		}
		return
	}
	if errors.As(oerr, &jte) {
		if len(got.Problems) == 0 {
			t.Fatalf("%s: %q: encoding/json: %v; Decoder accepts", st.Name, data, oerr)
		}
		return
	}
	if oerr != nil {
		t.Fatalf("%s: %q: encoding/json: %v", st.Name, data, oerr)
	}
	ev, errs := st.Validate(o)
	if errs == nil {
		checkDecodedEncodes(t, st, data, &got, ev)
		if len(got.Problems) != 0 || !reflect.DeepEqual(got.Event(), ev) {
			t.Fatalf("%s: %q:\nValidate %#v\nDecoder  %#v %q", st.Name, data, ev, got.Event(), got.Problems)
		}
		return
	}
	if len(errs) <= MaxProblems && !reflect.DeepEqual(fieldsOf(errs), fieldsOf(got.Problems)) {
		t.Fatalf("%s: %q: problems\nValidate %q\nDecoder  %q", st.Name, data, errStrings(errs), errStrings(got.Problems))
	}
	if len(errs) != len(got.Problems)+got.Omitted {
		t.Fatalf("%s: %q: %d problems, Decoder %d and %d omitted", st.Name, data, len(errs), len(got.Problems), got.Omitted)
	}
}

func fieldsOf(errs []FieldError) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = e.Field
	}
	slices.Sort(out)
	return out
}

// hasDuplicateNames reports whether an object in the first value of data
// names a member twice.
func hasDuplicateNames(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	type obj struct {
		names map[string]bool
		isKey bool
	}
	var stack []*obj
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		top := (*obj)(nil)
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if s, ok := tok.(string); ok && top != nil && top.isKey {
			if top.names[s] {
				return true
			}
			top.names[s], top.isKey = true, false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &obj{names: map[string]bool{}, isKey: true})
			continue
		case json.Delim('['):
			stack = append(stack, &obj{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return false
			}
		}
		if top := stack[len(stack)-1]; top.names != nil {
			top.isKey = true
		}
	}
}

// hasLongNumber reports whether data holds a run of number characters
// longer than MaxNumberLength.
func hasLongNumber(data []byte) bool {
	run := 0
	for _, c := range data {
		if strings.IndexByte("0123456789+-.eE", c) >= 0 {
			if run++; run > MaxNumberLength {
				return true
			}
		} else {
			run = 0
		}
	}
	return false
}

// FuzzDecoder compares the Decoder with encoding/json and Validate on the
// fuzz streams (checkDecoderMatchesValidate).
func FuzzDecoder(f *testing.F) {
	for _, s := range slices.Concat(fuzzSeeds, decoderSeeds) {
		f.Add([]byte(s))
	}
	streams := fuzzStreams(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, st := range streams {
			checkDecoderMatchesValidate(t, st, data)
			checkBytesDecoder(t, st, data)
		}
	})
}

// checkDecodedEncodes checks that a valid event the Decoder read encodes,
// before and after it is built into an Event, to what Stream.Encode makes
// of ev, the same event as Validate gives it, with ev's partition key.
func checkDecodedEncodes(t *testing.T, st *Stream, data []byte, got *Decoded, ev Event) {
	t.Helper()
	at := time.Date(2026, 12, 1, 10, 0, 0, 123e6, time.UTC)
	ev.ID, ev.ReceivedAt = "id-1", at
	want, werr := st.Encode(ev)
	for _, when := range []string{"unbuilt", "built"} {
		if k := got.Key(); k != ev.Key {
			t.Fatalf("%s: %q: Decoded.Key (%s) = %q, want %q", st.Name, data, when, k, ev.Key)
		}
		key, b, err := got.EncodeKeyed("id-1", at)
		if (err != nil) != (werr != nil) || !bytes.Equal(b, want) {
			t.Fatalf("%s: %q: Decoded.EncodeKeyed (%s)\n got %s, %v\nwant %s, %v", st.Name, data, when, b, err, want, werr)
		}
		if err == nil && string(key) != ev.Key {
			t.Fatalf("%s: %q: Decoded.EncodeKeyed (%s): key %q, want %q", st.Name, data, when, key, ev.Key)
		}
		// The key follows the value in memory: appending to the value
		// must not write over it.
		if err == nil && when == "unbuilt" && cap(b) != len(b) {
			t.Fatalf("%s: %q: Decoded.EncodeKeyed: the value's capacity %d is past its length %d", st.Name, data, cap(b), len(b))
		}
		if b2, _ := got.Encode("id-1", at); !bytes.Equal(b2, b) {
			t.Fatalf("%s: %q: Decoded.Encode (%s) = %s, EncodeKeyed's value %s", st.Name, data, when, b2, b)
		}
		got.Event()
	}
}

// A Decoded's ID lives in the Decoder's memory until the next Next; Event
// gives the event, and the Decoded, an ID of their own.
func TestDecodedIDKeptThroughEvent(t *testing.T) {
	st := builtinStream(t, "iot_telemetry")
	// The first event grows the Decoder's memory to the size of the
	// others, which then reuse it.
	const src = `[{"event_id":"warm-up-id","device_id":"c","ts":1,"metrics":{"t":1}},` +
		`{"event_id":"first-id","device_id":"d","ts":1,"metrics":{"t":1}},` +
		`{"event_id":"later-id","device_id":"e","ts":1,"metrics":{"t":1}}]`
	d := st.NewDecoder(strings.NewReader(src), DecoderConfig{})
	var warm, first, second Decoded
	if err := d.Next(&warm); err != nil {
		t.Fatal(err)
	}
	if err := d.Next(&first); err != nil || first.ID != "first-id" {
		t.Fatalf("Next = %v, ID %q", err, first.ID)
	}
	ev := first.Event()
	if err := d.Next(&second); err != nil || second.ID != "later-id" {
		t.Fatalf("Next = %v, ID %q", err, second.ID)
	}
	if ev.ID != "first-id" || first.ID != "first-id" {
		t.Errorf("after the next Next: Event's ID %q, the Decoded's %q; want first-id", ev.ID, first.ID)
	}
}
