package status

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRate(t *testing.T) {
	for _, c := range []struct {
		name         string
		old, cur, dt float64
		want         float64
	}{
		{"grows", 100, 300, 2, 100},
		{"still", 300, 300, 5, 0},
		{"reset: all of cur is new", 500, 40, 2, 20},
		{"no time passed", 0, 100, 0, 0},
	} {
		if got := rate(c.old, c.cur, c.dt); got != c.want {
			t.Errorf("%s: rate(%v, %v, %v) = %v, want %v", c.name, c.old, c.cur, c.dt, got, c.want)
		}
	}
}

// fakeProcess registers, under the names the stages' packages export, the
// metrics a process of role all would have, so that a test can move them.
type fakeProcess struct {
	reg     *prometheus.Registry
	events  *prometheus.CounterVec
	rows    *prometheus.CounterVec
	failing *prometheus.GaugeVec
	lag     *prometheus.GaugeVec
	age     *prometheus.GaugeVec
	nats    prometheus.Gauge
	breaker prometheus.Gauge
}

func newFakeProcess(t testing.TB) *fakeProcess {
	t.Helper()
	f := &fakeProcess{
		reg:     prometheus.NewRegistry(),
		events:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricIngestEvents}, []string{"source", "stream", "result"}),
		rows:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricSinkRows}, []string{"sink", "stream"}),
		failing: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: metricSinkFailing}, []string{"sink", "stream"}),
		lag:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: metricWorkerLag}, []string{"sink", "stream", "partition"}),
		age:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: metricBacklogAge}, []string{"stream", "partition"}),
		nats:    prometheus.NewGauge(prometheus.GaugeOpts{Name: metricNATSConnected}),
		breaker: prometheus.NewGauge(prometheus.GaugeOpts{Name: metricIngestBreaker}),
	}
	f.reg.MustRegister(f.events, f.rows, f.failing, f.lag, f.age, f.nats, f.breaker)
	f.nats.Set(1)
	return f
}

func newTestReporter(t *testing.T, g prometheus.Gatherer, role string) *Reporter {
	t.Helper()
	r, err := New(Config{Gatherer: g, Role: role, Streams: []string{"app_logs", "iot_telemetry"}, Window: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func figure(t *testing.T, st Status, stream string, stage Stage) Figure {
	t.Helper()
	for _, s := range st.Streams {
		if s.Name == stream {
			f, ok := s.Stages[stage]
			if !ok {
				t.Fatalf("stream %s has no stage %s: %v", stream, stage, s.Stages)
			}
			return f
		}
	}
	t.Fatalf("no stream %s in %+v", stream, st.Streams)
	return Figure{}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// TestReporterRatesOverWindow feeds the registry a steady 100 events/s for
// ten seconds, one sample a second, then nothing: the rate is 100 while
// events arrive and falls to 0 once a whole window has passed without.
func TestReporterRatesOverWindow(t *testing.T) {
	f := newFakeProcess(t)
	r := newTestReporter(t, f.reg, "all")
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 10 {
		if err := r.sample(t0.Add(time.Duration(i) * time.Second)); err != nil {
			t.Fatal(err)
		}
		f.events.WithLabelValues("http", "iot_telemetry", "accepted").Add(100)
		f.rows.WithLabelValues("clickhouse", "iot_telemetry").Add(50)
	}
	if err := r.sample(t0.Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	st := r.Status()
	if st.WindowSeconds != 5 {
		t.Errorf("window %v s, want 5", st.WindowSeconds)
	}
	if got := figure(t, st, "iot_telemetry", StageInKafka); !near(got.Rate, 100) || got.Total != 1000 {
		t.Errorf("in_kafka %+v, want rate 100 and total 1000", got)
	}
	if got := figure(t, st, "iot_telemetry", StageReceived); !near(got.Rate, 100) {
		t.Errorf("received %+v, want rate 100", got)
	}
	if got := figure(t, st, "iot_telemetry", StageStored); !near(got.Rate, 50) || got.Total != 500 {
		t.Errorf("stored %+v, want rate 50 and total 500", got)
	}
	if got := figure(t, st, "app_logs", StageInKafka); got.Rate != 0 || got.Total != 0 {
		t.Errorf("app_logs, known but silent: %+v, want zeros", got)
	}
	for i := 11; i <= 15; i++ {
		if err := r.sample(t0.Add(time.Duration(i) * time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if got := figure(t, r.Status(), "iot_telemetry", StageInKafka); got.Rate != 0 || got.Total != 1000 {
		t.Errorf("after a quiet window: in_kafka %+v, want rate 0 and total 1000", got)
	}
}

func TestReporterFirstSampleHasNoRates(t *testing.T) {
	f := newFakeProcess(t)
	f.events.WithLabelValues("http", "app_logs", "accepted").Add(500)
	st := newTestReporter(t, f.reg, "ingest").Status()
	if got := figure(t, st, "app_logs", StageInKafka); got.Rate != 0 || got.Total != 500 {
		t.Errorf("first sample: %+v, want rate 0 (nothing to compare with) and total 500", got)
	}
}

// TestIngestCounts checks how the collectors' results become stages:
// received is every answered event, dead letters at ingest are rejected
// events and are not received twice.
func TestIngestCounts(t *testing.T) {
	f := newFakeProcess(t)
	r := newTestReporter(t, f.reg, "ingest")
	t0 := time.Unix(1_700_000_000, 0)
	_ = r.sample(t0)
	f.events.WithLabelValues("http", "app_logs", "accepted").Add(70)
	f.events.WithLabelValues("mqtt", "app_logs", "accepted").Add(30)
	f.events.WithLabelValues("mqtt", "app_logs", "rejected").Add(6)
	f.events.WithLabelValues("mqtt", "app_logs", "dead_lettered").Add(6)
	f.events.WithLabelValues("http", "app_logs", "refused").Add(4)
	_ = r.sample(t0.Add(2 * time.Second))
	st := r.Status()
	for stage, want := range map[Stage]float64{StageReceived: 110, StageInKafka: 100, StageRejected: 6, StageRefused: 4, StageDeadLettered: 6} {
		if got := figure(t, st, "app_logs", stage); got.Total != want || !near(got.Rate, want/2) {
			t.Errorf("%s: %+v, want total %v and rate %v", stage, got, want, want/2)
		}
	}
}

func TestStagesByRole(t *testing.T) {
	f := newFakeProcess(t)
	for role, want := range map[string][]Stage{
		"ingest": {StageReceived, StageRejected, StageRefused, StageInKafka, StageDeadLettered},
		"work":   {StageStored, StagePublished, StageDeadLettered},
		"all":    AllStages,
	} {
		st := newTestReporter(t, f.reg, role).Status()
		if !slices.Equal(st.Stages, want) {
			t.Errorf("role %s: stages %v, want %v", role, st.Stages, want)
		}
		for _, s := range st.Streams {
			if len(s.Stages) != len(want) {
				t.Errorf("role %s: stream %s has stages %v, want %v", role, s.Name, s.Stages, want)
			}
		}
	}
	// A worker without NATS has nothing published.
	bare := prometheus.NewRegistry()
	if st := newTestReporter(t, bare, "work").Status(); !slices.Equal(st.Stages, []Stage{StageStored, StageDeadLettered}) {
		t.Errorf("work without an output: stages %v", st.Stages)
	}
}

func sinkNamed(t *testing.T, st Status, name string) Sink {
	t.Helper()
	for _, s := range st.Sinks {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no sink %s in %+v", name, st.Sinks)
	return Sink{}
}

func TestSinkStates(t *testing.T) {
	f := newFakeProcess(t)
	r := newTestReporter(t, f.reg, "all")
	st := r.Status()
	if names := []string{st.Sinks[0].Name, st.Sinks[1].Name, st.Sinks[2].Name}; !slices.Equal(names, []string{"kafka", "clickhouse", "nats"}) || len(st.Sinks) != 3 {
		t.Fatalf("sinks %+v, want kafka, clickhouse, nats", st.Sinks)
	}
	for _, s := range st.Sinks {
		if s.State != SinkUp {
			t.Errorf("sink %s %s at rest, want up", s.Name, s.State)
		}
	}
	f.failing.WithLabelValues("clickhouse", "iot_telemetry").Set(1)
	f.failing.WithLabelValues("clickhouse", "app_logs").Set(0)
	f.nats.Set(0)
	f.breaker.Set(1)
	_ = r.sample(time.Now())
	st = r.Status()
	if ch := sinkNamed(t, st, "clickhouse"); ch.State != SinkFailing || !slices.Equal(ch.FailingStreams, []string{"iot_telemetry"}) {
		t.Errorf("clickhouse %+v, want failing for iot_telemetry", ch)
	}
	if n := sinkNamed(t, st, "nats"); n.State != SinkDown {
		t.Errorf("nats %+v, want down while disconnected", n)
	}
	if k := sinkNamed(t, st, "kafka"); k.State != SinkFailing {
		t.Errorf("kafka %+v, want failing while the breaker is half-open", k)
	}
	f.breaker.Set(2)
	_ = r.sample(time.Now())
	if k := sinkNamed(t, r.Status(), "kafka"); k.State != SinkDown {
		t.Errorf("kafka %+v, want down while the breaker is open", k)
	}
	if st := newTestReporter(t, f.reg, "ingest").Status(); len(st.Sinks) != 1 || st.Sinks[0].Name != "kafka" {
		t.Errorf("ingest process sinks %+v, want kafka alone", st.Sinks)
	}
}

func TestPartitions(t *testing.T) {
	f := newFakeProcess(t)
	f.age.WithLabelValues("iot_telemetry", "10").Set(3.5)
	f.age.WithLabelValues("iot_telemetry", "2").Set(0)
	f.lag.WithLabelValues("clickhouse", "iot_telemetry", "2").Set(40)
	f.lag.WithLabelValues("nats", "iot_telemetry", "2").Set(7)
	st := newTestReporter(t, f.reg, "all").Status()
	if len(st.Partitions) != 2 {
		t.Fatalf("partitions %+v, want 2", st.Partitions)
	}
	p2, p10 := st.Partitions[0], st.Partitions[1]
	if p2.Partition != 2 || p10.Partition != 10 {
		t.Errorf("partitions in order %d, %d; want 2, 10 (numeric order)", p2.Partition, p10.Partition)
	}
	if p2.Lag["clickhouse"] != 40 || p2.Lag["nats"] != 7 || p10.BacklogAgeSeconds != 3.5 || p10.Lag != nil {
		t.Errorf("partitions %+v", st.Partitions)
	}
}
