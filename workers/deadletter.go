package workers

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
)

// DeadLetter is an event that cannot be delivered, with where it came from
// and why.
type DeadLetter struct {
	Stream    string
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Reason    string
}

// DeadLetterWriter stores dead letters durably.
type DeadLetterWriter interface {
	WriteDeadLetters(ctx context.Context, letters []DeadLetter) error
}

// KafkaDLQ writes dead letters to the dead-letter topic with acks=all.
type KafkaDLQ struct {
	w *kafka.Writer
}

// NewKafkaDLQ returns a writer to topic.
func NewKafkaDLQ(brokers []string, topic string) *KafkaDLQ {
	return &KafkaDLQ{w: &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        topic,
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
		WriteTimeout: 10 * time.Second,
	}}
}

// dlqRecord is the JSON value of a dead letter: the reason and origin next to
// the original event, so an operator can replay it after fixing the cause.
type dlqRecord struct {
	Stream    string          `json:"stream"`
	Topic     string          `json:"topic"`
	Partition int32           `json:"partition"`
	Offset    int64           `json:"offset"`
	Reason    string          `json:"reason"`
	FailedAt  string          `json:"failed_at"`
	Event     json.RawMessage `json:"event,omitempty"`
	// RawEvent carries a value that is not valid JSON, as a string.
	RawEvent string `json:"raw_event,omitempty"`
}

// WriteDeadLetters writes letters and returns once Kafka acknowledged all.
func (q *KafkaDLQ) WriteDeadLetters(ctx context.Context, letters []DeadLetter) error {
	msgs := make([]kafka.Message, len(letters))
	now := time.Now().UTC().Format(time.RFC3339Nano)
	for i, l := range letters {
		rec := dlqRecord{Stream: l.Stream, Topic: l.Topic, Partition: l.Partition, Offset: l.Offset, Reason: l.Reason, FailedAt: now}
		if json.Valid(l.Value) {
			rec.Event = l.Value
		} else {
			rec.RawEvent = string(l.Value)
		}
		v, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("dlq: encode: %w", err)
		}
		msgs[i] = kafka.Message{Key: l.Key, Value: v, Headers: []kafka.Header{
			{Key: "sluice-stream", Value: []byte(l.Stream)},
			{Key: "sluice-partition", Value: []byte(strconv.Itoa(int(l.Partition)))},
			{Key: "sluice-offset", Value: []byte(strconv.FormatInt(l.Offset, 10))},
		}}
	}
	if err := q.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("dlq: write %d letters: %w", len(letters), err)
	}
	return nil
}

// Close flushes and closes the writer.
func (q *KafkaDLQ) Close() error { return q.w.Close() }
