package deadletter

import (
	"strings"
	"testing"
	"time"
)

func TestEncodeDecode(t *testing.T) {
	now := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		letter    Letter
		wantEvent bool
		fromKafka bool
		headers   []string
	}{
		{
			name:      "worker letter with JSON event",
			letter:    Letter{Stream: "iot_telemetry", Topic: "sluice.iot_telemetry", Partition: 3, Offset: 42, Value: []byte(`{"event_id":"a"}`), Reason: "rejected by ClickHouse"},
			wantEvent: true, fromKafka: true,
			headers: []string{HeaderStream, HeaderPartition, HeaderOffset},
		},
		{
			name:    "collector letter with raw input",
			letter:  Letter{Stream: "app_logs", Source: "syslog", Origin: "127.0.0.1:5000", Value: []byte("<13>not json"), Reason: "syslog: cannot parse"},
			headers: []string{HeaderStream, HeaderSource},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, hs, err := Encode(tt.letter, now)
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, h := range hs {
				keys = append(keys, h.Key)
			}
			if strings.Join(keys, ",") != strings.Join(tt.headers, ",") {
				t.Errorf("headers %v, want %v", keys, tt.headers)
			}
			rec, err := Decode(v)
			if err != nil {
				t.Fatal(err)
			}
			l := tt.letter
			if rec.Stream != l.Stream || rec.Topic != l.Topic || rec.Partition != l.Partition || rec.Offset != l.Offset ||
				rec.Source != l.Source || rec.Origin != l.Origin || rec.Reason != l.Reason {
				t.Errorf("decoded %+v from %+v", rec, l)
			}
			if rec.FromKafka() != tt.fromKafka {
				t.Errorf("FromKafka = %v, want %v", rec.FromKafka(), tt.fromKafka)
			}
			if got := len(rec.Event) > 0; got != tt.wantEvent {
				t.Errorf("event kept as JSON = %v, want %v", got, tt.wantEvent)
			}
			if !tt.wantEvent && rec.RawEvent != string(l.Value) {
				t.Errorf("raw_event = %q, want %q", rec.RawEvent, l.Value)
			}
			if rec.FailedAt != "2026-11-30T10:00:00Z" {
				t.Errorf("failed_at = %q", rec.FailedAt)
			}
		})
	}
}

func TestDecodeRefusesForeignRecords(t *testing.T) {
	for _, v := range []string{`not json`, `{}`, `{"reason":"x"}`, `{"stream":"s"}`} {
		if _, err := Decode([]byte(v)); err == nil {
			t.Errorf("Decode(%s) accepted a record that is not a Sluice dead letter", v)
		}
	}
}
