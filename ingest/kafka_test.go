package ingest_test

import (
	"context"
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
