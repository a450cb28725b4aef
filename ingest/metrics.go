package ingest

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/backpressure"
)

// gateMetrics are the gate's, labelled by source, so that every collector
// gets the same figures: events by result, produce latency, retries.
type gateMetrics struct {
	// events counts events by source, stream and result: accepted
	// (acknowledged by Kafka), rejected (invalid), refused (valid, but shed
	// or not acknowledged), dead_lettered (written to the dead-letter topic).
	events  *prometheus.CounterVec
	produce *prometheus.HistogramVec
	retries *prometheus.CounterVec
}

// newGateMetrics registers the gate's metrics: its counters, and gauges of
// the two admissions (events, bytes) and the breaker.
func newGateMetrics(reg prometheus.Registerer, adm, admBytes *backpressure.Admission, br *backpressure.Breaker) (*gateMetrics, error) {
	m := &gateMetrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sluice", Subsystem: "ingest", Name: "events_total",
			Help: "Events received by the collectors, by source, stream and result (accepted, rejected, refused, dead_lettered).",
		}, []string{"source", "stream", "result"}),
		produce: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "sluice", Subsystem: "ingest", Name: "produce_duration_seconds",
			Help:    "Time from handing a batch's events to Kafka until all were acknowledged or it failed: the acknowledgement latency a producer sees.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"source", "stream", "result"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sluice", Subsystem: "ingest", Name: "commit_retries_total",
			Help: "Commits refused (load or Kafka) and retried by sources that hold acknowledgements instead of shedding, by source.",
		}, []string{"source"}),
	}
	collectors := []prometheus.Collector{
		m.events, m.produce, m.retries,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "sluice", Subsystem: "ingest", Name: "inflight_events",
			Help: "Events admitted and waiting for Kafka's acknowledgement.",
		}, func() float64 { return float64(adm.InFlight()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "sluice", Subsystem: "ingest", Name: "inflight_events_capacity",
			Help: "Most events that may be in flight at once.",
		}, func() float64 { return float64(adm.Capacity()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "sluice", Subsystem: "ingest", Name: "inflight_bytes",
			Help: "Bytes of the events admitted and waiting for Kafka's acknowledgement (key, value, headers and a per-message overhead).",
		}, func() float64 { return float64(admBytes.InFlight()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "sluice", Subsystem: "ingest", Name: "inflight_bytes_capacity",
			Help: "Most bytes of events that may be in flight at once (sized from --memory-limit).",
		}, func() float64 { return float64(admBytes.Capacity()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "sluice", Subsystem: "ingest", Name: "kafka_breaker_state",
			Help: "State of the Kafka circuit breaker: 0 closed, 1 half-open, 2 open.",
		}, func() float64 { return float64(br.State()) }),
	}
	for _, col := range collectors {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("ingest: register metrics: %w", err)
		}
	}
	return m, nil
}
