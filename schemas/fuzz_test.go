package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
)

// fuzzSeeds are events as producers send them, valid and not, for the
// built-in streams and machine_state.
var fuzzSeeds = []string{
	benchTelemetry,
	benchLog,
	`{"device_id":"d","ts":1795946400123,"metrics":{"t":1},"tags":{"site":"a"}}`,
	`{"device_id":"d","ts":"1795946400123","metrics":{"t":-0.0,"u":1e-7}}`,
	`{"device_id":"","ts":"2026-11-24T12:00:00.5+02:00","metrics":{"":"x"},"tags":{"a":1},"x":null}`,
	`{"event_id":null,"ts":"2026-11-24T10:00:00Z","service":"s","level":"loud","message":"a\"b\\c\n\u2028<&>"}`,
	`{"event_id":"e","received_at":"2026-11-24T10:00:00Z","ts":1e300,"metrics":[],"tags":"x"}`,
	`{"ts":-1,"service":7,"level":null,"message":{},"host":true,"attrs":{"k":["v"]}}`,
	`{}`,
	`{"machine_id":"m","ts":"2026-11-24T10:00:00.123Z","temperature":21.5,"running":true,"mode":"auto"}`,
	`{"event_id":"e","machine_id":"m","ts":0,"temperature":-273.15,"running":false,"mode":"maintenance"}`,
	`{"machine_id":"m","ts":0,"temperature":1e300,"running":"1","mode":"Auto"}`,
	`{"machine_id":"m","ts":0,"temperature":"NaN","running":1,"mode":null}`,
	`{"machine_id":"m","ts":0,"temperature":-0.0,"running":true,"mode":"idle","extra":false}`,
}

// fuzzStreams are the streams the fuzz tests run each input through: the
// built-in ones, and machine_state with and without its bounds.
func fuzzStreams(tb testing.TB) []*Stream {
	return []*Stream{builtinStream(tb, "iot_telemetry"), builtinStream(tb, "app_logs"),
		typedStream(tb), unboundedTypedStream(tb)}
}

// FuzzValidate feeds arbitrary JSON objects to Validate of the fuzz
// streams. Validate must not panic and must give the same answer every
// time; what it accepts must encode to what encodeGeneric writes and
// decode back to the same event.
func FuzzValidate(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	streams := fuzzStreams(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var o map[string]any
		if json.Unmarshal(data, &o) != nil || o == nil {
			return
		}
		for _, st := range streams {
			ev, errs := st.Validate(o)
			ev2, errs2 := st.Validate(o)
			if !reflect.DeepEqual(errs, errs2) || !reflect.DeepEqual(ev, ev2) {
				t.Fatalf("%s: two answers for one event:\n%v\n%v", st.Name, errs, errs2)
			}
			for _, e := range errs {
				if e.Field == "" || e.Problem == "" {
					t.Fatalf("%s: incomplete error %#v", st.Name, e)
				}
			}
			if errs != nil {
				continue
			}
			if ev.ID == "" {
				ev.ID = "assigned"
			}
			ev.ReceivedAt = recv0
			b, err := st.Encode(ev)
			if err != nil {
				t.Fatalf("%s: Encode: %v", st.Name, err)
			}
			assertSameJSON(t, st, ev)
			got, err := st.Decode(b)
			if err != nil {
				t.Fatalf("%s: Decode(%s): %v", st.Name, b, err)
			}
			if !reflect.DeepEqual(got, ev) {
				t.Fatalf("%s: round trip of %s:\n got %#v\nwant %#v", st.Name, b, got, ev)
			}
		}
	})
}

// FuzzDecode feeds arbitrary bytes to Decode. Whatever decodeFast accepts,
// decodeGeneric (json.Unmarshal and validate) must accept with the same
// result, and Decode must not panic.
func FuzzDecode(f *testing.F) {
	streams := fuzzStreams(f)
	for _, s := range fuzzSeeds {
		var o map[string]any
		if err := json.Unmarshal([]byte(s), &o); err != nil {
			f.Fatal(err)
		}
		o["event_id"], o["received_at"] = "e", "2026-11-24T10:00:01.456Z"
		b, _ := json.Marshal(o)
		f.Add(b)
		f.Add([]byte(strings.ReplaceAll(string(b), ",", " ,\n ")))
	}
	for _, st := range streams[:2] {
		_, _, _, b := benchInput(f, st.Name, map[string]string{"iot_telemetry": benchTelemetry, "app_logs": benchLog}[st.Name])
		f.Add(b)
	}
	f.Add([]byte(`{"event_id":"e","machine_id":"m","ts":"2026-11-24T10:00:00.123Z","temperature":1e999,` +
		`"running":truex,"mode":"auto","received_at":"2026-11-24T10:00:01.456Z"}`))
	f.Add([]byte(`{"event_id":"e","machine_id":"m","ts":"2026-11-24T10:00:00.123Z","temperature":-1000,` +
		`"running":false,"mode":"idle","received_at":"2026-11-24T10:00:01.456Z"}`))
	// Duplicate names in a map: the envelope counts and checks every
	// entry, encoding/json keeps the last.
	f.Add([]byte(`{"event_id":"e","device_id":"d","ts":"2026-11-24T10:00:00.123Z","metrics":{"t":1,"t":2},` +
		`"tags":{"a":"x","a":"yy"},"received_at":"2026-11-24T10:00:01.456Z"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, st := range streams {
			fast, ok := st.decodeFast(data, fastDst{keep: true})
			slow, err := st.decodeGeneric(data)
			if ok && err != nil {
				t.Fatalf("%s: decodeFast accepted what decodeGeneric rejects (%v): %q", st.Name, err, data)
			}
			if ok && !reflect.DeepEqual(fast, slow) {
				t.Fatalf("%s: decodeFast = %#v\ndecodeGeneric = %#v\nfor %q", st.Name, fast, slow, data)
			}
			got, gotErr := st.Decode(data)
			if (gotErr == nil) != (err == nil) || !reflect.DeepEqual(got, slow) {
				t.Fatalf("%s: Decode = %#v, %v; want %#v, %v", st.Name, got, gotErr, slow, err)
			}
			// DecodeEnvelope: the same verdict and error, the same
			// envelope, no fields.
			env, envErr := st.DecodeEnvelope(data)
			want := got
			want.Fields = nil
			if fmt.Sprint(envErr) != fmt.Sprint(gotErr) || !reflect.DeepEqual(env, want) {
				t.Fatalf("%s: DecodeEnvelope = %#v, %v; want %#v, %v", st.Name, env, envErr, want, gotErr)
			}
			checkRecordsDecode(t, st, data, got, gotErr)
			// Envelope, of an event Decode accepts: the same envelope,
			// or false.
			if gotErr == nil {
				if e, ok := st.Envelope(data); ok && !reflect.DeepEqual(e, want) {
					t.Fatalf("%s: Envelope = %#v; want %#v", st.Name, e, want)
				}
			}
		}
	})
}

// FuzzEncodeScalars compares appendString and appendFloat byte for byte
// with encoding/json (without HTML escaping, which Encode leaves out).
func FuzzEncodeScalars(f *testing.F) {
	for i, s := range awkward {
		f.Add(s, awkwardNumbers[i%len(awkwardNumbers)])
	}
	f.Fuzz(func(t *testing.T, s string, x float64) {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		if got := appendString(nil, s); !bytes.Equal(got, bytes.TrimSuffix(want.Bytes(), []byte("\n"))) {
			t.Fatalf("appendString(%q) = %s, want %s", s, got, want.Bytes())
		}
		got, ok := appendFloat(nil, x)
		if math.IsNaN(x) || math.IsInf(x, 0) {
			if ok {
				t.Fatalf("appendFloat(%v) accepted", x)
			}
			return
		}
		if wantF, _ := json.Marshal(x); !ok || !bytes.Equal(got, wantF) {
			t.Fatalf("appendFloat(%v) = %s, want %s", x, got, wantF)
		}
	})
}

// checkRecordsDecode checks Records.Decode against Decode, which gave want
// and wantErr for data: the same verdict and error, the same envelope, and
// a Record that holds the same fields, after another event in the same
// Records.
func checkRecordsDecode(t *testing.T, st *Stream, data []byte, want Event, wantErr error) {
	t.Helper()
	rs := NewRecords(st, 2)
	if _, _, err := rs.Decode(data); fmt.Sprint(err) != fmt.Sprint(wantErr) {
		t.Fatalf("%s: Records.Decode: %v; Decode: %v", st.Name, err, wantErr)
	}
	env, rec, err := rs.Decode(data)
	if err != nil {
		return
	}
	got := env
	got.Fields = recordFields(st, rec)
	if env.Fields != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: Records.Decode = %#v with fields %#v; want %#v", st.Name, env, got.Fields, want)
	}
}

// recordFields builds the Fields of an Event from rec.
func recordFields(st *Stream, rec Record) map[string]any {
	fields := map[string]any{}
	for i, f := range st.Fields {
		var v any
		ok := false
		switch f.Type {
		case TypeString, TypeEnum:
			v, ok = rec.Str(i)
		case TypeNumber:
			v, ok = rec.Num(i)
		case TypeBoolean:
			v, ok = rec.Bool(i)
		case TypeTimestamp:
			v, ok = rec.Time(i)
		case TypeNumberMap:
			v, ok = mapOf(rec.NumberMap(i)), rec.value(i).set
		case TypeStringMap:
			v, ok = mapOf(rec.StringMap(i)), rec.value(i).set
		}
		if ok {
			fields[f.Name] = v
		}
	}
	return fields
}

func mapOf[V any](names []string, vals []V) map[string]V {
	m := map[string]V{}
	for j, k := range names {
		m[k] = vals[j]
	}
	return m
}
