package workers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/deadletter"
	"github.com/sluicehq/sluice/internal/eventually"
	"github.com/sluicehq/sluice/schemas"
)

// fakeFetcher reads one partition of a fetchScript, as a kafka-go reader
// does: it fails once at each offset in fail, as kafka-go's reader does
// after failed initialisations, and jumps over the offsets in lost, which
// retention deleted, to the next one Kafka holds.
type fakeFetcher struct {
	s      *fetchScript
	offset int64
}

type fetchScript struct {
	mu   sync.Mutex
	high int64 // offsets [0, high) exist, less lost
	fail map[int64]bool
	lost map[int64]bool
	// value, when set, gives each message's value.
	value   func(off int64) []byte
	readers []int64 // the offset each new reader was set to
}

func (f *fakeFetcher) SetOffset(o int64) error {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	f.offset = o
	f.s.readers = append(f.s.readers, o)
	return nil
}

// FetchMessages hands out one message at a time.
func (f *fakeFetcher) FetchMessages(ctx context.Context, _ int) ([]Message, error) {
	m, err := f.fetchMessage(ctx)
	if err != nil {
		return nil, err
	}
	return []Message{m}, nil
}

func (f *fakeFetcher) fetchMessage(ctx context.Context) (Message, error) {
	f.s.mu.Lock()
	if f.offset < 0 { // kafka.FirstOffset
		f.offset = 0
	}
	if f.s.fail[f.offset] {
		delete(f.s.fail, f.offset)
		f.s.mu.Unlock()
		return Message{}, errors.New("failed to dial: broker not available")
	}
	for f.s.lost[f.offset] {
		f.offset++
	}
	if f.offset >= f.s.high {
		f.s.mu.Unlock()
		<-ctx.Done()
		return Message{}, ctx.Err()
	}
	m := Message{Offset: f.offset, HighWaterMark: f.s.high, Key: []byte("dev-1"), Time: time.Now()}
	if f.s.value != nil {
		m.Value = f.s.value(f.offset)
	}
	f.offset++
	f.s.mu.Unlock()
	return m, nil
}

func (f *fakeFetcher) Close() error { return nil }

// recordingSink is a Deliverer that records the offsets delivered to it.
type recordingSink struct {
	name string

	mu      sync.Mutex
	offsets []int64
	batches int
	fails   int
}

func (s *recordingSink) Name() string { return s.name }

func (s *recordingSink) Open(_ context.Context, p *Partition) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fails > 0 {
		s.fails--
		return 0, errDown
	}
	return p.Committed, nil
}

func (s *recordingSink) Prepare(b *Batch) { b.Decoded = make([]Decoded, len(b.Messages)) }

func (s *recordingSink) Deliver(_ context.Context, _ *Partition, b *Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches++
	for _, m := range b.Messages {
		s.offsets = append(s.offsets, m.Offset)
	}
	return nil
}

func (s *recordingSink) delivered() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.offsets...)
}

// newLaneConsumer returns a consumer whose lanes read script, and a running
// pool; both stop when t ends.
func newLaneConsumer(t *testing.T, script *fetchScript, store Deliverer, dlq DeadLetterWriter) (*Consumer, *Pool) {
	t.Helper()
	old := fetchRetry
	fetchRetry.Initial, fetchRetry.Max = time.Millisecond, 5*time.Millisecond
	t.Cleanup(func() { fetchRetry = old })
	c, err := NewConsumer(Config{
		Brokers:        []string{"127.0.0.1:1"},
		Topics:         map[string]*schemas.Stream{testTopic: iotStream(t)},
		BatchMaxEvents: 4,
		BatchLinger:    2 * time.Millisecond,
		DeadLetters:    dlq,
		Logger:         quiet,
	}, store)
	if err != nil {
		t.Fatal(err)
	}
	c.newFetcher = func(string, int32) fetcher { return &fakeFetcher{s: script} }
	pool := NewPool(2, 4, c.metrics)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { pool.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c, pool
}

// startLane runs a lane of partition 0 for sink from start until the
// returned function stops it and waits for it.
func startLane(t *testing.T, c *Consumer, pool *Pool, sink Deliverer, p *Partition, start int64, output bool, tr *Tracker) (stop func()) {
	t.Helper()
	tr.Start(p.ID, start)
	ctx, cancel := context.WithCancel(context.Background())
	l := &lane{c: c, pool: pool, sink: sink, part: p, start: start, output: output, budget: c.budgets[0],
		tracker: tr, stop: ctx, deliverCtx: context.Background()}
	done := make(chan struct{})
	go func() { l.run(); close(done) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Error("the lane did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// A failed read does not end a lane: it reads on from the next offset on a
// new reader, skipping and repeating nothing, and counts the failure.
func TestLaneFetchSurvivesErrors(t *testing.T) {
	script := &fetchScript{high: 50, fail: map[int64]bool{0: true, 10: true, 11: true, 30: true}}
	sink := &recordingSink{name: "clickhouse"}
	c, _ := newLaneConsumer(t, script, sink, &fakeDLQ{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := &lane{c: c, sink: sink, part: newTestPartition(iotStream(t), 0), start: 0, tracker: NewTracker(), stop: ctx}
	msgs := make(chan []Message)
	go l.fetch(msgs)

	for want := int64(0); want < script.high; {
		select {
		case ms := <-msgs:
			for _, m := range ms {
				if m.Offset != want {
					t.Fatalf("offset %d read, want %d", m.Offset, want)
				}
				want++
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("lane stopped reading at offset %d", want)
		}
	}
	cancel()
	if _, open := <-msgs; open {
		t.Error("msgs not closed when the lane stopped")
	}
	if n := testutil.ToFloat64(c.metrics.fetchErrors.WithLabelValues(testStream)); n != 4 {
		t.Errorf("%v fetch errors counted, want 4", n)
	}
	script.mu.Lock()
	defer script.mu.Unlock()
	if want := []int64{0, 0, 10, 11, 30}; fmt.Sprint(script.readers) != fmt.Sprint(want) {
		t.Errorf("readers set to %v, want %v", script.readers, want)
	}
}

// A lane delivers its partition in order, batch by batch, and its tracker
// follows; the byte budget is whole again once it is done.
func TestLaneDeliversInOrder(t *testing.T) {
	st := iotStream(t)
	script := &fetchScript{high: 103, fail: map[int64]bool{40: true}, value: func(off int64) []byte {
		return encodeEvent(t, st, fmt.Sprintf("e%d", off%90), recv0.Add(time.Duration(off)*time.Second))
	}}
	ops := &opLog{}
	store, dlq := newFakeStore(t, ops), &fakeDLQ{ops: ops}
	store.seed(t, st, 0, "e0", "e1", "e2")
	sd := newTestStoreDeliverer(t, store, dlq)
	c, pool := newLaneConsumer(t, script, sd, dlq)
	p := newTestPartition(st, 1)
	start, err := sd.Open(context.Background(), p)
	if err != nil || start != 3 {
		t.Fatalf("Open = %d, %v; want 3", start, err)
	}
	tr := NewTracker()
	stop := startLane(t, c, pool, sd, p, start, false, tr)
	eventually.True(t, 5*time.Second, "the lane to reach the end of the partition", func() bool { n, _ := tr.Next(0); return n == script.high })
	stop()

	// e0..e89, then e0..e12 again: producer retries, within the window.
	var want []string
	for i := range 90 {
		want = append(want, fmt.Sprintf("e%d", i))
	}
	if got := store.ids(0); !slices.Equal(got, want) {
		t.Errorf("store holds %v, want e0..e89", got)
	}
	if !c.budgets[0].TryAcquire(c.budgetSize) {
		t.Error("the byte budget was not given back")
	}
	if n := testutil.ToFloat64(c.metrics.delivered.WithLabelValues("clickhouse", testStream)); n != 100 {
		t.Errorf("%v messages counted done, want 100", n)
	}
}

// An offset jump (data deleted by retention before the sink read it) stops
// the store's lane until an operator accepts the loss; an output's lane
// skips it at once. Either way the range is recorded in the dead-letter
// topic and done in the tracker.
func TestLaneGap(t *testing.T) {
	tests := []struct {
		name   string
		output bool
		// revoke ends the partition instead of accepting the gap.
		revoke bool
	}{
		{name: "the store's lane stops until the gap is accepted"},
		{name: "the store's lane stopped at a gap ends when the partition is revoked", revoke: true},
		{name: "an output's lane skips the gap", output: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lost := make(map[int64]bool)
			for off := int64(10); off <= 19; off++ {
				lost[off] = true
			}
			script := &fetchScript{high: 30, lost: lost, fail: map[int64]bool{10: true}}
			name := "clickhouse"
			if tt.output {
				name = "nats"
			}
			sink, dlq := &recordingSink{name: name}, &fakeDLQ{}
			c, pool := newLaneConsumer(t, script, sink, dlq)
			tr := NewTracker()
			stop := startLane(t, c, pool, sink, newTestPartition(iotStream(t), 0), 0, tt.output, tr)
			wantGap := Gap{Stream: testStream, Topic: testTopic, Partition: 0, First: 10, Last: 19}
			gauge := c.metrics.gap.WithLabelValues(testStream, "0")

			if !tt.output {
				eventually.True(t, 5*time.Second, "the gap to be reported", func() bool { return len(c.Gaps()) == 1 })
				if g := c.Gaps()[0]; g != wantGap {
					t.Errorf("Gaps = %+v, want %+v", g, wantGap)
				}
				err := c.CheckGaps(context.Background())
				if err == nil || !strings.Contains(err.Error(), "iot_telemetry/0: offsets 10-19 (10 events)") || !strings.Contains(err.Error(), "/gaps/accept") {
					t.Errorf("CheckGaps = %v; want it to name the gap and how to accept it", err)
				}
				if n := testutil.ToFloat64(gauge); n != 10 {
					t.Errorf("gap gauge = %v, want 10", n)
				}
				eventually.True(t, 5*time.Second, "offsets before the gap to be done", func() bool { n, _ := tr.Next(0); return n == 10 })
				time.Sleep(20 * time.Millisecond) // ten lingers: anything read past the gap would be delivered
				if got := sink.delivered(); len(got) != 10 || got[len(got)-1] != 9 {
					t.Fatalf("delivered %v while stopped at the gap, want 0-9", got)
				}
				if n, _ := tr.Next(0); n != 10 || len(dlq.list()) != 0 {
					t.Fatalf("while stopped: tracker at %d, dead letters %v; want 10, none", n, describeLetters(dlq.list()))
				}
				if tt.revoke {
					stop()
					// The lane's fetcher is not waited for by run: it lets go
					// of the gap shortly after.
					eventually.True(t, 5*time.Second, "the gap to go with the partition", func() bool { return len(c.Gaps()) == 0 })
					if _, err := c.AcceptGap(testStream, 0); !errors.Is(err, ErrNoGap) {
						t.Errorf("AcceptGap after revocation = %v, want ErrNoGap", err)
					}
					if got := sink.delivered(); len(got) != 10 || len(dlq.list()) != 0 {
						t.Errorf("after revocation: delivered %v, dead letters %v", got, describeLetters(dlq.list()))
					}
					return
				}
				if _, err := c.AcceptGap("app_logs", 0); !errors.Is(err, ErrNoGap) {
					t.Errorf("AcceptGap of another stream = %v, want ErrNoGap", err)
				}
				g, err := c.AcceptGap(testStream, 0)
				if err != nil || g != wantGap {
					t.Fatalf("AcceptGap = %+v, %v; want %+v", g, err, wantGap)
				}
			}

			eventually.True(t, 5*time.Second, "the lane to read past the gap", func() bool { n, _ := tr.Next(0); return n == 30 })
			var want []int64
			for off := int64(0); off < 30; off++ {
				if !lost[off] {
					want = append(want, off)
				}
			}
			if got := sink.delivered(); !slices.Equal(got, want) {
				t.Errorf("delivered %v, want %v", got, want)
			}
			letters := dlq.list()
			if len(letters) != 1 {
				t.Fatalf("dead letters %q, want one for the gap", describeLetters(letters))
			}
			if l := letters[0]; l.Offset != 10 || l.SkippedThrough != 19 || l.Stream != testStream || l.Topic != testTopic ||
				l.Partition != 0 || !strings.Contains(l.Reason, "retention") || !strings.Contains(l.Reason, "offsets 10-19") {
				t.Errorf("dead letter %+v; want the range 10-19 lost to retention", l)
			}
			if l := letters[0]; l.SkippedBy != deadletter.SkippedByRetention {
				t.Errorf("dead letter skipped by %q, want %q", l.SkippedBy, deadletter.SkippedByRetention)
			}
			if gs := c.Gaps(); len(gs) != 0 {
				t.Errorf("Gaps = %v, want none", gs)
			}
			if err := c.CheckGaps(context.Background()); err != nil {
				t.Errorf("CheckGaps = %v, want nil", err)
			}
			if n := testutil.ToFloat64(gauge); n != 0 {
				t.Errorf("gap gauge = %v, want 0", n)
			}
			if _, err := c.AcceptGap(testStream, 0); !errors.Is(err, ErrNoGap) {
				t.Errorf("AcceptGap with no gap = %v, want ErrNoGap", err)
			}
		})
	}
}

// A lane that starts at a symbolic offset (a new group) sees no gap in
// the partition's first offset.
func TestLaneFirstOffsetIsNoGap(t *testing.T) {
	script := &fetchScript{high: 8, lost: map[int64]bool{0: true, 1: true, 2: true}}
	sink, dlq := &recordingSink{name: "clickhouse"}, &fakeDLQ{}
	c, pool := newLaneConsumer(t, script, sink, dlq)
	tr := NewTracker()
	startLane(t, c, pool, sink, newTestPartition(iotStream(t), kafka.FirstOffset), kafka.FirstOffset, false, tr)
	eventually.True(t, 5*time.Second, "the lane to reach the end", func() bool { n, _ := tr.Next(0); return n == 8 })
	if gs, ls := c.Gaps(), dlq.list(); len(gs) != 0 || len(ls) != 0 {
		t.Errorf("gaps %v, dead letters %v; want none", gs, describeLetters(ls))
	}
}

// A partition that cannot be opened at once is opened when it can, not
// skipped for the rest of the generation; the wait ends with the
// generation.
func TestOpenPartitionRetries(t *testing.T) {
	sink := &recordingSink{name: "clickhouse", fails: 2}
	c, _ := newLaneConsumer(t, &fetchScript{}, sink, nil)
	p := newTestPartition(iotStream(t), 17)
	start, err := c.open(context.Background(), sink, p)
	if err != nil || start != 17 {
		t.Fatalf("open = %d, %v; want 17 after the failures", start, err)
	}
	if n := testutil.ToFloat64(c.metrics.openErrors.WithLabelValues(testStream)); n != 2 {
		t.Errorf("%v open errors counted, want 2", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.open(ctx, &recordingSink{name: "clickhouse", fails: 1 << 30}, p); err == nil {
		t.Error("open of a partition that never opens returned nil when the generation ended")
	}
}
