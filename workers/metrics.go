package workers

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/sinks"
)

// SinkMetrics are the metrics of delivery to the sinks, labelled by sink
// (clickhouse, nats) and stream. One set serves every Deliverer of a
// process; NewSinkMetrics registers it.
type SinkMetrics struct {
	written       *prometheus.CounterVec
	writeSeconds  *prometheus.HistogramVec
	retries       *prometheus.CounterVec
	errors        *prometheus.CounterVec
	failing       *prometheus.GaugeVec
	freshness     *prometheus.HistogramVec
	skipped       *prometheus.CounterVec
	duplicates    *prometheus.CounterVec
	deadLettered  *prometheus.CounterVec
	windowEvicted *prometheus.CounterVec
	checked       *prometheus.CounterVec
}

// NewSinkMetrics returns the sink metrics, registered with reg unless it is
// nil.
func NewSinkMetrics(reg prometheus.Registerer) *SinkMetrics {
	bySink := []string{"sink", "stream"}
	byStream := []string{"stream"}
	counter := func(name, help string, labels []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &SinkMetrics{
		written: counter("sluice_sink_rows_total", "Events written to the store or published by an output.", bySink),
		writeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_sink_write_seconds", Help: "Time of one write to a sink (one INSERT, one publish of a batch), by result.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"sink", "stream", "result"}),
		retries: counter("sluice_sink_retries_total", "Writes to a sink attempted again after a failure.", bySink),
		errors:  counter("sluice_sink_errors_total", "Failed writes to a sink, by kind: transient (retried), permanent (the data's fault: isolated and dead-lettered), progress (reading the sink's progress failed).", []string{"sink", "stream", "kind"}),
		failing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_sink_failing", Help: "1 while the last write to the sink, or read of its progress when a partition opens, failed and is being retried (the partition waits), 0 once one succeeds.",
		}, bySink),
		freshness: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_sink_event_freshness_seconds", Help: "Age of events (now minus received_at) when the sink took them.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 20),
		}, bySink),
		skipped:       counter("sluice_output_skipped_total", "Events an output skipped because it fell further behind than its maximum lag (the store still holds them).", bySink),
		duplicates:    counter("sluice_duplicates_skipped_total", "Events not written because their event_id was delivered within the dedupe window.", byStream),
		deadLettered:  counter("sluice_dead_letters_total", "Events sent to the dead-letter topic.", byStream),
		windowEvicted: counter("sluice_dedupe_evicted_early_total", "Event ids forgotten before the dedupe window elapsed, for lack of room; raise the bound if this grows.", byStream),
		checked: counter("sluice_output_checked_total", "Events an output checked before publishing, by who decided whether the store keeps them: the store's lane (by=store: the output reads only the envelope) or the output itself (by=output: it validates the event in full and looks its id up, as when it runs ahead of the store).",
			[]string{"sink", "stream", "by"}),
	}
	if reg != nil {
		reg.MustRegister(m.written, m.writeSeconds, m.retries, m.errors, m.failing, m.freshness, m.skipped,
			m.duplicates, m.deadLettered, m.windowEvicted, m.checked)
	}
	return m
}

// observeWrite records one write to a sink and its outcome.
func (m *SinkMetrics) observeWrite(sink, stream string, start time.Time, err error) {
	result := "ok"
	switch {
	case err == nil:
		m.failing.WithLabelValues(sink, stream).Set(0)
	case sinks.IsPermanent(err):
		result = "permanent"
		m.errors.WithLabelValues(sink, stream, "permanent").Inc()
	default:
		result = "transient"
		m.errors.WithLabelValues(sink, stream, "transient").Inc()
		m.failing.WithLabelValues(sink, stream).Set(1)
	}
	m.writeSeconds.WithLabelValues(sink, stream, result).Observe(time.Since(start).Seconds())
}

// observeProgress records one read of the store's progress when a
// partition opens: a store that cannot be reached fails there before any
// write, and would otherwise look healthy while every partition waits.
func (m *SinkMetrics) observeProgress(sink, stream string, err error) {
	if err != nil {
		m.errors.WithLabelValues(sink, stream, "progress").Inc()
		m.failing.WithLabelValues(sink, stream).Set(1)
		return
	}
	m.failing.WithLabelValues(sink, stream).Set(0)
}
