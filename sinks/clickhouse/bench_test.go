package clickhouse

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks"
)

// BenchmarkWrite inserts batches of 20,000 iot_telemetry events of four
// metrics and two tags each, a typical worker batch.
func BenchmarkWrite(b *testing.B) {
	const batchSize = 20000
	s := openTest(b)
	st := builtin(b, "iot_telemetry")
	ensure(b, s, st)

	now := time.Now().UTC()
	rows := make([]sinks.Row, batchSize)
	for i := range rows {
		dev := fmt.Sprintf("sensor-%04d", i%1000)
		rows[i] = sinks.Row{Event: schemas.Event{
			ID: fmt.Sprintf("%s-%d", dev, i), Key: dev, ReceivedAt: now,
			Fields: map[string]any{
				"device_id": dev,
				"ts":        now.Add(time.Duration(i) * time.Millisecond),
				"metrics":   map[string]float64{"temperature": 21.5, "humidity": 40.2, "pressure": 1013.2, "battery": 0.87},
				"tags":      map[string]string{"site": "plant-a", "line": "3"},
			},
		}}
	}

	ctx := context.Background()
	var next int64
	start := time.Now()
	for b.Loop() {
		for i := range rows {
			rows[i].Offset = next
			next++
		}
		if err := s.Write(ctx, st, 0, rows); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(next)/time.Since(start).Seconds(), "rows/s")
}
