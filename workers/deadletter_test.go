package workers

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/deadletter"
	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/kafkaconn"
	"github.com/sluicehq/sluice/kafkatopic"
)

// A dead letter larger than Kafka takes in one message goes out cut to fit,
// with its id, rather than failing for ever and stalling its partition.
func TestKafkaDLQWritesOversizedLetters(t *testing.T) {
	k := testkit.StartKafka(t)
	q := NewKafkaDLQ(k.Brokers, kafkaconn.Security{}, kafkatopic.DLQ(kafkatopic.DefaultPrefix))
	defer q.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	big := `{"event_id":"huge-1","msg":"` + strings.Repeat("x", 3<<20) + `"}`
	letters := []DeadLetter{
		{Stream: testStream, Topic: testkit.StreamTopic(testStream), Partition: 1, Offset: 7, Key: []byte("dev-1"), Value: []byte(`{"event_id":"small-1"}`), Reason: "rejected by clickhouse"},
		{Stream: testStream, Topic: testkit.StreamTopic(testStream), Partition: 1, Offset: 8, Key: []byte("dev-1"), Value: []byte(big), Reason: "refused by nats: " + strings.Repeat("maximum payload exceeded; ", 1000)},
	}
	if err := q.WriteDeadLetters(ctx, letters); err != nil {
		t.Fatalf("WriteDeadLetters: %v", err)
	}
	recs := k.DeadLetters(t)
	if len(recs) != 2 {
		t.Fatalf("%d letters in the topic, want 2", len(recs))
	}
	byOffset := map[int64]deadletter.Record{}
	for _, r := range recs {
		byOffset[r.Offset] = r
	}
	if r := byOffset[7]; r.Truncated || r.ID() != "small-1" {
		t.Errorf("small letter: truncated %v, id %q", r.Truncated, r.ID())
	}
	r := byOffset[8]
	if !r.Truncated || r.ID() != "huge-1" || r.EventBytes != len(big) || !strings.HasPrefix(big, r.RawEvent) || len(r.RawEvent) < 500_000 {
		t.Errorf("large letter: truncated %v, id %q, event_bytes %d, %d bytes kept", r.Truncated, r.ID(), r.EventBytes, len(r.RawEvent))
	}
}
