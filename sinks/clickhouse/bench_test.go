package clickhouse

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/procstat"
	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks"
)

// demoBatch returns n iot_telemetry events like those of the demo's load
// generator: 1,000 devices with three tags each (site, model, firmware),
// four to five metrics with a daily cycle and noise, timestamps a little
// before the time received, event_ids "<run>-iot_telemetry-<seq>", 20,000
// events a second.
func demoBatch(rng *rand.Rand, first int64, n int, start time.Time) []sinks.Row {
	sites := []string{"plant-a", "plant-b", "plant-c", "warehouse-north", "warehouse-south", "office-hq", "depot-east", "lab-1"}
	models := []string{"th-200", "th-210", "aq-50", "pm-3", "vb-9"}
	rows := make([]sinks.Row, n)
	for i := range rows {
		seq := first + int64(i)
		d := int(uint64(seq*7919) % 1000)
		dev := fmt.Sprintf("sensor-%04d", d+1)
		recv := start.Add(time.Duration(seq) * 50 * time.Microsecond)
		ts := recv.Add(-time.Duration(rng.IntN(250)) * time.Millisecond)
		day := math.Sin(2*math.Pi*float64(ts.UnixMilli()%86_400_000)/86_400_000 + float64(d))
		metrics := map[string]float64{
			"temperature": math.Round((20+3*day+rng.NormFloat64()*0.15)*100) / 100,
			"humidity":    math.Round((45-6*day+rng.NormFloat64()*0.8)*10) / 10,
			"battery":     math.Round((40+float64(d%60)-float64(seq)/1e6)*10) / 10,
			"rssi":        float64(-45 - d%50 + rng.IntN(7) - 3),
		}
		if d%5 == 0 {
			metrics["pressure"] = math.Round((1013.25+rng.NormFloat64()*4)*10) / 10
		}
		rows[i] = sinks.Row{Offset: seq, Event: schemas.Event{
			ID: fmt.Sprintf("bench01-iot_telemetry-%d", seq), Key: dev, ReceivedAt: recv,
			Fields: map[string]any{
				"device_id": dev, "ts": ts, "metrics": metrics,
				"tags": map[string]string{"site": sites[d%len(sites)], "model": models[d%len(models)], "fw": fmt.Sprintf("%d.%d.%d", 1+d%3, d%10, d%20)},
			},
		}}
	}
	return rows
}

// benchLayouts are the layouts the benchmarks compare: the previous one
// and the new one by month and by day.
var benchLayouts = []string{"kafka_partition", PartitionMonth, PartitionDay}

// BenchmarkInsert inserts batches of 20,000 demo-like iot_telemetry
// events, a typical worker batch, decoded into Records as the workers
// pass them, round-robin over eight Kafka partitions,
// into each layout: rows/s is the figure to compare, and cpu-ns/row the
// client's CPU for each row.
func BenchmarkInsert(b *testing.B) {
	const batchSize, partitions = 20000, 8
	for _, layout := range benchLayouts {
		b.Run("layout="+layout, func(b *testing.B) {
			s := openTest(b)
			st := builtin(b, "iot_telemetry")
			createLayout(b, s, st, layout)
			rng := rand.New(rand.NewPCG(1, 2))
			// With their Records, as the workers pass them.
			batch, err := withRecords(st, demoBatch(rng, 0, batchSize, time.Now()))
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			next := make([]int64, partitions)
			var rows, i int64
			start := time.Now()
			// The client's CPU, which the server's does not blur.
			cpu, _ := procstat.SelfCPUTime()
			for b.Loop() {
				p := int32(i % partitions)
				for j := range batch {
					batch[j].Offset = next[p] + int64(j)
				}
				if err := s.Write(ctx, st, p, batch); err != nil {
					b.Fatal(err)
				}
				next[p] += batchSize
				rows += batchSize
				i++
			}
			b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "rows/s")
			cpuEnd, _ := procstat.SelfCPUTime()
			b.ReportMetric(float64(cpuEnd-cpu)/float64(rows), "cpu-ns/row")
		})
	}
}

// BenchmarkDiskSize writes one million demo-like events in batches of
// 20,000 over eight Kafka partitions into each layout, lets the server
// merge them (OPTIMIZE ... FINAL, as merges would in time), and reports
// their size on disk (system.parts bytes_on_disk). Run it alone:
//
//	go test -run '^$' -bench DiskSize -benchtime 1x ./sinks/clickhouse/
func BenchmarkDiskSize(b *testing.B) {
	const events, batchSize, partitions = 1_000_000, 20000, 8
	for _, layout := range benchLayouts {
		b.Run("layout="+layout, func(b *testing.B) {
			for b.Loop() {
				s := openTest(b)
				st := builtin(b, "iot_telemetry")
				createLayout(b, s, st, layout)
				ctx := context.Background()
				rng := rand.New(rand.NewPCG(1, 2))
				start := time.Now()
				for first := int64(0); first < events; first += batchSize {
					p := int32(first / batchSize % partitions)
					if err := s.Write(ctx, st, p, demoBatch(rng, first, batchSize, start)); err != nil {
						b.Fatal(err)
					}
				}
				written := onDisk(b, s, st)
				if err := s.conn.Exec(ctx, "OPTIMIZE TABLE "+s.table(st)+" FINAL"); err != nil {
					b.Fatal(err)
				}
				merged := onDisk(b, s, st)
				b.ReportMetric(float64(merged)/events, "bytes/event")
				b.Logf("%s: %d events, %.1f MB on disk as written, %.1f MB merged (%.1f bytes/event)",
					layout, events, float64(written)/1e6, float64(merged)/1e6, float64(merged)/events)
			}
		})
	}
}

func onDisk(b *testing.B, s *Sink, st *schemas.Stream) uint64 {
	var n uint64
	if err := s.conn.QueryRow(context.Background(), "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = ? AND table = ? AND active", s.db, st.Table).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkAggregate sums up a 10,000-event demo-like iot_telemetry batch
// (1,000 devices, four to five metrics each) into its rollup groups, as
// Write does after every INSERT.
func BenchmarkAggregate(b *testing.B) {
	st := builtin(b, "iot_telemetry")
	rows, err := withRecords(st, demoBatch(rand.New(rand.NewPCG(1, 2)), 0, 10_000, time.Now().UTC()))
	if err != nil {
		b.Fatal(err)
	}
	r := rollupOf(st)
	b.ReportAllocs()
	for b.Loop() {
		r.aggregate(rows)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rows)), "ns/event")
}
