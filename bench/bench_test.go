package bench

import (
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

const exposition = `# TYPE sluice_sink_rows_total counter
sluice_sink_rows_total{sink="clickhouse",stream="iot_telemetry"} 700
sluice_sink_rows_total{sink="clickhouse",stream="app_logs"} 300
sluice_sink_rows_total{sink="nats",stream="app_logs"} 999
# TYPE sluice_sink_event_freshness_seconds histogram
sluice_sink_event_freshness_seconds_bucket{sink="clickhouse",le="0.1"} 10
sluice_sink_event_freshness_seconds_bucket{sink="clickhouse",le="0.2"} 60
sluice_sink_event_freshness_seconds_bucket{sink="clickhouse",le="0.4"} 100
sluice_sink_event_freshness_seconds_bucket{sink="clickhouse",le="+Inf"} 100
sluice_sink_event_freshness_seconds_sum{sink="clickhouse"} 20
sluice_sink_event_freshness_seconds_count{sink="clickhouse"} 100
sluice_sink_event_freshness_seconds_bucket{sink="nats",le="0.1"} 0
sluice_sink_event_freshness_seconds_bucket{sink="nats",le="0.2"} 0
sluice_sink_event_freshness_seconds_bucket{sink="nats",le="0.4"} 0
sluice_sink_event_freshness_seconds_bucket{sink="nats",le="+Inf"} 500
sluice_sink_event_freshness_seconds_sum{sink="nats"} 5000
sluice_sink_event_freshness_seconds_count{sink="nats"} 500
`

func TestMetricsFromExposition(t *testing.T) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	store := map[string]string{"sink": "clickhouse"}
	if got := counterSum(fams, "sluice_sink_rows_total", store); got != 1000 {
		t.Errorf("stored = %v, want 1000 (the NATS series left out)", got)
	}
	h := histogramSum(fams, "sluice_sink_event_freshness_seconds", store)
	tests := []struct {
		q, want float64
	}{
		{0.05, 0.05},  // within the first bucket, from 0
		{0.5, 0.18},   // 50 of 100: 40 into the 50 of (0.1, 0.2]
		{0.99, 0.395}, // 99: 39 into the 40 of (0.2, 0.4]
	}
	for _, tt := range tests {
		if got := h.quantile(tt.q); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("quantile(%v) = %v, want %v", tt.q, got, tt.want)
		}
	}
	// A phase's histogram is the difference of two snapshots.
	if got := h.minus(h).quantile(0.99); !math.IsNaN(got) {
		t.Errorf("quantile of no observations = %v, want NaN", got)
	}
	if got := visible(math.NaN()); got >= 0 {
		t.Errorf("visible(NaN) = %v, want negative", got)
	}
}

// The sampler keeps the peak resident memory of the processes it watches.
func TestPeakSampler(t *testing.T) {
	s := newPeakSampler(time.Millisecond, os.Getpid())
	s.start(t.Context())
	time.Sleep(5 * time.Millisecond)
	if peak := s.stop()[os.Getpid()]; peak < 1<<20 {
		t.Errorf("peak = %d", peak)
	}
}

// The phase's line says how often the lanes read a message from Kafka
// (both lanes of a partition reading everything on their own is 2) and
// what the processes beside the roles used over the phase; a ClickHouse
// that could not be inspected is left out.
func TestDescribe(t *testing.T) {
	t0 := time.Unix(1000, 0)
	before := snapshot{at: t0, kafkaReads: 100, storeReads: 100, benchCPU: time.Second, clickhouseCPU: 2 * time.Second}
	after := snapshot{at: t0.Add(10 * time.Second), kafkaReads: 1600, storeReads: 1100,
		benchCPU: 4 * time.Second, clickhouseCPU: 7 * time.Second, followed: 900, decided: 100}
	var out strings.Builder
	describe(&out, Phase{Name: "20000/s", Acked: 1000, Stored: 1000}, before, after)
	for _, want := range []string{
		"verdicts for 90% of events",
		"read each message from Kafka 1.50 times",
		"NATS and loadgen used 0.30 cores, ClickHouse 0.50\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("line %q lacks %q", out.String(), want)
		}
	}
	out.Reset()
	before.clickhouseCPU, after.clickhouseCPU = 0, 0
	describe(&out, Phase{Name: "saturation"}, before, after)
	if strings.Contains(out.String(), "ClickHouse") {
		t.Errorf("line %q names ClickHouse, whose CPU is unknown", out.String())
	}
}
