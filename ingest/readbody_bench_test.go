package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"testing"
)

// benchBody is an array of n valid iot_telemetry events, as
// BenchmarkCollector in httpapi posts them.
func benchBody(n int) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"device_id":"sensor-%04d","ts":%d,"metrics":{"temperature":%g,"humidity":40.5},"tags":{"site":"plant-a"}}`,
			i%1000, 1795514400000+i, 20+float64(i)/10)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// BenchmarkReadBody measures reading a body of 100 events into a batch,
// and sealing it as Commit does:
// with schemas.Decoder (ReadJSON), with the map-based reading it replaced
// (oracleReadJSON), and, as the floor of any reading built on it,
// encoding/json's Decoder.Token alone over the same body, without
// validating or encoding anything.
func BenchmarkReadBody(b *testing.B) {
	body := benchBody(100)
	g := bodyGate(b)
	for _, r := range []struct {
		name string
		read func(*Batch, io.Reader) error
	}{{"decoder", (*Batch).ReadJSON}, {"map", (*Batch).oracleReadJSON}} {
		b.Run(r.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				batch, err := g.Begin("iot_telemetry", Origin{Source: "bench"})
				if err != nil {
					b.Fatal(err)
				}
				if err := r.read(batch, bytes.NewReader(body)); err != nil || len(batch.msgs) != 100 {
					b.Fatalf("%d events: %v", len(batch.msgs), err)
				}
				batch.seal() // as Commit does, giving the buffer back
			}
		})
	}
	b.Run("token-only", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			dec := json.NewDecoder(bytes.NewReader(body))
			for {
				if _, err := dec.Token(); err != nil {
					break
				}
			}
		}
	})
}
