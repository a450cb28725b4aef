package status

import (
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/collectors"
)

// BenchmarkSample measures one sample of a registry shaped like `sluice
// dev`'s (Go and process collectors, two streams, eight partitions each,
// two sinks): the Reporter pays this once a second.
func BenchmarkSample(b *testing.B) {
	f := newFakeProcess(b)
	f.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, stream := range []string{"iot_telemetry", "app_logs"} {
		for _, result := range []string{"accepted", "rejected", "refused", "dead_lettered"} {
			f.events.WithLabelValues("http", stream, result).Add(1)
		}
		for p := range 8 {
			id := strconv.Itoa(p)
			f.age.WithLabelValues(stream, id).Set(1)
			for _, sink := range []string{"clickhouse", "nats"} {
				f.lag.WithLabelValues(sink, stream, id).Set(1)
				f.rows.WithLabelValues(sink, stream).Add(1)
			}
		}
	}
	r, err := New(Config{Gatherer: f.reg, Role: "all"})
	if err != nil {
		b.Fatal(err)
	}
	at := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		at = at.Add(time.Second)
		_ = r.sample(at)
	}
}
