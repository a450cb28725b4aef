package workers

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks"
)

// TestStoreDeliverer runs a partition through the store's delivery: the
// partition's Kafka log is log; the store holds its first stored events
// before the partition opens with the group's committed offset; the lane
// then delivers the log from where Open says, in batches of batch events.
func TestStoreDeliverer(t *testing.T) {
	tests := []struct {
		name      string
		log       []string // see makeBatch
		stored    int
		committed int64
		batch     int // events per batch; 0: one batch
		// setup programs failures once the partition is open.
		setup func(*fakeStore, *fakeDLQ)

		wantStart int64
		wantRows  []string // the event_ids the store holds at the end
		wantDead  []string // "offset reason" prefixes, in order
		wantOps   []string // store writes and dead letters after Open, in order; nil: not checked
		wantDups  float64
		// wantWrites counts Write calls after Open; 0: not checked.
		wantWrites int
	}{
		// Where a partition resumes.
		{
			name: "a fresh partition starts at the committed offset",
			log:  []string{"a", "b", "c", "d"}, committed: 2,
			wantStart: 2, wantRows: []string{"c", "d"},
		},
		{
			// Offset 0, not kafka.FirstOffset: a log start above 0 is then
			// a gap, not a quiet skip.
			name: "a new group on an empty store starts at offset 0",
			log:  []string{"a", "b"}, committed: kafka.FirstOffset,
			wantStart: 0, wantRows: []string{"a", "b"},
		},
		{
			name: "a restart after a crash before the commit resumes after what the store holds",
			log:  []string{"a", "b", "c", "d", "e", "f"}, stored: 4, committed: 1, batch: 2,
			wantStart: 4, wantRows: []string{"a", "b", "c", "d", "e", "f"},
			wantOps: []string{"store 4-5"},
		},
		{
			name: "a store behind the committed offset is read again from what it holds",
			log:  []string{"a", "b", "c", "d", "e", "f"}, stored: 2, committed: 5,
			wantStart: 2, wantRows: []string{"a", "b", "c", "d", "e", "f"},
		},
		{
			name: "a store at the committed offset",
			log:  []string{"a", "b", "c", "d"}, stored: 3, committed: 3,
			wantStart: 3, wantRows: []string{"a", "b", "c", "d"},
		},
		{
			name: "a store that holds rows although the group committed nothing",
			log:  []string{"a", "b", "c"}, stored: 2, committed: kafka.FirstOffset,
			wantStart: 2, wantRows: []string{"a", "b", "c"},
		},

		// Duplicates.
		{
			name: "producer retries within a batch and across batches",
			log:  []string{"a", "b", "a", "c", "b", "d"}, committed: 0, batch: 2,
			wantRows: []string{"a", "b", "c", "d"}, wantDups: 2,
		},
		{
			name: "a retry after a restart: the window is rebuilt from the store",
			log:  []string{"a", "b", "c", "b", "d"}, stored: 3, committed: 3,
			wantStart: 3, wantRows: []string{"a", "b", "c", "d"}, wantDups: 1,
		},
		{
			// The store received a and b long ago; the window rebuilt from it
			// spans DedupeWindow (10 min) back from its newest receive time,
			// c's, whatever the clock says: b is within it, a is not.
			name: "the rebuilt window spans back from the store's newest receive time",
			log:  []string{"a@0s", "b@5m", "c@12m", "b@13m", "a@13m"}, stored: 3, committed: 3,
			wantStart: 3, wantRows: []string{"a", "b", "c", "a"}, wantDups: 1,
		},

		// Invalid and refused events.
		{
			name:     "invalid events are dead-lettered, the rest written",
			log:      []string{"a", "!", "b", "!"},
			wantRows: []string{"a", "b"}, wantDead: []string{"1 invalid event", "3 invalid event"},
		},
		{
			name:     "a refused row is isolated by bisection and dead-lettered before later rows are written",
			log:      []string{"a", "b", "c", "p", "d", "e", "f"},
			setup:    func(s *fakeStore, _ *fakeDLQ) { s.reject = map[string]bool{"p": true} },
			wantRows: []string{"a", "b", "c", "d", "e", "f"},
			wantDead: []string{"3 rejected by clickhouse: event p: cannot parse"},
			wantOps:  []string{"store 0-2", "dlq 3", "store 4-4", "store 5-6"},
		},
		{
			name:     "several refused rows, each dead-lettered in its place",
			log:      []string{"p", "a", "b", "q", "c", "d", "e", "r"},
			setup:    func(s *fakeStore, _ *fakeDLQ) { s.reject = map[string]bool{"p": true, "q": true, "r": true} },
			wantRows: []string{"a", "b", "c", "d", "e"},
			wantDead: []string{"0 rejected by clickhouse", "3 rejected by clickhouse", "7 rejected by clickhouse"},
		},
		{
			name:     "every row refused",
			log:      []string{"p", "q"},
			setup:    func(s *fakeStore, _ *fakeDLQ) { s.reject = map[string]bool{"p": true, "q": true} },
			wantDead: []string{"0 rejected by clickhouse", "1 rejected by clickhouse"},
		},
		{
			name:     "a write that panics is the data's fault",
			log:      []string{"a", "x", "b"},
			setup:    func(s *fakeStore, _ *fakeDLQ) { s.panicOn = map[string]bool{"x": true} },
			wantRows: []string{"a", "b"},
			wantDead: []string{"1 rejected by clickhouse: panic during write"},
		},
		{
			name:     "a dead-letter topic down for a while holds the later rows back",
			log:      []string{"a", "p", "b"},
			setup:    func(s *fakeStore, q *fakeDLQ) { s.reject = map[string]bool{"p": true}; q.failNext = 3 },
			wantRows: []string{"a", "b"},
			wantDead: []string{"1 rejected by clickhouse"},
			wantOps:  []string{"store 0-0", "dlq 1", "store 2-2"},
		},

		// Transient failures.
		{
			name:     "transient failures are retried, never dead-lettered",
			log:      []string{"a", "b"},
			setup:    func(s *fakeStore, _ *fakeDLQ) { s.failNext = 3 },
			wantRows: []string{"a", "b"}, wantWrites: 4,
		},
		{
			name: "a write stored and then failed is not written twice",
			log:  []string{"a", "b", "c"}, batch: 2,
			setup:    func(s *fakeStore, _ *fakeDLQ) { s.storeThenFail = 1 },
			wantRows: []string{"a", "b", "c"}, wantWrites: 2,
			wantOps: []string{"store 0-1", "store 2-2"},
		},
		{
			name: "a write stored and then failed while isolating a refused row",
			log:  []string{"a", "b", "p", "c"},
			setup: func(s *fakeStore, _ *fakeDLQ) {
				s.reject = map[string]bool{"p": true}
				s.storeThenFail = 1
			},
			wantRows: []string{"a", "b", "c"},
			wantDead: []string{"2 rejected by clickhouse"},
			wantOps:  []string{"store 0-1", "dlq 2", "store 3-3"},
		},
		{
			name:     "a progress check that fails after a failed write is retried",
			log:      []string{"a", "b"},
			setup:    func(s *fakeStore, _ *fakeDLQ) { s.storeThenFail, s.failProgress = 1, 2 },
			wantRows: []string{"a", "b"}, wantWrites: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := iotStream(t)
			ops := &opLog{}
			store, dlq := newFakeStore(t, ops), &fakeDLQ{ops: ops}
			store.seed(t, st, 0, tt.log[:tt.stored]...)
			metrics := NewSinkMetrics(nil)
			d := newTestStoreDeliverer(t, store, dlq, func(c *StoreConfig) { c.Metrics = metrics })
			p := newTestPartition(st, tt.committed)
			start, err := d.Open(context.Background(), p)
			if err != nil {
				t.Fatal(err)
			}
			if start != tt.wantStart {
				t.Fatalf("Open = %d, want %d", start, tt.wantStart)
			}
			store.set(func(s *fakeStore) { s.writes = 0 })
			if tt.setup != nil {
				store.set(func(s *fakeStore) { tt.setup(s, dlq) })
			}
			from := max(start, 0)
			for _, b := range batches(t, st, from, tt.batch, tt.log[from:]) {
				deliver(t, d, p, b)
			}

			if got := store.ids(0); !slices.Equal(got, tt.wantRows) {
				t.Errorf("store holds %v, want %v", got, tt.wantRows)
			}
			letters := dlq.list()
			if got := describeLetters(letters); !matchPrefixes(got, tt.wantDead) {
				t.Errorf("dead letters %q, want prefixes %q", got, tt.wantDead)
			}
			for _, l := range letters {
				if want := makeBatch(t, st, l.Offset, tt.log[l.Offset]).Messages[0].Value; l.Stream != testStream ||
					l.Topic != testTopic || l.Partition != 0 || string(l.Value) != string(want) || string(l.Key) != "dev-1" || l.SkippedBy != "" {
					t.Errorf("dead letter %+v does not carry its message", l)
				}
			}
			got := ops.list()
			if tt.wantOps != nil && !slices.Equal(got, tt.wantOps) {
				t.Errorf("writes and dead letters %q, want %q", got, tt.wantOps)
			}
			checkPrefixOrder(t, got, letters)
			if tt.wantWrites > 0 && store.writes != tt.wantWrites {
				t.Errorf("%d writes, want %d", store.writes, tt.wantWrites)
			}
			if n := testutil.ToFloat64(metrics.duplicates.WithLabelValues(testStream)); n != tt.wantDups {
				t.Errorf("%v duplicates counted, want %v", n, tt.wantDups)
			}
			if n := testutil.ToFloat64(metrics.deadLettered.WithLabelValues(testStream)); n != float64(len(tt.wantDead)) {
				t.Errorf("%v dead letters counted, want %d", n, len(tt.wantDead))
			}
			if n := testutil.ToFloat64(metrics.written.WithLabelValues("clickhouse", testStream)); n != float64(len(tt.wantRows)-tt.stored) {
				t.Errorf("%v rows counted written, want %d", n, len(tt.wantRows)-tt.stored)
			}
		})
	}
}

// checkPrefixOrder checks what keeps the store's highest offset a prefix
// that is done: the rows stored and the rows refused by the store reach the
// store and the dead-letter topic in offset order. (Invalid events are
// dead-lettered up front; they never reach the store.)
func checkPrefixOrder(t *testing.T, ops []string, letters []DeadLetter) {
	t.Helper()
	refused := make(map[int64]bool)
	for _, l := range letters {
		if strings.HasPrefix(l.Reason, "rejected by") {
			refused[l.Offset] = true
		}
	}
	last := int64(-1)
	for _, op := range ops {
		kind, rng, _ := strings.Cut(op, " ")
		lo, hi, _ := strings.Cut(rng, "-")
		if hi == "" {
			hi = lo
		}
		first, _ := strconv.ParseInt(lo, 10, 64)
		end, _ := strconv.ParseInt(hi, 10, 64)
		if kind == "dlq" && !refused[first] {
			continue
		}
		if first <= last {
			t.Errorf("%q after offset %d was done: the store's progress would skip or repeat a row (ops %q)", op, last, ops)
		}
		last = end
	}
}

// Rows the store refused are marked on the partition, so that an output
// behind the store does not publish them.
func TestStoreDelivererMarksRefusedRows(t *testing.T) {
	st := iotStream(t)
	store := newFakeStore(t, nil)
	store.reject = map[string]bool{"p": true}
	d := newTestStoreDeliverer(t, store, &fakeDLQ{})
	p := newTestPartition(st, 0)
	if _, err := d.Open(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	deliver(t, d, p, makeBatch(t, st, 0, "a", "p", "!", "b"))
	for off, want := range []bool{false, true, false, false} {
		if got := p.wasRejected(int64(off)); got != want {
			t.Errorf("wasRejected(%d) = %v, want %v", off, got, want)
		}
	}
}

// Open rebuilds the window from the store with its share of the worker's
// bound, and keeps trying while the store does not answer.
func TestStoreDelivererOpen(t *testing.T) {
	tests := []struct {
		name             string
		maxIDs, assigned int
		failResume       int
		wantLimit        int
		wantStart        int64
	}{
		{name: "one partition takes the whole bound", maxIDs: 100, assigned: 1, wantLimit: 100, wantStart: 5},
		{name: "the bound is shared by the partitions assigned", maxIDs: 100, assigned: 4, wantLimit: 25, wantStart: 5},
		{name: "store failures are retried", maxIDs: 100, assigned: 1, failResume: 3, wantLimit: 100, wantStart: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := iotStream(t)
			store := newFakeStore(t, nil)
			store.seed(t, st, 0, "a", "b", "c", "d", "e")
			store.failResume = tt.failResume
			d := newTestStoreDeliverer(t, store, &fakeDLQ{}, func(c *StoreConfig) {
				c.DedupeMaxIDs = tt.maxIDs
				c.DedupeWindow = time.Minute
			})
			p := newTestPartition(st, 0)
			p.Assigned = tt.assigned
			start, err := d.Open(context.Background(), p)
			if err != nil {
				t.Fatal(err)
			}
			if start != tt.wantStart {
				t.Errorf("Open = %d, want %d", start, tt.wantStart)
			}
			last := store.resumes[len(store.resumes)-1]
			if last.limit != tt.wantLimit || last.window != time.Minute {
				t.Errorf("Resume(window %v, limit %d), want window %v, limit %d", last.window, last.limit, time.Minute, tt.wantLimit)
			}
			if n := len(store.resumes); n != tt.failResume+1 {
				t.Errorf("Resume called %d times, want %d", n, tt.failResume+1)
			}
			if p.window.Len() != 5 {
				t.Errorf("window holds %d ids, want 5", p.window.Len())
			}
		})
	}
}

func TestStoreDelivererOpenEndsWithContext(t *testing.T) {
	store := newFakeStore(t, nil)
	store.failResume = 1 << 30
	d := newTestStoreDeliverer(t, store, &fakeDLQ{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := d.Open(ctx, newTestPartition(iotStream(t), 0)); err == nil {
		t.Fatal("Open returned nil although the store never answered")
	}
}

// TestStoreDelivererOpenShowsAnUnreachableStore: a store that cannot be
// reached fails when partitions open, before any write; the sink must show
// as failing then (sluice_sink_failing, what the status page reads), and
// healthy again once a partition opens.
func TestStoreDelivererOpenShowsAnUnreachableStore(t *testing.T) {
	st := iotStream(t)
	store := newFakeStore(t, nil)
	store.failResume = 1 << 30
	d := newTestStoreDeliverer(t, store, &fakeDLQ{})
	failing := d.m.failing.WithLabelValues("clickhouse", st.Name)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := d.Open(ctx, newTestPartition(st, 0)); err == nil {
		t.Fatal("Open returned nil although the store never answered")
	}
	if got := testutil.ToFloat64(failing); got != 1 {
		t.Errorf("sluice_sink_failing = %v while the store is unreachable, want 1", got)
	}
	if got := testutil.ToFloat64(d.m.errors.WithLabelValues("clickhouse", st.Name, "progress")); got < 1 {
		t.Errorf("no progress error counted (%v)", got)
	}
	store.mu.Lock()
	store.failResume = 0
	store.mu.Unlock()
	if _, err := d.Open(context.Background(), newTestPartition(st, 0)); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(failing); got != 0 {
		t.Errorf("sluice_sink_failing = %v once the store answers, want 0", got)
	}
}

// Deliver gives up only when its context ends, and then has written
// nothing past a row that is not done.
func TestStoreDelivererAbandonsWhenContextEnds(t *testing.T) {
	tests := []struct {
		name     string
		log      []string
		setup    func(*fakeStore, *fakeDLQ)
		wantRows []string
	}{
		{
			name:  "the store is down",
			log:   []string{"a", "b"},
			setup: func(s *fakeStore, _ *fakeDLQ) { s.failNext = 1 << 30 },
		},
		{
			name:     "a refused row cannot be dead-lettered: nothing after it is written",
			log:      []string{"a", "b", "p", "c", "d"},
			setup:    func(s *fakeStore, q *fakeDLQ) { s.reject = map[string]bool{"p": true}; q.down = true },
			wantRows: []string{"a", "b"},
		},
		{
			name:  "an invalid event cannot be dead-lettered",
			log:   []string{"a", "!", "b"},
			setup: func(_ *fakeStore, q *fakeDLQ) { q.down = true },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := iotStream(t)
			store, dlq := newFakeStore(t, nil), &fakeDLQ{}
			d := newTestStoreDeliverer(t, store, dlq)
			p := newTestPartition(st, 0)
			if _, err := d.Open(context.Background(), p); err != nil {
				t.Fatal(err)
			}
			tt.setup(store, dlq)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
			defer cancel()
			b := makeBatch(t, st, 0, tt.log...)
			d.Prepare(b)
			if err := d.Deliver(ctx, p, b); err == nil {
				t.Fatal("Deliver returned nil although the batch is not done")
			}
			if got := store.ids(0); !slices.Equal(got, tt.wantRows) {
				t.Errorf("store holds %v, want %v", got, tt.wantRows)
			}
			if got := dlq.list(); len(got) != 0 {
				t.Errorf("dead letters %v", describeLetters(got))
			}
			if b.records == nil || b.Decoded == nil {
				t.Error("an abandoned batch gave its Records back, which a write still running may read")
			}
		})
	}
}

// A stored batch gives its Records back for later batches, and the
// batches that reuse them are stored with their own fields.
func TestStoreDelivererReleasesRecords(t *testing.T) {
	st := iotStream(t)
	store := newFakeStore(t, nil)
	d := newTestStoreDeliverer(t, store, &fakeDLQ{})
	p := newTestPartition(st, 0)
	if _, err := d.Open(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	var written []string
	store.onWrite = func(rows []sinks.Row) {
		for _, r := range rows {
			id, _ := r.Record.Str(st.FieldIndex("device_id"))
			written = append(written, r.Event.ID+"/"+id)
		}
	}
	var want []string
	for i := range 5 {
		// Each event's device_id is its own, so that a Record read from
		// another batch's slots shows.
		b := &Batch{Topic: testTopic, Stream: st}
		for j, id := range []string{fmt.Sprintf("a%d", i), fmt.Sprintf("b%d", i)} {
			v, err := st.Encode(schemas.Event{ID: id, Key: id, ReceivedAt: recv0, Fields: map[string]any{
				"device_id": id, "ts": recv0, "metrics": map[string]float64{id: float64(i)}}})
			if err != nil {
				t.Fatal(err)
			}
			b.Messages = append(b.Messages, Message{Offset: int64(2*i + j), Value: v})
		}
		d.Prepare(b)
		if err := d.Deliver(context.Background(), p, b); err != nil {
			t.Fatal(err)
		}
		if b.records != nil || b.Decoded != nil {
			t.Fatalf("batch %d kept its Records once stored", i)
		}
		want = append(want, fmt.Sprintf("a%d/a%d", i, i), fmt.Sprintf("b%d/b%d", i, i))
	}
	if !slices.Equal(written, want) {
		t.Errorf("the store saw %v, want %v", written, want)
	}
}

func TestNewStoreDeliverer(t *testing.T) {
	tests := []struct {
		name     string
		cfg      StoreConfig
		wantErr  bool
		wantName string
	}{
		{name: "no store", cfg: StoreConfig{DLQ: &fakeDLQ{}}, wantErr: true},
		{name: "no dead-letter writer", cfg: StoreConfig{Store: newFakeStore(t, nil)}, wantErr: true},
		{name: "named clickhouse by default", cfg: StoreConfig{Store: newFakeStore(t, nil), DLQ: &fakeDLQ{}}, wantName: "clickhouse"},
		{name: "named", cfg: StoreConfig{Name: "warehouse", Store: newFakeStore(t, nil), DLQ: &fakeDLQ{}}, wantName: "warehouse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := NewStoreDeliverer(tt.cfg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && d.Name() != tt.wantName {
				t.Errorf("Name = %q, want %q", d.Name(), tt.wantName)
			}
		})
	}
}

// A batch whose every message the decoder panics on is dead-lettered as
// invalid, message by message.
func TestPrepareIsolatesDecodePanics(t *testing.T) {
	st := iotStream(t)
	b := makeBatch(t, st, 0, "a", "b")
	(&StoreDeliverer{}).Prepare(b)
	for i, dec := range b.Decoded {
		if want := []string{"a", "b"}[i]; dec.Err != nil || dec.Event.ID != want || !dec.Record.Valid() {
			t.Errorf("Decoded[%d] = %+v", i, dec)
		}
	}
	var noStream *schemas.Records
	if got := decodeOne([]byte("{}"), noStream.Decode); got.Err == nil || !strings.Contains(got.Err.Error(), "panic") {
		t.Errorf("decoding with no stream = %+v, want a panic turned into an error", got)
	}
}
