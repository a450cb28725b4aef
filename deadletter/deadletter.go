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

	"github.com/sluicehq/sluice/schemas"
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
	Value []byte
	// EventID is the event's id where the caller knows it; Encode reads it
	// from Value otherwise, when it has to cut Value to fit.
	EventID string
	Reason  string
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
	// RawEvent carries a value that is not valid JSON, as a string, or
	// the beginning of one too large to carry whole (Truncated).
	RawEvent string `json:"raw_event,omitempty"`
	// Truncated says that the event was cut to fit the record: RawEvent
	// holds its first bytes, EventBytes its size and EventID its id (the
	// cut event is no longer JSON, and verify needs the id).
	Truncated  bool   `json:"truncated,omitempty"`
	EventBytes int    `json:"event_bytes,omitempty"`
	EventID    string `json:"event_id,omitempty"`
}

// ID returns the event_id the record stands for: EventID where the event
// was cut, else the event's own event_id, or "" when it has none.
func (r Record) ID() string {
	if r.EventID != "" || len(r.Event) == 0 {
		return r.EventID
	}
	return eventID(r.Event)
}

// eventID reads the string event_id of a JSON object, or "".
func eventID(v []byte) string {
	var ev struct {
		EventID any `json:"event_id"`
	}
	if json.Unmarshal(v, &ev) != nil {
		return ""
	}
	id, _ := ev.EventID.(string)
	return id
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

// MaxRecordBytes is the bound Encode's callers that write to Kafka use: a
// dead-letter message (key, value and headers) fits under both kafka-go's
// default BatchBytes and Kafka's default message.max.bytes (about 1 MiB),
// with room for the record's framing. A letter refused for its size would
// be retried without end and stall the partition that wrote it.
const MaxRecordBytes = 1_000_000

// Bounds on the parts of a record other than the event, which no caller
// needs whole: a database's error text can be long, and a partition key
// has no bound of its own in a custom schema.
const (
	maxReasonBytes = 4096
	maxOriginBytes = 1024
	maxKeyBytes    = 4096
	// framing is what a Kafka record adds to its key, value and headers,
	// with room to spare.
	framing = 512
)

// Encode returns the record key, value and headers of l, stamped failed at
// now, together at most maxBytes long: an event too large to fit whole is
// cut (Record.Truncated), the reason and origin are cut to a few KiB, and a
// key longer than a few KiB is dropped.
func Encode(l Letter, now time.Time, maxBytes int) (key, value []byte, hs []Header, err error) {
	rec := Record{
		Stream: l.Stream, Topic: l.Topic, Partition: l.Partition, Offset: l.Offset,
		Source: l.Source, Origin: schemas.Cut(l.Origin, maxOriginBytes), Reason: schemas.Cut(l.Reason, maxReasonBytes),
		SkippedBy: l.SkippedBy, SkippedThrough: l.SkippedThrough,
		FailedAt: now.UTC().Format(time.RFC3339Nano),
	}
	if json.Valid(l.Value) {
		rec.Event = l.Value
	} else {
		rec.RawEvent = string(l.Value)
	}
	key = l.Key
	if len(key) > maxKeyBytes {
		key = nil // it only spreads letters over partitions
	}
	hs = headers(l)
	room := maxBytes - len(key) - framing
	for _, h := range hs {
		room -= len(h.Key) + len(h.Value)
	}
	v, err := json.Marshal(rec)
	if err == nil && len(v) > room {
		v, err = truncated(rec, l, room)
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("dead letter: encode: %w", err)
	}
	return key, v, hs, nil
}

// truncated encodes rec with the event cut to fit in room bytes. JSON
// escaping can make a string up to six times longer, so the cut shrinks
// in proportion to what the last attempt overshot until the record fits.
func truncated(rec Record, l Letter, room int) ([]byte, error) {
	rec.Event, rec.RawEvent = nil, ""
	rec.Truncated, rec.EventBytes = true, len(l.Value)
	rec.EventID = l.EventID
	if rec.EventID == "" && json.Valid(l.Value) {
		rec.EventID = eventID(l.Value)
	}
	rec.EventID = schemas.Cut(rec.EventID, maxKeyBytes)
	base, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	keep := room - len(base)
	for range 8 {
		if keep <= 0 {
			break
		}
		rec.RawEvent = schemas.Cut(string(l.Value), keep)
		v, err := json.Marshal(rec)
		if err != nil || len(v) <= room {
			return v, err
		}
		// Scale the cut by how much escaping grew what was kept.
		keep = int(int64(len(rec.RawEvent)) * int64(room-len(base)) / int64(len(v)-len(base)))
		keep -= 16
	}
	rec.RawEvent = ""
	return base, nil
}

// headers returns the headers of l.
func headers(l Letter) []Header {
	hs := []Header{{Key: HeaderStream, Value: []byte(l.Stream)}}
	if l.Topic != "" {
		hs = append(hs,
			Header{Key: HeaderPartition, Value: []byte(strconv.Itoa(int(l.Partition)))},
			Header{Key: HeaderOffset, Value: []byte(strconv.FormatInt(l.Offset, 10))})
	}
	if l.Source != "" {
		hs = append(hs, Header{Key: HeaderSource, Value: []byte(l.Source)})
	}
	return hs
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
