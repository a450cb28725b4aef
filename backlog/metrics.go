package backlog

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are labelled by stream and partition, so that an alert names the
// stream an operator knows rather than its topic.
type metrics struct {
	age       *prometheus.GaugeVec
	retention *prometheus.GaugeVec
	alarm     *prometheus.GaugeVec
	expired   *prometheus.CounterVec
	errors    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		age: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_kafka_backlog_age_seconds",
			Help: "Age of the oldest message of a stream's partition that the consumer group has not committed (now minus its Kafka timestamp); 0 when the group is caught up.",
		}, []string{"stream", "partition"}),
		retention: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_kafka_retention_seconds",
			Help: "retention.ms of a stream's topic, in seconds; absent while unlimited or unknown.",
		}, []string{"stream"}),
		alarm: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_retention_alarm",
			Help: "1 while a partition's backlog age has reached the alarm fraction of its topic's retention, or offsets expired unread; the collectors shed the stream meanwhile.",
		}, []string{"stream", "partition"}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_kafka_backlog_expired_offsets_total",
			Help: "Offsets that Kafka deleted before the consumer group read them: events lost.",
		}, []string{"stream", "partition"}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_kafka_backlog_read_errors_total",
			Help: "Rounds of backlog readings from Kafka that failed in whole or in part; the last known state holds meanwhile.",
		}),
	}
	for _, c := range []prometheus.Collector{m.age, m.retention, m.alarm, m.expired, m.errors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("backlog: register metrics: %w", err)
		}
	}
	return m, nil
}

// show exports p's state.
func (m *metrics) show(p *partition, lost int64) {
	id := strconv.Itoa(p.id)
	m.age.WithLabelValues(p.stream, id).Set(p.age.Seconds())
	alarm := 0.0
	if p.alarm {
		alarm = 1
	}
	m.alarm.WithLabelValues(p.stream, id).Set(alarm)
	// Adding 0 still creates the series, so that increase() sees the
	// first loss.
	m.expired.WithLabelValues(p.stream, id).Add(float64(lost))
}
