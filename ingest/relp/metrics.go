package relp

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the RELP server's own figures; what became of the events
// (accepted, dead-lettered, refused) is counted by the gate under
// source="relp".
type metrics struct {
	conns          prometheus.Gauge
	refused        prometheus.Counter
	received       prometheus.Counter
	answered       prometheus.Counter
	parseFailures  prometheus.Counter
	protocolErrors *prometheus.CounterVec
	latency        prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, buffer *buffer) (*metrics, error) {
	m := &metrics{
		conns: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "sluice", Subsystem: "relp", Name: "connections",
			Help: "RELP connections open.",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sluice", Subsystem: "relp", Name: "connections_refused_total",
			Help: "RELP connections closed at once because --relp-max-connections were open.",
		}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sluice", Subsystem: "relp", Name: "frames_received_total",
			Help: "syslog frames read from RELP senders.",
		}),
		answered: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sluice", Subsystem: "relp", Name: "frames_answered_total",
			Help: "syslog frames answered with rsp 200, each after Kafka acknowledged its event or dead letter.",
		}),
		parseFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sluice", Subsystem: "relp", Name: "parse_failures_total",
			Help: "syslog frames whose line could not be parsed (sent to the dead-letter topic).",
		}),
		protocolErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sluice", Subsystem: "relp", Name: "connection_errors_total",
			Help: "RELP connections closed by the server for what the peer did or did not do, by reason (invalid_frame, frame_too_large, stalled, txnr, protocol, idle).",
		}, []string{"reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "sluice", Subsystem: "relp", Name: "answer_latency_seconds",
			Help:    "Time from reading a syslog frame to writing its rsp 200: what a sender waits for its acknowledgement.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
	}
	held := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "sluice", Subsystem: "relp", Name: "buffer_bytes",
		Help: "Bytes of RELP frames read and not yet answered, frames being read included, over all connections (at most --relp-max-buffer-bytes).",
	}, func() float64 { return float64(buffer.inUse()) })
	waiting := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "sluice", Subsystem: "relp", Name: "buffer_waiting",
		Help: "RELP connections whose reading is paused because --relp-max-buffer-bytes are held.",
	}, func() float64 { return float64(buffer.waiting()) })
	for _, c := range []prometheus.Collector{m.conns, m.refused, m.received, m.answered, m.parseFailures, m.protocolErrors, m.latency, held, waiting} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("relp: register metrics: %w", err)
		}
	}
	return m, nil
}
