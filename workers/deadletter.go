package workers

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/deadletter"
	"github.com/sluicehq/sluice/kafkaconn"
)

// DeadLetter is an event that cannot be delivered, with where it came
// from and why.
type DeadLetter = deadletter.Letter

// DeadLetterWriter stores dead letters durably.
type DeadLetterWriter interface {
	WriteDeadLetters(ctx context.Context, letters []DeadLetter) error
}

// KafkaDLQ writes dead letters to the dead-letter topic with acks=all.
type KafkaDLQ struct {
	w *kafka.Writer
}

// NewKafkaDLQ returns a writer to topic on brokers, connecting with sec's
// TLS and SASL.
func NewKafkaDLQ(brokers []string, sec kafkaconn.Security, topic string) *KafkaDLQ {
	return &KafkaDLQ{w: &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Transport:    sec.Shared(),
		Topic:        topic,
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
		WriteTimeout: 10 * time.Second,
		// A message larger than BatchBytes is refused by the client: set
		// it, rather than rely on the default, above the bound Encode
		// keeps every letter under.
		BatchBytes: 1 << 20,
	}}
}

// WriteDeadLetters writes letters and returns once Kafka acknowledged all.
func (q *KafkaDLQ) WriteDeadLetters(ctx context.Context, letters []DeadLetter) error {
	msgs := make([]kafka.Message, len(letters))
	now := time.Now()
	for i, l := range letters {
		k, v, hs, err := deadletter.Encode(l, now, deadletter.MaxRecordBytes)
		if err != nil {
			return err
		}
		msgs[i] = kafka.Message{Key: k, Value: v, Headers: kafkaHeaders(hs)}
	}
	if err := q.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("dlq: write %d letters: %w", len(letters), err)
	}
	return nil
}

// Close flushes and closes the writer.
func (q *KafkaDLQ) Close() error { return q.w.Close() }

func kafkaHeaders(hs []deadletter.Header) []kafka.Header {
	out := make([]kafka.Header, len(hs))
	for i, h := range hs {
		out[i] = kafka.Header{Key: h.Key, Value: h.Value}
	}
	return out
}
