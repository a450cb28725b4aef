package deadletter

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
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
			_, v, hs, err := Encode(tt.letter, now, MaxRecordBytes)
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

// Every letter fits the bound, however large its event, reason or key, and
// a cut event keeps its id, so that verify can still excuse it.
func TestEncodeBoundsTheRecord(t *testing.T) {
	now := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	big := `{"event_id":"big-1","msg":"` + strings.Repeat("x", 3<<20) + `"}`
	quotes := `{"event_id":"q-1","msg":"` + strings.Repeat(`\"`, 1<<20) + `"}`
	controls := strings.Repeat("\x01", 2<<20) // not JSON: raw_event, six bytes escaped per byte
	utf := strings.Repeat("é", 1<<20)
	tests := []struct {
		name      string
		letter    Letter
		max       int
		truncated bool
		wantID    string
		keyKept   bool
	}{
		{"small letter whole", Letter{Stream: "s", Topic: "t", Value: []byte(`{"event_id":"a"}`), Key: []byte("k"), Reason: "r"}, MaxRecordBytes, false, "a", true},
		{"large JSON event", Letter{Stream: "s", Topic: "t", Value: []byte(big), Key: []byte("k"), Reason: "r"}, MaxRecordBytes, true, "big-1", true},
		{"escapes expand", Letter{Stream: "s", Topic: "t", Value: []byte(quotes), Reason: "r"}, MaxRecordBytes, true, "q-1", false},
		{"control characters, not JSON", Letter{Stream: "s", Source: "syslog", Value: []byte(controls), Reason: "r"}, MaxRecordBytes, true, "", false},
		{"multi-byte characters cut whole", Letter{Stream: "s", Source: "mqtt", Value: []byte(utf), Reason: "r"}, 64 << 10, true, "", false},
		{"id given by the caller", Letter{Stream: "s", Topic: "t", Value: []byte(big[:2<<20]), EventID: "given", Reason: "r"}, MaxRecordBytes, true, "given", false},
		{"long reason and key", Letter{Stream: "s", Topic: "t", Value: []byte(`{"event_id":"b"}`), Key: []byte(strings.Repeat("k", 1<<20)), Reason: strings.Repeat("r", 1<<20)}, MaxRecordBytes, false, "b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, v, hs, err := Encode(tt.letter, now, tt.max)
			if err != nil {
				t.Fatal(err)
			}
			size := len(k) + len(v)
			for _, h := range hs {
				size += len(h.Key) + len(h.Value)
			}
			if size > tt.max-framing {
				t.Errorf("record of %d bytes, over the bound %d", size, tt.max-framing)
			}
			rec, err := Decode(v)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Truncated != tt.truncated {
				t.Fatalf("truncated = %v, want %v", rec.Truncated, tt.truncated)
			}
			if got := rec.ID(); got != tt.wantID {
				t.Errorf("ID() = %q, want %q", got, tt.wantID)
			}
			if (len(k) > 0) != tt.keyKept || (tt.keyKept && string(k) != string(tt.letter.Key)) {
				t.Errorf("key kept = %v, want %v", len(k) > 0, tt.keyKept)
			}
			if len(rec.Reason) > maxReasonBytes {
				t.Errorf("reason of %d bytes", len(rec.Reason))
			}
			if !tt.truncated {
				return
			}
			if rec.EventBytes != len(tt.letter.Value) {
				t.Errorf("event_bytes = %d, want %d", rec.EventBytes, len(tt.letter.Value))
			}
			if !strings.HasPrefix(string(tt.letter.Value), rec.RawEvent) || len(rec.RawEvent) < tt.max/8 {
				t.Errorf("raw_event is not a prefix of the event of useful length (%d bytes)", len(rec.RawEvent))
			}
			if !utf8.ValidString(rec.RawEvent) && utf8.Valid(tt.letter.Value) {
				t.Errorf("the cut split a character")
			}
		})
	}
}
