package status

import (
	"math"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// The metrics the status is computed from, as the stages' own packages
// export them. Nothing here is invented: each name is registered by the
// package named beside it, and a rename there must be made here too (the
// e2e test TestStatusPage fails otherwise).
const (
	// ingest (gate): events by source, stream and result.
	metricIngestEvents = "sluice_ingest_events_total"
	// ingest (gate): Kafka acknowledgement latency by result; the count
	// of result="error" is the failed produce calls.
	metricIngestProduce = "sluice_ingest_produce_duration_seconds"
	// ingest (gate): the Kafka circuit breaker, 0 closed, 1 half-open, 2 open.
	metricIngestBreaker = "sluice_ingest_kafka_breaker_state"
	// workers: events written by sink and stream.
	metricSinkRows = "sluice_sink_rows_total"
	// workers: failed writes by sink, stream and kind.
	metricSinkErrors = "sluice_sink_errors_total"
	// workers: 1 while a sink's writes of a stream fail and are retried.
	metricSinkFailing = "sluice_sink_failing"
	// workers: events sent to the dead-letter topic by stream.
	metricDeadLetters = "sluice_dead_letters_total"
	// workers: messages a sink's lane has yet to read, by partition.
	metricWorkerLag = "sluice_worker_lag_messages"
	// sinks/nats: 1 while connected.
	metricNATSConnected = "sluice_nats_connected"
	// backlog: age of the oldest uncommitted message, by partition.
	metricBacklogAge = "sluice_kafka_backlog_age_seconds"
	// backlog: 1 while a partition's backlog nears retention.
	metricRetentionAlarm = "sluice_retention_alarm"
	// membudget: the ceiling, Go's share of it, and what Go holds.
	metricMemoryLimit   = "sluice_memory_limit_bytes"
	metricMemoryGoLimit = "sluice_memory_go_limit_bytes"
	metricMemoryGoUsed  = "sluice_memory_used_bytes"
	// Prometheus's process collector.
	metricResident  = "process_resident_memory_bytes"
	metricStartTime = "process_start_time_seconds"
)

// sinkKafka is what the collectors write to, shown as a sink beside the
// workers' clickhouse and nats.
const sinkKafka = "kafka"

// sinkStore is the workers' store; every other sink label is an output
// whose events count as published.
const sinkStore = "clickhouse"

type countKey struct {
	stream string
	stage  Stage
}

type partKey struct {
	stream    string
	partition int
}

// reading is one sample of the registry, reduced to the figures the status
// shows: cumulative counts (whose rates come from two readings) and the
// gauges' latest values.
type reading struct {
	at         time.Time
	counts     map[countKey]float64
	sinkRows   map[string]float64
	sinkErrors map[string]float64

	streams   map[string]bool
	lag       map[partKey]map[string]float64
	age       map[partKey]float64
	alarm     map[partKey]bool
	failing   map[string]map[string]bool // sink -> stream -> failing
	natsUp    *float64
	breaker   *float64
	memory    Memory
	startedAt time.Time
}

func newReading(at time.Time) *reading {
	return &reading{
		at:         at,
		counts:     map[countKey]float64{},
		sinkRows:   map[string]float64{},
		sinkErrors: map[string]float64{},
		streams:    map[string]bool{},
		lag:        map[partKey]map[string]float64{},
		age:        map[partKey]float64{},
		alarm:      map[partKey]bool{},
		failing:    map[string]map[string]bool{},
	}
}

// read reduces gathered metric families to a reading taken at.
func read(at time.Time, families []*dto.MetricFamily) *reading {
	r := newReading(at)
	for _, f := range families {
		for _, m := range f.GetMetric() {
			r.add(f.GetName(), labelsOf(m), m)
		}
	}
	return r
}

func labelsOf(m *dto.Metric) map[string]string {
	l := make(map[string]string, len(m.GetLabel()))
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

// value is a counter's or gauge's value, whichever m is.
func value(m *dto.Metric) float64 {
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	if g := m.GetGauge(); g != nil {
		return g.GetValue()
	}
	return m.GetUntyped().GetValue()
}

// add takes one series into the reading.
func (r *reading) add(name string, l map[string]string, m *dto.Metric) {
	v := value(m)
	switch name {
	case metricIngestEvents:
		r.addIngest(l["stream"], l["result"], v)
	case metricIngestProduce:
		if l["result"] == "error" {
			r.sinkErrors[sinkKafka] += float64(m.GetHistogram().GetSampleCount())
		}
	case metricIngestBreaker:
		r.breaker = &v
	case metricSinkRows:
		stage := StagePublished
		if l["sink"] == sinkStore {
			stage = StageStored
		}
		r.count(l["stream"], stage, v)
		r.sinkRows[l["sink"]] += v
	case metricSinkErrors:
		r.sinkErrors[l["sink"]] += v
	case metricDeadLetters:
		r.count(l["stream"], StageDeadLettered, v)
	default:
		r.addGauge(name, l, v)
	}
}

// addIngest counts one series of the collectors' events by result.
func (r *reading) addIngest(stream, result string, v float64) {
	switch result {
	case "accepted":
		r.count(stream, StageInKafka, v)
		r.count(stream, StageReceived, v)
		r.sinkRows[sinkKafka] += v
	case "rejected":
		r.count(stream, StageRejected, v)
		r.count(stream, StageReceived, v)
	case "refused":
		r.count(stream, StageRefused, v)
		r.count(stream, StageReceived, v)
	case "dead_lettered":
		// Already counted as rejected: dead letters at ingest are the
		// rejected events of sources that cannot answer the producer.
		r.count(stream, StageDeadLettered, v)
	}
}

func (r *reading) count(stream string, s Stage, v float64) {
	if stream == "" {
		return
	}
	r.streams[stream] = true
	r.counts[countKey{stream, s}] += v
}

// addGauge takes the gauges, whose latest value is all that matters.
func (r *reading) addGauge(name string, l map[string]string, v float64) {
	switch name {
	case metricWorkerLag:
		if k, ok := r.part(l); ok {
			if r.lag[k] == nil {
				r.lag[k] = map[string]float64{}
			}
			r.lag[k][l["sink"]] = v
		}
	case metricBacklogAge:
		if k, ok := r.part(l); ok {
			r.age[k] = v
		}
	case metricRetentionAlarm:
		if k, ok := r.part(l); ok {
			r.alarm[k] = v > 0
		}
	case metricSinkFailing:
		if r.failing[l["sink"]] == nil {
			r.failing[l["sink"]] = map[string]bool{}
		}
		r.failing[l["sink"]][l["stream"]] = v > 0
	case metricNATSConnected:
		r.natsUp = &v
	case metricMemoryLimit:
		r.memory.LimitBytes = v
	case metricMemoryGoLimit:
		r.memory.GoLimitBytes = v
	case metricMemoryGoUsed:
		r.memory.GoUsedBytes = v
	case metricResident:
		r.memory.ResidentBytes = v
	case metricStartTime:
		// The kernel counts start times in clock ticks: milliseconds are
		// all the precision there is, and drop the float's noise.
		r.startedAt = time.UnixMilli(int64(math.Round(v * 1000)))
	}
}

// part is the partition a series is labelled with.
func (r *reading) part(l map[string]string) (partKey, bool) {
	p, err := strconv.Atoi(l["partition"])
	if err != nil || l["stream"] == "" {
		return partKey{}, false
	}
	r.streams[l["stream"]] = true
	return partKey{l["stream"], p}, true
}
