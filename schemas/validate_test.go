package schemas

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// obj decodes a JSON object as the collector does, numbers as float64.
func obj(tb testing.TB, src string) map[string]any {
	tb.Helper()
	var o map[string]any
	if err := json.Unmarshal([]byte(src), &o); err != nil {
		tb.Fatalf("bad test input %s: %v", src, err)
	}
	return o
}

// errStrings renders field errors as the collector reports them.
func errStrings(errs []FieldError) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

// manyEntries renders a JSON object of n entries k0..k(n-1) with value v.
func manyEntries(n int, v string) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"k%d":%s`, i, v)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// withMembers renders base, an object of raw JSON members, with the
// members named in kv (name, raw JSON, ...) set, or removed where raw is "".
func withMembers(tb testing.TB, base map[string]string, kv ...string) string {
	o := make(map[string]json.RawMessage, len(base)+len(kv)/2)
	for k, v := range base {
		o[k] = json.RawMessage(v)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(o, kv[i])
		} else {
			o[kv[i]] = json.RawMessage(kv[i+1])
		}
	}
	b, err := json.Marshal(o)
	if err != nil {
		tb.Fatalf("bad test input: %v", err)
	}
	return string(b)
}

var ts0 = time.Date(2026, 11, 24, 10, 0, 0, 123e6, time.UTC)

func TestValidateIoTTelemetry(t *testing.T) {
	st := builtinStream(t, "iot_telemetry")
	base := map[string]string{
		"device_id": `"sensor-0042"`,
		"ts":        `"2026-11-24T10:00:00.123Z"`,
		"metrics":   `{"temperature":21.5}`,
	}
	with := func(kv ...string) string { return withMembers(t, base, kv...) }
	long := func(n int) string { return `"` + strings.Repeat("x", n) + `"` }

	tests := []struct {
		name string
		in   string
		want []string // errors; nil means valid
	}{
		{"minimal", with(), nil},
		{"event_id", with("event_id", `"e-1"`), nil},
		{"event_id null is absent", with("event_id", `null`), nil},
		{"event_id at the limit", with("event_id", long(128)), nil},
		{"event_id too long", with("event_id", long(129)), []string{"event_id: longer than 128 bytes"}},
		{"event_id empty", with("event_id", `""`), []string{"event_id: must not be empty"}},
		{"event_id number", with("event_id", `7`), []string{"event_id: must be a string, got number"}},
		{"event_id object", with("event_id", `{}`), []string{"event_id: must be a string, got object"}},

		{"device_id missing", with("device_id", ""), []string{"device_id: required"}},
		{"device_id null", with("device_id", `null`), []string{"device_id: required"}},
		{"device_id number", with("device_id", `42`), []string{"device_id: must be a string, got number"}},
		{"device_id boolean", with("device_id", `true`), []string{"device_id: must be a string, got boolean"}},
		{"device_id array", with("device_id", `["a"]`), []string{"device_id: must be a string, got array"}},
		{"device_id empty", with("device_id", `""`), []string{"device_id: must not be empty"}},
		{"device_id at the limit", with("device_id", long(256)), nil},
		{"device_id too long", with("device_id", long(257)), []string{"device_id: longer than 256 bytes"}},

		{"ts missing", with("ts", ""), []string{"ts: required"}},
		{"ts not a time", with("ts", `"yesterday"`), []string{"ts: not RFC 3339 or epoch ms"}},
		{"ts boolean", with("ts", `false`), []string{"ts: not RFC 3339 or epoch ms"}},

		{"metrics missing", with("metrics", ""), []string{"metrics: required"}},
		{"metrics null", with("metrics", `null`), []string{"metrics: required"}},
		{"metrics empty", with("metrics", `{}`), []string{"metrics: must have at least one entry"}},
		{"metrics array", with("metrics", `[1]`), []string{"metrics: must be an object of name -> number, got array"}},
		{"metrics number", with("metrics", `1`), []string{"metrics: must be an object of name -> number, got number"}},
		{"metric string", with("metrics", `{"t":"hot"}`), []string{"metrics: t: must be a number, got string"}},
		{"metric null", with("metrics", `{"t":null}`), []string{"metrics: t: must be a number, got null"}},
		{"metric object", with("metrics", `{"t":{"v":1}}`), []string{"metrics: t: must be a number, got object"}},
		{"first bad metric by name", with("metrics", `{"z":"x","b":true,"a":1,"c":[]}`),
			[]string{"metrics: b: must be a number, got boolean"}},
		{"metric empty name", with("metrics", `{"":1}`), []string{"metrics: empty name"}},
		{"metric name at the limit", with("metrics", `{`+long(256)+`:1}`), nil},
		{"metric name too long", with("metrics", `{`+long(257)+`:1}`),
			[]string{`metrics: name "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…" longer than 256 bytes`}},
		{"metrics at the limit", with("metrics", manyEntries(256, "1")), nil},
		{"too many metrics", with("metrics", manyEntries(257, "1")), []string{"metrics: more than 256 entries"}},
		{"metrics of every magnitude", with("metrics", `{"a":0,"b":-0.0,"c":1e-300,"d":1.7976931348623157e308,"e":-42}`), nil},

		{"tags", with("tags", `{"site":"plant-a","line":""}`), nil},
		{"tags empty", with("tags", `{}`), nil},
		{"tags null", with("tags", `null`), nil},
		{"tag number", with("tags", `{"site":1}`), []string{"tags: site: must be a string, got number"}},
		{"tag boolean", with("tags", `{"a":"x","site":false}`), []string{"tags: site: must be a string, got boolean"}},
		{"tags string", with("tags", `"site=a"`), []string{"tags: must be an object of name -> string, got string"}},
		{"tag value at the limit", with("tags", `{"site":`+long(1024)+`}`), nil},
		{"tag value too long", with("tags", `{"site":`+long(1025)+`}`), []string{"tags: site: longer than 1024 bytes"}},
		{"tag name too long", with("tags", `{`+long(257)+`:"a"}`),
			[]string{`tags: name "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…" longer than 256 bytes`}},
		{"too many tags", with("tags", manyEntries(65, `"v"`)), []string{"tags: more than 64 entries"}},

		{"received_at from a producer", with("received_at", `"2026-11-24T10:00:00Z"`),
			[]string{"received_at: set by Sluice, not by producers"}},
		{"unknown field", with("color", `"red"`), []string{"color: unknown field"}},
		{"unknown null field", with("color", `null`), []string{"color: unknown field"}},
		{"unknown empty name", with("", `{}`), []string{`"": unknown field`}},
		{"unknown field name bounded", with(strings.Repeat("n", 100), `1`),
			[]string{strings.Repeat("n", 64) + "…: unknown field"}},
		{"not an object at all", `{}`, []string{"device_id: required", "ts: required", "metrics: required"}},
		{"every error, in schema order", `{"zeta":1,"metrics":{},"received_at":"x","device_id":5,` +
			`"event_id":"","alpha":2,"tags":{"a":1}}`, []string{
			"event_id: must not be empty",
			"device_id: must be a string, got number",
			"ts: required",
			"metrics: must have at least one entry",
			"tags: a: must be a string, got number",
			"received_at: set by Sluice, not by producers",
			"alpha: unknown field",
			"zeta: unknown field",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := obj(t, tt.in)
			// Map order is random: the answer must not be.
			for range 5 {
				ev, errs := st.Validate(o)
				if got := errStrings(errs); !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("errors:\n got %q\nwant %q", got, tt.want)
				}
				if tt.want != nil {
					if !reflect.DeepEqual(ev, Event{}) {
						t.Errorf("invalid event returned %+v", ev)
					}
					continue
				}
				if ev.Key != o["device_id"] {
					t.Errorf("Key = %q, want the device_id", ev.Key)
				}
				if !ev.ReceivedAt.IsZero() {
					t.Errorf("ReceivedAt = %s, want zero", ev.ReceivedAt)
				}
			}
		})
	}
}

func TestValidateAppLogs(t *testing.T) {
	st := builtinStream(t, "app_logs")
	levels := "trace, debug, info, warn, error, fatal"
	base := map[string]string{
		"ts":      `1795946400123`,
		"service": `"checkout"`,
		"level":   `"error"`,
		"message": `"payment declined"`,
	}
	with := func(kv ...string) string { return withMembers(t, base, kv...) }
	long := func(n int) string { return `"` + strings.Repeat("y", n) + `"` }

	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"minimal", with(), nil},
		{"every optional field", with("event_id", `"e"`, "host", `"web-3"`, "trace_id", `"4bf92f35"`,
			"attrs", `{"order":"A-17"}`), nil},
		{"level not one of", with("level", `"loud"`), []string{`level: "loud" is not one of ` + levels}},
		{"level is case-sensitive", with("level", `"ERROR"`), []string{`level: "ERROR" is not one of ` + levels}},
		{"level empty", with("level", `""`), []string{`level: "" is not one of ` + levels}},
		{"level quoted and bounded", with("level", `"`+strings.Repeat("\\\"", 40)+`"`),
			[]string{`level: "` + strings.Repeat(`\"`, 32) + `…" is not one of ` + levels}},
		{"level number", with("level", `3`), []string{"level: must be a string, got number"}},
		{"level missing", with("level", ""), []string{"level: required"}},
		{"service missing", with("service", ""), []string{"service: required"}},
		{"service too long", with("service", long(257)), []string{"service: longer than 256 bytes"}},
		{"message empty", with("message", `""`), []string{"message: must not be empty"}},
		{"message at the limit", with("message", long(65536)), nil},
		{"message too long", with("message", long(65537)), []string{"message: longer than 65536 bytes"}},
		{"host may be empty", with("host", `""`), nil},
		{"host too long", with("host", long(257)), []string{"host: longer than 256 bytes"}},
		{"host number", with("host", `1`), []string{"host: must be a string, got number"}},
		{"trace_id too long", with("trace_id", long(129)), []string{"trace_id: longer than 128 bytes"}},
		{"attr value at the limit", with("attrs", `{"k":`+long(4096)+`}`), nil},
		{"attr value too long", with("attrs", `{"k":`+long(4097)+`}`), []string{"attrs: k: longer than 4096 bytes"}},
		{"attr name capped at 256", with("attrs", `{`+long(257)+`:"v"}`),
			[]string{`attrs: name "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy…" longer than 256 bytes`}},
		{"too many attrs", with("attrs", manyEntries(65, `"v"`)), []string{"attrs: more than 64 entries"}},
		{"attr array", with("attrs", `{"k":["v"]}`), []string{"attrs: k: must be a string, got array"}},
		{"everything wrong", `{"event_id":1,"ts":"noon","level":"x","message":7,"host":"","attrs":[],"extra":null}`, []string{
			"event_id: must be a string, got number",
			"ts: not RFC 3339 or epoch ms",
			"service: required",
			`level: "x" is not one of ` + levels,
			"message: must be a string, got number",
			"attrs: must be an object of name -> string, got array",
			"extra: unknown field",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs := st.Validate(obj(t, tt.in))
			if got := errStrings(errs); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
	for _, level := range strings.Split(levels, ", ") {
		ev, errs := st.Validate(obj(t, with("level", `"`+level+`"`)))
		if errs != nil || ev.Fields["level"] != level || ev.Key != "checkout" {
			t.Errorf("level %s: %+v, %v", level, ev, errs)
		}
	}
}

// TestValidateNormalizes checks the Go values Validate produces, which the
// ClickHouse sink relies on.
func TestValidateNormalizes(t *testing.T) {
	st := builtinStream(t, "iot_telemetry")
	ev, errs := st.Validate(obj(t, `{"event_id":"e-1","device_id":"d-1","ts":"2026-11-24T12:00:00.123456+02:00",`+
		`"metrics":{"t":21.5,"h":40},"tags":{"site":"a"}}`))
	if errs != nil {
		t.Fatal(errs)
	}
	want := Event{ID: "e-1", Key: "d-1", Fields: map[string]any{
		"device_id": "d-1",
		"ts":        ts0,
		"metrics":   map[string]float64{"t": 21.5, "h": 40},
		"tags":      map[string]string{"site": "a"},
	}}
	if !reflect.DeepEqual(ev, want) {
		t.Errorf("got  %#v\nwant %#v", ev, want)
	}
	if loc := ev.Fields["ts"].(time.Time).Location(); loc != time.UTC {
		t.Errorf("ts in %s, want UTC", loc)
	}
}

func TestValidateTimestamps(t *testing.T) {
	st := builtinStream(t, "iot_telemetry")
	const (
		notTime    = "ts: not RFC 3339 or epoch ms"
		outOfRange = "ts: out of range (1970 to 2105)"
	)
	last := time.Date(2105, 12, 31, 23, 59, 59, 999e6, time.UTC)
	tests := []struct {
		ts      string // raw JSON
		want    time.Time
		problem string
	}{
		{`"2026-11-24T10:00:00.123Z"`, ts0, ""},
		{`"2026-11-24T10:00:00Z"`, ts0.Truncate(time.Second), ""},
		{`"2026-11-24T10:00:00.1Z"`, ts0.Add(-23 * time.Millisecond), ""},
		{`"2026-11-24T12:00:00.123+02:00"`, ts0, ""},
		{`"2026-11-24T05:30:00.123-04:30"`, ts0, ""},
		{`"2026-11-24T10:00:00.123999999Z"`, ts0, ""}, // truncated, not rounded
		{`"2026-11-24T10:00:00.123456789+00:00"`, ts0, ""},
		{`1795946400123`, time.UnixMilli(1795946400123).UTC(), ""},
		{`"1795946400123"`, time.UnixMilli(1795946400123).UTC(), ""},
		{`1.7959464001230e12`, time.UnixMilli(1795946400123).UTC(), ""},
		{`0`, time.Unix(0, 0).UTC(), ""},
		{`"0"`, time.Unix(0, 0).UTC(), ""},
		{`"1970-01-01T00:00:00Z"`, time.Unix(0, 0).UTC(), ""},
		{`4291747199999`, last, ""},
		{`"2105-12-31T23:59:59.999Z"`, last, ""},
		{`"2105-12-31T23:59:59.999999Z"`, last, ""},

		{`4291747200000`, time.Time{}, outOfRange},
		{`"2106-01-01T00:00:00Z"`, time.Time{}, outOfRange},
		{`"1969-12-31T23:59:59.999Z"`, time.Time{}, outOfRange},
		{`"1970-01-01T01:00:00+02:00"`, time.Time{}, outOfRange},
		{`-1`, time.Time{}, outOfRange},
		{`"-1"`, time.Time{}, outOfRange},
		{`1e300`, time.Time{}, outOfRange},
		{`-1e300`, time.Time{}, outOfRange},
		{`9007199254740993`, time.Time{}, outOfRange},
		{`"9223372036854775807"`, time.Time{}, outOfRange},

		{`1795946400123.5`, time.Time{}, notTime},
		{`0.5`, time.Time{}, notTime},
		{`""`, time.Time{}, notTime},
		{`"yesterday"`, time.Time{}, notTime},
		{`"2026-11-24"`, time.Time{}, notTime},
		{`"2026-11-24 10:00:00Z"`, time.Time{}, notTime},
		{`"2026-11-24T10:00:00"`, time.Time{}, notTime},
		{`"2026-02-30T10:00:00Z"`, time.Time{}, notTime},
		{`"2026-11-24T24:00:00Z"`, time.Time{}, notTime},
		{`"1795946400.123"`, time.Time{}, notTime},
		{`"1e12"`, time.Time{}, notTime},
		{`" 1795946400123"`, time.Time{}, notTime},
		{`"99999999999999999999"`, time.Time{}, notTime},
		{`true`, time.Time{}, notTime},
		{`[1795946400123]`, time.Time{}, notTime},
		{`{"ms":1}`, time.Time{}, notTime},
	}
	for _, tt := range tests {
		t.Run(tt.ts, func(t *testing.T) {
			ev, errs := st.Validate(obj(t, `{"device_id":"d","metrics":{"t":1},"ts":`+tt.ts+`}`))
			if tt.problem != "" {
				if got := errStrings(errs); !reflect.DeepEqual(got, []string{tt.problem}) {
					t.Errorf("errors %q, want %q", got, tt.problem)
				}
				return
			}
			if errs != nil {
				t.Fatal(errs)
			}
			got := ev.Fields["ts"].(time.Time)
			if !got.Equal(tt.want) || got.Location() != time.UTC {
				t.Errorf("ts = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestValidateMachineState(t *testing.T) {
	st := typedStream(t)
	modes := "idle, auto, manual, maintenance"
	base := map[string]string{
		"machine_id":  `"press-7"`,
		"ts":          `"2026-11-24T10:00:00.123Z"`,
		"temperature": `21.5`,
		"running":     `true`,
		"mode":        `"auto"`,
	}
	with := func(kv ...string) string { return withMembers(t, base, kv...) }
	zeros := strings.Repeat("0", 400)

	tests := []struct {
		name string
		in   string
		want []string // errors; nil means valid
		temp any      // the temperature of a valid event; nil means absent
	}{
		{"minimal", with("temperature", ""), nil, nil},
		{"every field", with(), nil, 21.5},

		{"temperature integer", with("temperature", `20`), nil, 20.0},
		{"temperature zero", with("temperature", `0`), nil, 0.0},
		{"temperature negative zero", with("temperature", `-0`), nil, 0.0},
		{"temperature exponent", with("temperature", `2.15E+1`), nil, 21.5},
		{"temperature at the minimum", with("temperature", `-273.15`), nil, -273.15},
		{"temperature at the maximum", with("temperature", `1e3`), nil, 1000.0},
		{"temperature null is absent", with("temperature", `null`), nil, nil},
		{"temperature long literal, in range", with("temperature", `1`+zeros[:3]+`.`+zeros+`1`), nil, 1000.0},
		{"temperature underflows to zero", with("temperature", `0.`+zeros+`1`), nil, 0.0},
		{"temperature below the minimum", with("temperature", `-273.16`),
			[]string{"temperature: -273.16 is below the minimum -273.15"}, nil},
		{"temperature above the maximum", with("temperature", `1000.0001`),
			[]string{"temperature: 1000.0001 is above the maximum 1000"}, nil},
		{"temperature far above", with("temperature", `1.7976931348623157e308`),
			[]string{"temperature: 1.7976931348623157e+308 is above the maximum 1000"}, nil},
		{"temperature long literal is not echoed", with("temperature", `1`+zeros[:300]),
			[]string{"temperature: 1e+300 is above the maximum 1000"}, nil},
		{"temperature long negative literal", with("temperature", `-1`+zeros[:30]+`.`+zeros),
			[]string{"temperature: -1e+30 is below the minimum -273.15"}, nil},
		{"temperature string", with("temperature", `"21.5"`), []string{"temperature: must be a number, got string"}, nil},
		{"temperature NaN string", with("temperature", `"NaN"`), []string{"temperature: must be a number, got string"}, nil},
		{"temperature Infinity string", with("temperature", `"Infinity"`), []string{"temperature: must be a number, got string"}, nil},
		{"temperature boolean", with("temperature", `true`), []string{"temperature: must be a number, got boolean"}, nil},
		{"temperature array", with("temperature", `[21.5]`), []string{"temperature: must be a number, got array"}, nil},
		{"temperature object", with("temperature", `{"c":21.5}`), []string{"temperature: must be a number, got object"}, nil},

		{"running false", with("running", `false`), nil, 21.5},
		{"running missing", with("running", ""), []string{"running: required"}, nil},
		{"running null", with("running", `null`), []string{"running: required"}, nil},
		{"running string 1", with("running", `"1"`), []string{"running: must be true or false, got string"}, nil},
		{"running string true", with("running", `"true"`), []string{"running: must be true or false, got string"}, nil},
		{"running number 1", with("running", `1`), []string{"running: must be true or false, got number"}, nil},
		{"running number 0", with("running", `0`), []string{"running: must be true or false, got number"}, nil},
		{"running array", with("running", `[true]`), []string{"running: must be true or false, got array"}, nil},
		{"running object", with("running", `{}`), []string{"running: must be true or false, got object"}, nil},

		{"mode missing", with("mode", ""), []string{"mode: required"}, nil},
		{"mode not one of", with("mode", `"turbo"`), []string{`mode: "turbo" is not one of ` + modes}, nil},
		{"mode is case-sensitive", with("mode", `"Auto"`), []string{`mode: "Auto" is not one of ` + modes}, nil},
		{"mode number", with("mode", `1`), []string{"mode: must be a string, got number"}, nil},
		{"mode boolean", with("mode", `true`), []string{"mode: must be a string, got boolean"}, nil},

		{"machine_id missing", with("machine_id", ""), []string{"machine_id: required"}, nil},
		{"machine_id too long", with("machine_id", `"`+strings.Repeat("m", 129)+`"`),
			[]string{"machine_id: longer than 128 bytes"}, nil},
		{"every error, in schema order", `{"running":"yes","mode":"x","temperature":-300,"ts":"noon","speed":1}`, []string{
			"machine_id: required",
			"ts: not RFC 3339 or epoch ms",
			"temperature: -300 is below the minimum -273.15",
			"running: must be true or false, got string",
			`mode: "x" is not one of ` + modes,
			"speed: unknown field",
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := obj(t, tt.in)
			ev, errs := st.Validate(o)
			if got := errStrings(errs); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("errors:\n got %q\nwant %q", got, tt.want)
			}
			for _, e := range errs {
				if len(e.Problem) > 100 {
					t.Errorf("problem of %d bytes: %.100s…", len(e.Problem), e.Problem)
				}
			}
			if tt.want != nil {
				if !reflect.DeepEqual(ev, Event{}) {
					t.Errorf("invalid event returned %+v", ev)
				}
				return
			}
			if got, ok := ev.Fields["temperature"]; got != tt.temp || ok != (tt.temp != nil) {
				t.Errorf("temperature = %#v (present %v), want %#v", got, ok, tt.temp)
			}
			if ev.Fields["running"] != (o["running"] == true) || ev.Key != "press-7" {
				t.Errorf("event %+v", ev)
			}
		})
	}
	for _, mode := range strings.Split(modes, ", ") {
		ev, errs := st.Validate(obj(t, with("mode", `"`+mode+`"`)))
		if errs != nil || ev.Fields["mode"] != mode {
			t.Errorf("mode %s: %+v, %v", mode, ev, errs)
		}
	}
}

// TestValidateNormalizesTyped checks the Go types of number, boolean and
// enum values, which the ClickHouse sink relies on.
func TestValidateNormalizesTyped(t *testing.T) {
	st := typedStream(t)
	ev, errs := st.Validate(obj(t, `{"machine_id":"m","ts":1795946400123,"temperature":-4,"running":false,"mode":"idle"}`))
	if errs != nil {
		t.Fatal(errs)
	}
	want := Event{Key: "m", Fields: map[string]any{
		"machine_id":  "m",
		"ts":          time.UnixMilli(1795946400123).UTC(),
		"temperature": float64(-4),
		"running":     false,
		"mode":        "idle",
	}}
	if !reflect.DeepEqual(ev, want) {
		t.Errorf("got  %#v\nwant %#v", ev, want)
	}
}

// Go callers can pass what JSON cannot hold; Validate refuses what Encode
// could not write.
func TestValidateNonFiniteNumbers(t *testing.T) {
	st := unboundedTypedStream(t)
	for _, x := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		o := obj(t, `{"machine_id":"m","ts":0,"running":true,"mode":"idle"}`)
		o["temperature"] = x
		_, errs := st.Validate(o)
		if got, want := errStrings(errs), []string{"temperature: must be a finite number"}; !reflect.DeepEqual(got, want) {
			t.Errorf("%v: errors %q, want %q", x, got, want)
		}
	}
	o := obj(t, `{"machine_id":"m","ts":0,"running":true,"mode":"idle","temperature":1e308}`)
	if _, errs := st.Validate(o); errs != nil {
		t.Errorf("unbounded number: %v", errs)
	}
}
