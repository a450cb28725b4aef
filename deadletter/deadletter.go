// Package deadletter defines the one record format of Sluice's dead-letter
// topic (sluice.dlq): what the collectors write for input they cannot
// accept, what the workers write for events a sink refused, and what
// `sluice verify` reads to excuse an event that is absent on purpose.
//
// A record is JSON: the reason and origin next to the original event, so
// that an operator can see why and replay it after fixing the cause.
package deadletter

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Letter is one event or input that cannot be delivered, with where it came
// from and why.
type Letter struct {
	// Stream is the stream the event was meant for; empty when a collector
	// could not tell (an unknown MQTT route, say).
	Stream string
	// Topic, Partition and Offset say where the event sat in Kafka; Topic
	// is empty for a letter written by a collector before the event ever
	// reached Kafka.
	Topic     string
	Partition int32
	Offset    int64
	// Source names the collector that refused the input (http, mqtt,
	// syslog, relp); empty for letters written by the workers.
	Source string
	// Origin says where the input came from within its source: the MQTT
	// topic, the syslog peer's address.
	Origin string
	Key    []byte
	// Value is the event as received: JSON is kept as JSON, anything else
	// is carried as a string.
	Value  []byte
	Reason string
	// SkippedBy names what skipped offsets Offset through SkippedThrough:
	// an output (nats) that fell further behind than it may, or refused an
	// event for good, while the store holds them; or SkippedByRetention, a
	// range Kafka deleted before the store read it, which an operator
	// accepted as lost. Either way the record is a trail for operators and
	// excuses no event's absence from the store.
	SkippedBy      string
	SkippedThrough int64
}

// SkippedByRetention is the SkippedBy of a range lost to Kafka retention.
const SkippedByRetention = "kafka-retention"

// Record is the JSON form of a Letter in the dead-letter topic.
type Record struct {
	Stream    string `json:"stream"`
	Topic     string `json:"topic,omitempty"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Source    string `json:"source,omitempty"`
	Origin    string `json:"origin,omitempty"`
	Reason    string `json:"reason"`
	SkippedBy string `json:"skipped_by,omitempty"`
	// SkippedThrough is the last offset of a skipped range.
	SkippedThrough int64           `json:"skipped_through,omitempty"`
	FailedAt       string          `json:"failed_at"`
	Event          json.RawMessage `json:"event,omitempty"`
	// RawEvent carries a value that is not valid JSON, as a string.
	RawEvent string `json:"raw_event,omitempty"`
}

// FromKafka reports whether the record stands for a message that was in a
// stream's topic (a worker's letter), as opposed to input a collector
// refused before it reached Kafka.
func (r Record) FromKafka() bool { return r.Topic != "" }

// Skip reports whether the record stands for a range an output skipped,
// rather than an event that could not be delivered at all.
func (r Record) Skip() bool { return r.SkippedBy != "" }

// Header names set on every dead-letter message, so that tools can filter
// without decoding the value.
const (
	HeaderStream    = "sluice-stream"
	HeaderPartition = "sluice-partition"
	HeaderOffset    = "sluice-offset"
	HeaderSource    = "sluice-source"
)

// Header is one Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// Encode returns the record value and headers of l, stamped failed at now.
func Encode(l Letter, now time.Time) ([]byte, []Header, error) {
	rec := Record{
		Stream: l.Stream, Topic: l.Topic, Partition: l.Partition, Offset: l.Offset,
		Source: l.Source, Origin: l.Origin, Reason: l.Reason,
		SkippedBy: l.SkippedBy, SkippedThrough: l.SkippedThrough,
		FailedAt: now.UTC().Format(time.RFC3339Nano),
	}
	if json.Valid(l.Value) {
		rec.Event = l.Value
	} else {
		rec.RawEvent = string(l.Value)
	}
	v, err := json.Marshal(rec)
	if err != nil {
		return nil, nil, fmt.Errorf("dead letter: encode: %w", err)
	}
	hs := []Header{{Key: HeaderStream, Value: []byte(l.Stream)}}
	if l.Topic != "" {
		hs = append(hs,
			Header{Key: HeaderPartition, Value: []byte(strconv.Itoa(int(l.Partition)))},
			Header{Key: HeaderOffset, Value: []byte(strconv.FormatInt(l.Offset, 10))})
	}
	if l.Source != "" {
		hs = append(hs, Header{Key: HeaderSource, Value: []byte(l.Source)})
	}
	return v, hs, nil
}

// Decode parses a dead-letter value. It fails on anything that is not a
// Sluice dead letter (no stream and no source).
func Decode(value []byte) (Record, error) {
	var rec Record
	if err := json.Unmarshal(value, &rec); err != nil {
		return Record{}, fmt.Errorf("dead letter: %w", err)
	}
	if rec.Reason == "" || (rec.Stream == "" && rec.Source == "") {
		return Record{}, fmt.Errorf("dead letter: not a Sluice dead-letter record")
	}
	return rec, nil
}
