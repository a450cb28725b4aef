package ingest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/internal/testkit"
)

func TestKafkaPing(t *testing.T) {
	p := testkit.NewKafkaProducer(t, testkit.StartKafka(t).Brokers)
	tests := []struct {
		name    string
		topics  []string
		wantErr string
	}{
		{name: "broker only"},
		{name: "existing topics", topics: []string{"sluice.iot_telemetry", "sluice.app_logs"}},
		{name: "missing topic", topics: []string{"sluice.iot_telemetry", "other.app_logs"}, wantErr: "topic other.app_logs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := p.Ping(ctx, tt.topics...)
			if (err == nil) != (tt.wantErr == "") || err != nil && !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Ping = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// A message for a topic the cluster does not have fails the call, naming
// the topic, instead of waiting.
func TestKafkaProducerUnknownTopic(t *testing.T) {
	p := testkit.NewKafkaProducer(t, testkit.StartKafka(t).Brokers)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := p.Produce(ctx, []ingest.Message{
		{Topic: "sluice.iot_telemetry", Key: []byte("a"), Value: []byte("{}")},
		{Topic: "no.such.topic", Key: []byte("a"), Value: []byte("{}")},
	})
	if err == nil || !strings.Contains(err.Error(), "no.such.topic") {
		t.Fatalf("Produce = %v, want an error naming no.such.topic", err)
	}
}

// Close writes what was gathered before it returns: a call waiting for its
// batch's linger is acknowledged, not dropped.
func TestKafkaProducerCloseFlushes(t *testing.T) {
	k := testkit.StartKafka(t)
	p, err := ingest.NewKafkaProducer(ingest.KafkaConfig{Brokers: k.Brokers, BatchTimeout: time.Minute, Logger: testkit.QuietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Ping(context.Background(), "sluice.app_logs"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- p.Produce(context.Background(), []ingest.Message{{Topic: "sluice.app_logs", Key: []byte("k"), Value: []byte(`{"n":1}`)}})
	}()
	time.Sleep(200 * time.Millisecond) // the message is gathered, waiting for a minute's linger
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Produce = %v after Close, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Produce still waiting after Close")
	}
	if got := k.ReadTopic(t, "sluice.app_logs"); len(got) != 1 || string(got[0].Value) != `{"n":1}` {
		t.Fatalf("topic holds %d messages, want the one produced", len(got))
	}
	if err := p.Produce(context.Background(), []ingest.Message{{Topic: "sluice.app_logs", Value: []byte("{}")}}); err == nil {
		t.Error("Produce after Close succeeded")
	}
}

// A partition whose leader moves is written to its new leader within the
// producer's retries. The Transport sends a request to the leader its own
// metadata names and refuses one whose partitions it finds led by two
// brokers, so the leaders the producer groups partitions by must follow
// the move too: a request with every partition, one of them moved, fails
// ("mismatching leaders") until they do.
func TestKafkaProducerFollowsAMovedLeader(t *testing.T) {
	k := testkit.StartKafka(t, testkit.KafkaBrokers(2))
	p, err := ingest.NewKafkaProducer(ingest.KafkaConfig{Brokers: k.Brokers, MetadataTTL: 200 * time.Millisecond, Logger: testkit.QuietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const topic = "sluice.app_logs"
	produce := func(round int) {
		t.Helper()
		msgs := make([]ingest.Message, 64)
		for i := range msgs {
			msgs[i] = ingest.Message{Topic: topic, Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, `{"round":%d}`, round)}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Produce(ctx, msgs); err != nil {
			t.Fatalf("Produce(round %d) = %v", round, err)
		}
	}
	produce(1)
	from := k.Cluster.LeaderFor(topic, 0)
	if err := k.Cluster.MoveTopicPartition(topic, 0, 1-from); err != nil {
		t.Fatal(err)
	}
	// The Transport learns of the move within its MetadataTTL, and the
	// producer must too.
	time.Sleep(500 * time.Millisecond)
	produce(2)
	if got := k.ReadTopic(t, topic); len(got) != 128 {
		t.Fatalf("topic holds %d messages, want 128", len(got))
	}
}
