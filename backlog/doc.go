// Package backlog warns before Kafka deletes events that nobody has read.
//
// A stream's topic keeps its messages for retention.ms. When the store
// falls behind (ClickHouse down, workers stalled) the oldest unread message
// grows older; once it is older than the retention, Kafka deletes it and it
// is lost without a trace. The collectors and the workers are separate
// processes that meet only in Kafka, so the Watcher judges the backlog from
// Kafka alone: for every partition of every watched topic it reads the
// consumer group's committed offset, the log start offset and the high
// watermark, and the timestamp of the first unread message. Its age,
// against the topic's retention.ms, is the alarm:
//
//   - alarm: the oldest unread message is at least Fraction (half, by
//     default) of the retention old. There is still time: the collectors
//     shed the stream's load (Shed) so that the backlog stops growing
//     while the store catches up.
//   - expired: the committed offset is below the log start offset. Kafka
//     already deleted offsets the group never read; Check names them.
//
// The package knows no stage of the pipeline: it is given a group, topics
// and the streams they carry, and it exports metrics, log lines, a
// readiness check and a shedding decision for whoever wants them.
package backlog
