package schemas

import (
	"encoding/json"
	"fmt"
	"maps"
	"testing"
	"time"
)

// Typical events as producers send them: what the collector and the workers
// spend their time on.
const (
	benchTelemetry = `{"event_id":"0193a5c2-7d1e-7b3a-9f00-5e2c1d4b8a77","device_id":"sensor-0042",` +
		`"ts":"2026-11-24T10:00:00.123Z","metrics":{"temperature":21.5,"humidity":40.2,` +
		`"pressure":1013.25,"battery":0.87},"tags":{"site":"plant-a","line":"7"}}`
	benchLog = `{"event_id":"0193a5c2-7d1e-7b3a-9f00-5e2c1d4b8a78","ts":1795946400123,` +
		`"service":"checkout","level":"error","message":"payment declined: card expired (code 54)",` +
		`"host":"web-3","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","attrs":{"order":"A-17","user":"u-9921"}}`
)

var benchEvents = []struct{ name, stream, json string }{
	{"iot_telemetry", "iot_telemetry", benchTelemetry},
	{"app_logs", "app_logs", benchLog},
}

// benchInput returns the stream, the producer's object, the validated
// event as the collector completes it, and its encoded form.
func benchInput(b testing.TB, stream, src string) (*Stream, map[string]any, Event, []byte) {
	b.Helper()
	st := builtinStream(b, stream)
	var obj map[string]any
	if err := json.Unmarshal([]byte(src), &obj); err != nil {
		b.Fatal(err)
	}
	ev, errs := st.Validate(obj)
	if errs != nil {
		b.Fatal(errs)
	}
	ev.ReceivedAt = time.Date(2026, 11, 24, 10, 0, 1, 456e6, time.UTC)
	enc, err := st.Encode(ev)
	if err != nil {
		b.Fatal(err)
	}
	return st, obj, ev, enc
}

func BenchmarkValidate(b *testing.B) {
	for _, bc := range benchEvents {
		b.Run(bc.name, func(b *testing.B) {
			st, obj, _, _ := benchInput(b, bc.stream, bc.json)
			b.ReportAllocs()
			for b.Loop() {
				if _, errs := st.Validate(obj); errs != nil {
					b.Fatal(errs)
				}
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	for _, bc := range benchEvents {
		b.Run(bc.name, func(b *testing.B) {
			st, _, ev, enc := benchInput(b, bc.stream, bc.json)
			b.ReportAllocs()
			b.SetBytes(int64(len(enc)))
			for b.Loop() {
				if _, err := st.Encode(ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) { benchDecode(b, (*Stream).Decode) }

// BenchmarkDecodeEnvelope is what an output's lane pays per message.
func BenchmarkDecodeEnvelope(b *testing.B) { benchDecode(b, (*Stream).DecodeEnvelope) }

// BenchmarkRecordsDecode is what the store's lane pays per message, in
// batches of 1,000 events a Records.
func BenchmarkRecordsDecode(b *testing.B) {
	var rs *Records
	n := 0
	benchDecode(b, func(st *Stream, enc []byte) (Event, error) {
		if n++; n%1000 == 1 || rs.st != st {
			if rs != nil {
				rs.Done()
			}
			rs, n = NewRecords(st, 1000), 1
		}
		ev, _, err := rs.Decode(enc)
		return ev, err
	})
}

func benchDecode(b *testing.B, decode func(*Stream, []byte) (Event, error)) {
	for _, bc := range benchEvents {
		b.Run(bc.name, func(b *testing.B) {
			st, _, _, enc := benchInput(b, bc.stream, bc.json)
			b.ReportAllocs()
			b.SetBytes(int64(len(enc)))
			for b.Loop() {
				if _, err := decode(st, enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeUnique is BenchmarkDecode of events whose IDs, device
// ids, messages, trace ids and readings differ from one event to the next,
// as they do in production, where caches of repeated strings miss.
func BenchmarkDecodeUnique(b *testing.B) {
	for _, bc := range benchEvents {
		b.Run(bc.name, func(b *testing.B) {
			st, obj, _, _ := benchInput(b, bc.stream, bc.json)
			msgs := make([][]byte, 4096)
			for i := range msgs {
				o := maps.Clone(obj)
				o["event_id"] = fmt.Sprintf("0193a5c2-7d1e-7b3a-9f00-%012x", i)
				if bc.stream == "iot_telemetry" {
					o["device_id"] = fmt.Sprintf("sensor-%06d", i*7919%100000)
					o["metrics"] = map[string]any{"temperature": 15 + float64(i%200)/10, "humidity": float64(i % 100), "battery": 0.5}
				} else {
					o["message"] = fmt.Sprintf("payment %d declined: card expired (code %d)", i*31, i%97)
					o["trace_id"] = fmt.Sprintf("4bf92f3577b34da6a3ce%012x", i*104729)
				}
				ev, errs := st.Validate(o)
				if errs != nil {
					b.Fatal(errs)
				}
				ev.ReceivedAt = time.Date(2026, 11, 24, 10, 0, 1, 456e6, time.UTC).Add(time.Duration(i) * time.Millisecond)
				var err error
				if msgs[i], err = st.Encode(ev); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := st.Decode(msgs[i%len(msgs)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
