package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/backpressure"
	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks/clickhouse"
	natssink "github.com/sluicehq/sluice/sinks/nats"
)

var errRejected = errors.New("rejected: bad value")
var errDown = errors.New("connection refused")

// fakeRows is an in-memory ClickHouse table with programmable failures.
type fakeRows struct {
	mu    sync.Mutex
	rows  []clickhouse.Row
	calls int
	// reject makes inserts holding this event_id fail permanently.
	reject map[string]bool
	// panicOn makes inserts holding this event_id panic.
	panicOn string
	// storeThenFail stores the next n inserts but reports a transient
	// error, as when the connection breaks after ClickHouse wrote the part.
	storeThenFail int
	// failNext fails the next n inserts transiently without storing.
	failNext int
}

func (f *fakeRows) Insert(_ context.Context, _ *schemas.Stream, _ int32, rows []clickhouse.Row) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	for _, r := range rows {
		if r.Event.ID == f.panicOn {
			panic("driver exploded")
		}
		if f.reject[r.Event.ID] {
			return errRejected
		}
	}
	if f.failNext > 0 {
		f.failNext--
		return errDown
	}
	f.rows = append(f.rows, rows...)
	if f.storeThenFail > 0 {
		f.storeThenFail--
		return errDown
	}
	return nil
}

func (f *fakeRows) MaxOffset(context.Context, *schemas.Stream, int32) (int64, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.rows) == 0 {
		return 0, false, nil
	}
	return f.rows[len(f.rows)-1].Offset, true, nil
}

func (f *fakeRows) RecentEventIDs(context.Context, *schemas.Stream, int32, time.Time, int) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := make([]string, len(f.rows))
	for i, r := range f.rows {
		ids[i] = r.Event.ID
	}
	return ids, nil
}

func (f *fakeRows) ids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, len(f.rows))
	for i, r := range f.rows {
		out[i] = r.Event.ID
	}
	return out
}

type fakeDLQ struct{ letters []DeadLetter }

func (q *fakeDLQ) WriteDeadLetters(_ context.Context, l []DeadLetter) error {
	q.letters = append(q.letters, l...)
	return nil
}

type fakePub struct{ ids []string }

func (p *fakePub) Publish(_ context.Context, _ *schemas.Stream, msgs []natssink.Message) error {
	for _, m := range msgs {
		p.ids = append(p.ids, m.EventID)
	}
	return nil
}

func iotStream(t *testing.T) *schemas.Stream {
	t.Helper()
	return testkit.Stream(t, "iot_telemetry")
}

// makeBatch builds a batch of encoded events with the given ids, at
// consecutive offsets from first; an id of "!" is an undecodable message.
func makeBatch(t *testing.T, st *schemas.Stream, first int64, ids ...string) *Batch {
	t.Helper()
	b := &Batch{Topic: "sluice." + st.Name, Stream: st, Partition: 0}
	for i, id := range ids {
		v := []byte("{not json")
		if id != "!" {
			ev := schemas.Event{ID: id, Key: "dev-1", ReceivedAt: time.Now(), Fields: map[string]any{
				"device_id": "dev-1", "ts": time.UnixMilli(1_700_000_000_000), "metrics": map[string]float64{"t": 1},
			}}
			var err error
			if v, err = st.Encode(ev); err != nil {
				t.Fatal(err)
			}
		}
		b.Messages = append(b.Messages, Message{Offset: first + int64(i), Key: []byte("dev-1"), Value: v})
	}
	return b
}

func newTestDelivery(t *testing.T, rows *fakeRows, dlq *fakeDLQ, pub *fakePub) *Delivery {
	t.Helper()
	d, err := NewDelivery(DeliveryConfig{
		Rows: rows, DLQ: dlq, Publisher: pub,
		IsPermanent: func(err error) bool { return errors.Is(err, errRejected) },
		Retry:       backpressure.RetryPolicy{Initial: time.Millisecond, Max: 2 * time.Millisecond},
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDeliveryExactlyOnce(t *testing.T) {
	type batch struct {
		first int64
		ids   []string
	}
	tests := []struct {
		name string
		// stored is what the table holds before the partition opens.
		stored    []string
		batches   []batch
		setup     func(*fakeRows)
		wantRows  []string
		wantDead  []string // reasons' prefixes, in order
		wantPub   []string
		wantCalls int // inserts attempted, 0 = don't care
	}{
		{
			name:     "plain batch",
			batches:  []batch{{0, []string{"a", "b", "c"}}},
			wantRows: []string{"a", "b", "c"},
			wantPub:  []string{"a", "b", "c"},
		},
		{
			name:     "producer retry in the same batch and in a later batch",
			batches:  []batch{{0, []string{"a", "b", "a"}}, {3, []string{"b", "c"}}},
			wantRows: []string{"a", "b", "c"},
			wantPub:  []string{"a", "b", "c"},
		},
		{
			name:   "replay after a crash: stored offsets are published again, not inserted",
			stored: []string{"a", "b"},
			// offsets 0 and 1 are in the table already
			batches:  []batch{{0, []string{"a", "b", "c"}}},
			wantRows: []string{"a", "b", "c"},
			wantPub:  []string{"a", "b", "c"},
		},
		{
			name:     "retry after restart: dedupe window rebuilt from the table",
			stored:   []string{"a", "b"},
			batches:  []batch{{2, []string{"b", "c"}}},
			wantRows: []string{"a", "b", "c"},
			wantPub:  []string{"c"},
		},
		{
			name:     "rejected row isolated, the rest lands in order",
			setup:    func(f *fakeRows) { f.reject = map[string]bool{"p": true} },
			batches:  []batch{{0, []string{"a", "b", "c", "p", "d", "e", "f"}}},
			wantRows: []string{"a", "b", "c", "d", "e", "f"},
			wantDead: []string{"rejected by ClickHouse"},
			wantPub:  []string{"a", "b", "c", "d", "e", "f"},
		},
		{
			name:     "undecodable message dead-lettered",
			batches:  []batch{{0, []string{"a", "!", "b"}}},
			wantRows: []string{"a", "b"},
			wantDead: []string{"invalid event"},
			wantPub:  []string{"a", "b"},
		},
		{
			name:     "panicking insert isolates its row",
			setup:    func(f *fakeRows) { f.panicOn = "x" },
			batches:  []batch{{0, []string{"a", "x", "b"}}},
			wantRows: []string{"a", "b"},
			wantDead: []string{"rejected by ClickHouse"},
			wantPub:  []string{"a", "b"},
		},
		{
			name:      "transient failures are retried, never dead-lettered",
			setup:     func(f *fakeRows) { f.failNext = 3 },
			batches:   []batch{{0, []string{"a", "b"}}},
			wantRows:  []string{"a", "b"},
			wantPub:   []string{"a", "b"},
			wantCalls: 4,
		},
		{
			name:      "insert stored despite an error is not written twice",
			setup:     func(f *fakeRows) { f.storeThenFail = 1 },
			batches:   []batch{{0, []string{"a", "b"}}, {2, []string{"c"}}},
			wantRows:  []string{"a", "b", "c"},
			wantPub:   []string{"a", "b", "c"},
			wantCalls: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := iotStream(t)
			rows, dlq, pub := &fakeRows{}, &fakeDLQ{}, &fakePub{}
			if len(tt.stored) > 0 {
				b := makeBatch(t, st, 0, tt.stored...)
				for i, m := range b.Messages {
					ev, err := st.Decode(m.Value)
					if err != nil {
						t.Fatal(err)
					}
					rows.rows = append(rows.rows, clickhouse.Row{Offset: int64(i), Event: ev})
				}
			}
			if tt.setup != nil {
				tt.setup(rows)
			}
			d := newTestDelivery(t, rows, dlq, pub)
			ctx := context.Background()
			if err := d.OpenPartition(ctx, st, 0); err != nil {
				t.Fatal(err)
			}
			rows.calls = 0
			for _, bb := range tt.batches {
				b := makeBatch(t, st, bb.first, bb.ids...)
				d.Prepare(b)
				if err := d.Deliver(ctx, b); err != nil {
					t.Fatalf("Deliver: %v", err)
				}
			}
			if got := rows.ids(); !slices.Equal(got, tt.wantRows) {
				t.Errorf("table holds %v, want %v", got, tt.wantRows)
			}
			var reasons []string
			for _, l := range dlq.letters {
				reasons = append(reasons, l.Reason)
			}
			if len(reasons) != len(tt.wantDead) {
				t.Fatalf("dead letters %q, want %d starting %q", reasons, len(tt.wantDead), tt.wantDead)
			}
			for i, want := range tt.wantDead {
				if len(reasons[i]) < len(want) || reasons[i][:len(want)] != want {
					t.Errorf("dead letter %d: reason %q, want prefix %q", i, reasons[i], want)
				}
			}
			if !slices.Equal(pub.ids, tt.wantPub) {
				t.Errorf("published %v, want %v", pub.ids, tt.wantPub)
			}
			if tt.wantCalls > 0 && rows.calls != tt.wantCalls {
				t.Errorf("%d insert calls, want %d", rows.calls, tt.wantCalls)
			}
		})
	}
}

func TestDeliveryAbandonsWhenContextEnds(t *testing.T) {
	st := iotStream(t)
	rows := &fakeRows{failNext: 1 << 30}
	d := newTestDelivery(t, rows, &fakeDLQ{}, &fakePub{})
	if err := d.OpenPartition(context.Background(), st, 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	b := makeBatch(t, st, 0, "a")
	d.Prepare(b)
	if err := d.Deliver(ctx, b); err == nil {
		t.Fatal("Deliver returned nil although ClickHouse never took the batch")
	}
	if got := rows.ids(); len(got) != 0 {
		t.Fatalf("table holds %v", got)
	}
}

func ExampleTracker() {
	tr := NewTracker()
	tr.Start(0, 100)
	tr.Done(0, 110, 119) // finished early, waits for the gap
	n, _ := tr.Next(0)
	fmt.Println(n)
	tr.Done(0, 100, 109)
	n, _ = tr.Next(0)
	fmt.Println(n)
	// Output:
	// 100
	// 120
}
