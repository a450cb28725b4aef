package status

import "time"

// ShapeVersion is the version of the JSON shape of GET /api/status. It
// changes only when a field changes meaning or goes away; new fields may be
// added within a version, so clients must ignore fields they do not know.
const ShapeVersion = 1

// Stage is one step an event goes through, named as in the JSON and on the
// page. A process reports only the stages of its role.
type Stage string

// The stages, in the order events pass them. Ingest stages are counted by
// the collectors (sluice_ingest_events_total), work stages by the workers
// (sluice_sink_rows_total, sluice_dead_letters_total).
const (
	// StageReceived counts every event a collector answered for: in
	// Kafka, rejected or refused. A refused event that its producer sends
	// again is counted again.
	StageReceived Stage = "received"
	// StageRejected counts events refused for their content (invalid,
	// malformed); the producer is told, or they are dead-lettered.
	StageRejected Stage = "rejected"
	// StageRefused counts valid events that were not taken, for load, a
	// shed stream or an unavailable Kafka: the producer should retry.
	StageRefused Stage = "refused"
	// StageInKafka counts events acknowledged by Kafka (acks=all): the
	// collector accepts an event only then, so this is also "accepted".
	StageInKafka Stage = "in_kafka"
	// StageStored counts events written to ClickHouse.
	StageStored Stage = "stored"
	// StagePublished counts events published to NATS.
	StagePublished Stage = "published"
	// StageDeadLettered counts events sent to the dead-letter topic, by
	// the collectors (invalid input of MQTT and syslog) and by the workers
	// (failed after retries).
	StageDeadLettered Stage = "dead_lettered"
)

// AllStages lists every stage in pipeline order, the order of the page's
// and `sluice top`'s columns.
var AllStages = []Stage{StageReceived, StageRejected, StageRefused, StageInKafka, StageStored, StagePublished, StageDeadLettered}

// Status is the answer of GET /api/status: what one Sluice process is
// doing, computed from its own metrics.
type Status struct {
	// Version is ShapeVersion.
	Version int `json:"version"`
	// Role is the process's --role: ingest, work or all.
	Role string `json:"role"`
	// Stages are the stages this process counts, in pipeline order; each
	// stream's Stages has exactly these keys.
	Stages []Stage `json:"stages"`
	// StartedAt is when the process started.
	StartedAt time.Time `json:"started_at"`
	// UptimeSeconds is SampledAt less StartedAt.
	UptimeSeconds float64 `json:"uptime_seconds"`
	// SampledAt is when the metrics behind this answer were read.
	SampledAt time.Time `json:"sampled_at"`
	// WindowSeconds is the span the rates are averaged over (0 until two
	// samples exist, when every rate is 0).
	WindowSeconds float64 `json:"window_seconds"`
	// Streams has one entry per stream the process knows, sorted by name.
	Streams []Stream `json:"streams"`
	// Partitions has one entry per stream partition the process watches
	// or works on, sorted by stream then partition.
	Partitions []Partition `json:"partitions"`
	// Sinks has one entry per place this process writes events to:
	// kafka for the collectors, clickhouse and nats for the workers.
	Sinks []Sink `json:"sinks"`
	// Memory is the memory in use against --memory-limit.
	Memory Memory `json:"memory"`
}

// Stream is one stream's counts, by stage.
type Stream struct {
	// Name is the stream's name (iot_telemetry, app_logs, ...).
	Name string `json:"name"`
	// Stages holds a figure for each of Status.Stages.
	Stages map[Stage]Figure `json:"stages"`
}

// Figure is a count of events at one stage.
type Figure struct {
	// Total is the number of events since the process started.
	Total float64 `json:"total"`
	// Rate is events per second over the last WindowSeconds.
	Rate float64 `json:"rate"`
}

// Partition is one Kafka partition of a stream's topic.
type Partition struct {
	// Stream names the stream whose topic the partition belongs to.
	Stream string `json:"stream"`
	// Partition is the partition's number.
	Partition int `json:"partition"`
	// BacklogAgeSeconds is how old the oldest event the consumer group
	// has not committed is: 0 when the workers are caught up.
	BacklogAgeSeconds float64 `json:"backlog_age_seconds"`
	// Alarm is true while the backlog nears the topic's retention (or
	// offsets expired unread); the collectors shed the stream meanwhile.
	Alarm bool `json:"alarm"`
	// Lag is, per sink this worker delivers the partition to, how many
	// messages it has yet to read. Absent on processes that do not work on
	// the partition.
	Lag map[string]float64 `json:"lag,omitempty"`
}

// SinkState says whether a sink takes events.
type SinkState string

// The sink states.
const (
	// SinkUp: the last writes succeeded.
	SinkUp SinkState = "up"
	// SinkFailing: writes of some streams fail and are being retried, or
	// Kafka's breaker is probing after failures.
	SinkFailing SinkState = "failing"
	// SinkDown: not connected (NATS), or Kafka's breaker is open.
	SinkDown SinkState = "down"
)

// Sink is the state of one place events are written to.
type Sink struct {
	// Name is kafka, clickhouse or nats.
	Name string `json:"name"`
	// State is up, failing or down.
	State SinkState `json:"state"`
	// FailingStreams lists the streams whose last write failed, sorted.
	FailingStreams []string `json:"failing_streams,omitempty"`
	// Rate is events written per second over the window.
	Rate float64 `json:"rate"`
	// ErrorRate is failed writes per second over the window (a write is
	// one batch, not one event).
	ErrorRate float64 `json:"error_rate"`
}

// Memory is the process's memory against its ceiling.
type Memory struct {
	// LimitBytes is --memory-limit; 0 when the process has none.
	LimitBytes float64 `json:"limit_bytes"`
	// GoLimitBytes is the Go runtime's soft limit derived from it.
	GoLimitBytes float64 `json:"go_limit_bytes"`
	// GoUsedBytes is the memory the Go runtime holds, as its limit counts.
	GoUsedBytes float64 `json:"go_used_bytes"`
	// ResidentBytes is the process's resident set (RSS), what the
	// ceiling is about.
	ResidentBytes float64 `json:"resident_bytes"`
}
