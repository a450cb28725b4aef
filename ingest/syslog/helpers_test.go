package syslog

import (
	"encoding/json"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/deadletter"
	"github.com/sluicehq/sluice/internal/testkit"
)

// rig is a running collector on an embedded broker.
type rig struct {
	c   *Collector
	k   *testkit.Kafka
	reg *prometheus.Registry
}

// startRig runs a collector listening on TCP and UDP loopback ports, with
// cfg's non-zero settings; it is stopped (and must return) when t ends.
func startRig(t testing.TB, cfg Config, gateOpts ...testkit.GateOption) *rig {
	t.Helper()
	k := testkit.StartKafka(t)
	reg := prometheus.NewRegistry()
	gate := testkit.NewGate(t, k, reg, gateOpts...)
	if cfg.TCPAddr == "" && cfg.UDPAddr == "" {
		cfg.TCPAddr, cfg.UDPAddr = "127.0.0.1:0", "127.0.0.1:0"
	}
	cfg.Registerer = reg
	cfg.Logger = testkit.FileLogger(t, "syslog.log")
	c, err := New(gate, cfg)
	if err != nil {
		t.Fatal(err)
	}
	testkit.RunSource(t, c)
	return &rig{c: c, k: k, reg: reg}
}

func (r *rig) dial(t testing.TB) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", r.c.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// sendNumbered writes n newline-delimited RFC 5424 lines, "line 0" to
// "line n-1", on conn.
func sendNumbered(t testing.TB, conn net.Conn, n int) {
	t.Helper()
	for i := range n {
		if _, err := fmt.Fprintf(conn, "<14>1 - h app - - - line %d\n", i); err != nil {
			t.Fatal(err)
		}
	}
}

// logs returns the app_logs events in Kafka, once at least n are there.
func (r *rig) logs(t testing.TB, n int) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range r.k.WaitTopic(t, testkit.StreamTopic(Stream), n, 20*time.Second) {
		var ev map[string]any
		if err := json.Unmarshal(m.Value, &ev); err != nil {
			t.Fatalf("app_logs record %q: %v", m.Value, err)
		}
		out = append(out, ev)
	}
	return out
}

// counter reads one series of a counter vector.
func counter(c *prometheus.CounterVec, labels ...string) float64 {
	return value(c.WithLabelValues(labels...))
}

// value reads a counter or gauge.
func value(m prometheus.Metric) float64 {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(collectorOf{m})
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || len(mfs[0].GetMetric()) != 1 {
		return -1
	}
	pm := mfs[0].GetMetric()[0]
	if c := pm.GetCounter(); c != nil {
		return c.GetValue()
	}
	return pm.GetGauge().GetValue()
}

// collectorOf exposes one metric to a registry.
type collectorOf struct{ m prometheus.Metric }

func (c collectorOf) Describe(ch chan<- *prometheus.Desc) { ch <- c.m.Desc() }
func (c collectorOf) Collect(ch chan<- prometheus.Metric) { ch <- c.m }

// byMessage indexes events by their message.
func byMessage(evs []map[string]any) map[string]map[string]any {
	out := make(map[string]map[string]any, len(evs))
	for _, ev := range evs {
		out[ev["message"].(string)] = ev
	}
	return out
}

// letterValue is the input a dead letter holds.
func letterValue(r deadletter.Record) string {
	if r.RawEvent != "" {
		return r.RawEvent
	}
	return string(r.Event)
}

// accepted is how many syslog events the gate has had acknowledged.
func (r *rig) accepted(t testing.TB) float64 {
	return testkit.Metric(t, r.reg, "sluice_ingest_events_total", map[string]string{"source": "syslog", "result": "accepted"})
}
