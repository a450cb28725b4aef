package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// A partition the broker refuses for good stays failed when a retry of
// another partition of the same batch succeeds: its callers must not be
// told their messages were written. The retry sends only what failed
// retriably; what still fails after MaxAttempts stays failed.
func TestRetrySendKeepsEveryFailure(t *testing.T) {
	a, b, c := topicPartition{"t", 0}, topicPartition{"t", 1}, topicPartition{"t", 2}
	p := &KafkaProducer{cfg: KafkaConfig{MaxAttempts: 3}, log: slog.New(slog.DiscardHandler)}
	batch := &produceBatch{order: []topicPartition{a, b, c}, done: make(chan struct{})}
	var sent [][]topicPartition
	p.retrySend(batch, func(_ *produceBatch, pending []topicPartition) map[topicPartition]error {
		sent = append(sent, pending)
		failed := map[topicPartition]error{}
		for _, tp := range pending {
			switch {
			case tp == a:
				failed[tp] = kafka.MessageSizeTooLarge // for good
			case tp == b && len(sent) == 1:
				failed[tp] = kafka.NotLeaderForPartition // once
			case tp == c:
				failed[tp] = kafka.RequestTimedOut // every time
			}
		}
		return failed
	})
	if got, want := fmt.Sprint(sent), fmt.Sprint([][]topicPartition{{a, b, c}, {b, c}, {c}}); got != want {
		t.Errorf("attempts sent %s, want %s", got, want)
	}
	if !errors.Is(batch.failed[a], kafka.MessageSizeTooLarge) || batch.failed[b] != nil || !errors.Is(batch.failed[c], kafka.RequestTimedOut) {
		t.Errorf("failed = %v; want %v refused, %v written, %v timed out", batch.failed, a, b, c)
	}
}

// BenchmarkProducerPartitions is what a Produce call of 100 messages costs
// before it gathers them: their partitions, from the leaders it keeps.
func BenchmarkProducerPartitions(b *testing.B) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0), kfake.SeedTopics(16, "bench"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	p, err := NewKafkaProducer(KafkaConfig{Brokers: c.ListenAddrs(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	if err := p.Ping(ctx, "bench"); err != nil {
		b.Fatal(err)
	}
	msgs := make([]Message, 100)
	for i := range msgs {
		msgs[i] = Message{Topic: "bench", Key: fmt.Appendf(nil, "device-%d", i)}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.partitions(ctx, msgs); err != nil {
			b.Fatal(err)
		}
	}
}
