package ingest_test

import (
	"context"
	"strings"
	"testing"
	"time"

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
