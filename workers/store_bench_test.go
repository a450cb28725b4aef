package workers

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks"
)

// discardStore stores nothing and reads each row's fields, as a store
// building its columns would.
type discardStore struct{ sink int }

func (s *discardStore) Write(_ context.Context, st *schemas.Stream, _ int32, rows []sinks.Row) error {
	for _, r := range rows {
		v, _ := r.Record.Str(0)
		s.sink += len(v)
	}
	return nil
}

func (*discardStore) Progress(context.Context, *schemas.Stream, int32) (int64, bool, error) {
	return 0, false, nil
}

func (*discardStore) Resume(context.Context, *schemas.Stream, int32, time.Duration, int) (sinks.Resumed, error) {
	return sinks.Resumed{}, nil
}

func (*discardStore) Name() string { return "discard" }

// BenchmarkStoreBatch is the store's lane taking one batch of 2,000
// iot_telemetry events through Prepare and Deliver, with the garbage
// collector running as in production: what it allocates for a batch
// (Messages, Decoded, Records, rows) and frees again counts.
func BenchmarkStoreBatch(b *testing.B) {
	st := iotStream(b)
	d := newTestStoreDeliverer(b, &discardStore{}, &fakeDLQ{})
	p := newTestPartition(st, 0)
	p.Outputs = 0
	if _, err := d.Open(context.Background(), p); err != nil {
		b.Fatal(err)
	}
	const n = 2000
	values := make([][]byte, 64*n)
	for i := range values {
		id := fmt.Sprintf("bench-%d", i)
		v, err := st.Encode(schemas.Event{ID: id, Key: "dev-1", ReceivedAt: recv0, Fields: map[string]any{
			"device_id": "dev-1", "ts": recv0, "metrics": map[string]float64{"t": 1, "h": 2}}})
		if err != nil {
			b.Fatal(err)
		}
		values[i] = v
	}
	off := int64(0)
	for b.Loop() {
		batch := &Batch{Topic: testTopic, Stream: st, Messages: messagePool.Get(n)}
		for range n {
			batch.Messages = append(batch.Messages, Message{Offset: off, Value: values[off%int64(len(values))]})
			off++
		}
		d.Prepare(batch)
		if err := d.Deliver(context.Background(), p, batch); err != nil {
			b.Fatal(err)
		}
		recycleMessages(batch)
	}
}
