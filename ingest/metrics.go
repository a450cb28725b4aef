package ingest

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluicehq/sluice/backpressure"
)

type metrics struct {
	// events counts events by stream and result: accepted (acknowledged by
	// Kafka), rejected (invalid), refused (valid, but shed or not acknowledged).
	events *prometheus.CounterVec
	// requests counts event posts by stream and HTTP status. The stream
	// label is empty for names that are not known streams.
	requests *prometheus.CounterVec
	produce  *prometheus.HistogramVec
	inflight prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, adm *backpressure.Admission, br *backpressure.Breaker) (*metrics, error) {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sluice", Subsystem: "ingest", Name: "events_total",
			Help: "Events posted to the HTTP collector, by stream and result (accepted, rejected, refused).",
		}, []string{"stream", "result"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sluice", Subsystem: "ingest", Name: "requests_total",
			Help: "Event posts answered, by stream and HTTP status code.",
		}, []string{"stream", "code"}),
		produce: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "sluice", Subsystem: "ingest", Name: "produce_duration_seconds",
			Help:    "Time from handing a request's events to Kafka until all were acknowledged or it failed.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"stream", "result"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "sluice", Subsystem: "ingest", Name: "inflight_requests",
			Help: "Event posts being handled.",
		}),
	}
	collectors := []prometheus.Collector{
		m.events, m.requests, m.produce, m.inflight,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "sluice", Subsystem: "ingest", Name: "inflight_events",
			Help: "Events admitted and waiting for Kafka's acknowledgement.",
		}, func() float64 { return float64(adm.InFlight()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "sluice", Subsystem: "ingest", Name: "inflight_events_capacity",
			Help: "Most events that may be in flight at once.",
		}, func() float64 { return float64(adm.Capacity()) }),
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
