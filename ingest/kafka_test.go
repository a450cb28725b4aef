package ingest

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/kafkatopic"
	"github.com/twmb/franz-go/pkg/kfake"
)

const testPartitions = 4

// startKafka runs an embedded Kafka-protocol broker with Sluice's topics.
func startKafka(t testing.TB) *kfake.Cluster {
	t.Helper()
	topics := []string{kafkatopic.Name(kafkatopic.DefaultPrefix, "iot_telemetry"), kafkatopic.Name(kafkatopic.DefaultPrefix, "app_logs")}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0), kfake.SeedTopics(testPartitions, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	return cluster
}

func newTestKafkaProducer(t testing.TB, brokers []string) *KafkaProducer {
	t.Helper()
	p, err := NewKafkaProducer(KafkaConfig{Brokers: brokers, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close producer: %v", err)
		}
	})
	return p
}

func TestKafkaPing(t *testing.T) {
	cluster := startKafka(t)
	p := newTestKafkaProducer(t, cluster.ListenAddrs())
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
