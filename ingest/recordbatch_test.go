package ingest

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/segmentio/kafka-go/protocol"
)

// appendRecordBatch writes what kafka-go's own reader of record sets reads
// back field for field: keys (one nil), values, timestamps (one left to
// now), headers, offsets in order. (The broker's CRC check is exercised by
// every test that produces to the embedded broker.)
func TestAppendRecordBatch(t *testing.T) {
	at := time.UnixMilli(1_795_946_400_123)
	now := at.Add(time.Minute)
	msgs := []*Message{
		{Key: []byte("sensor-1"), Value: []byte(`{"a":1}`), Time: at},
		{Value: []byte(`{"b":2}`), Time: at.Add(-time.Second)},
		{Key: []byte(""), Value: bytes.Repeat([]byte("x"), 300), Headers: []Header{{Key: "sluice-reason", Value: []byte("bad")}, {Key: "empty"}}},
	}
	b := appendRecordBatch([]byte("prefix"), msgs, now)
	if !bytes.HasPrefix(b, []byte("prefix")) {
		t.Fatal("appendRecordBatch changed what was in the buffer")
	}
	var rs protocol.RecordSet
	if _, err := rs.ReadFrom(bytes.NewReader(b[len("prefix"):])); err != nil {
		t.Fatalf("kafka-go cannot read the batch: %v", err)
	}
	if rs.Version != 2 {
		t.Errorf("record set version %d, want 2", rs.Version)
	}
	for i := 0; ; i++ {
		r, err := rs.Records.ReadRecord()
		if err == io.EOF {
			if i != len(msgs) {
				t.Fatalf("%d records read, want %d", i, len(msgs))
			}
			return
		}
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		m := msgs[i]
		wantTime := m.Time
		if wantTime.IsZero() {
			wantTime = now
		}
		if r.Offset != int64(i) || !r.Time.Equal(wantTime.Truncate(time.Millisecond)) {
			t.Errorf("record %d: offset %d time %v, want %d %v", i, r.Offset, r.Time, i, wantTime)
		}
		if key := readAll(t, r.Key); (m.Key == nil) != (r.Key == nil) || !bytes.Equal(key, m.Key) {
			t.Errorf("record %d: key %q (nil %v), want %q", i, key, r.Key == nil, m.Key)
		}
		if value := readAll(t, r.Value); !bytes.Equal(value, m.Value) {
			t.Errorf("record %d: value %q, want %q", i, value, m.Value)
		}
		if len(r.Headers) != len(m.Headers) {
			t.Fatalf("record %d: %d headers, want %d", i, len(r.Headers), len(m.Headers))
		}
		for j, h := range r.Headers {
			if h.Key != m.Headers[j].Key || !bytes.Equal(h.Value, m.Headers[j].Value) {
				t.Errorf("record %d header %d: %q=%q, want %q=%q", i, j, h.Key, h.Value, m.Headers[j].Key, m.Headers[j].Value)
			}
		}
	}
}

func readAll(t *testing.T, b protocol.Bytes) []byte {
	t.Helper()
	if b == nil {
		return nil
	}
	v, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The bound the request buffer is sized by holds the batch.
func TestRecordBatchSize(t *testing.T) {
	msgs := []*Message{{Key: []byte("k"), Value: bytes.Repeat([]byte("v"), 1000), Headers: []Header{{Key: "h", Value: []byte("x")}}}, {Value: nil}}
	if got, bound := len(appendRecordBatch(nil, msgs, time.Now())), recordBatchSize(msgs); got > bound {
		t.Errorf("batch of %d bytes, bound %d", got, bound)
	}
}
