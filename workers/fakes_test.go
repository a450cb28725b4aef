package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/backpressure"
	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks"
)

// This file holds the fakes of the sinks interfaces that the tests of the
// worker core deliver to, and the builders of their batches.

var (
	errDown     = errors.New("connection refused")
	errBadValue = errors.New("cannot parse value of column metrics")
	errTooLarge = errors.New("nats: maximum payload exceeded")
)

var (
	quiet     = slog.New(slog.DiscardHandler)
	fastRetry = backpressure.RetryPolicy{Initial: time.Millisecond, Max: 2 * time.Millisecond}
	// recv0 is when the tests' events were received: long ago, so that a
	// window that went by the clock instead of receive time would have
	// forgotten all of them.
	recv0 = time.Date(2020, 1, 2, 3, 0, 0, 0, time.UTC)
)

const (
	testStream = "iot_telemetry"
	testTopic  = "sluice.iot_telemetry"
)

func iotStream(t testing.TB) *schemas.Stream {
	t.Helper()
	return testkit.Stream(t, testStream)
}

// opLog records, in order, what reached the store and the dead-letter
// topic: "store 0-2" for a write of offsets 0 to 2 that the store holds,
// "dlq 3" for a dead letter of offset 3.
type opLog struct {
	mu  sync.Mutex
	ops []string
}

func (l *opLog) add(format string, a ...any) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ops = append(l.ops, fmt.Sprintf(format, a...))
}

func (l *opLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.ops...)
}

// fakeStore is an in-memory sinks.Store with programmable failures. It
// checks the Store contract it is given: a partition's writes come in
// offset order and never hold an offset already stored (which is how a
// write made twice shows).
type fakeStore struct {
	t   testing.TB
	ops *opLog

	mu   sync.Mutex
	rows map[int32][]sinks.Row
	// writes counts Write calls; progress counts Progress calls.
	writes, progress int
	// resumes records the (window, limit) of each Resume call.
	resumes []resumeCall

	// reject refuses, permanently, writes holding these event_ids.
	reject map[string]bool
	// panicOn makes writes holding these event_ids panic, as a driver
	// that chokes on a value does.
	panicOn map[string]bool
	// storeThenFail stores the next n writes but reports a transient
	// error, as when the connection breaks after the store took the rows.
	storeThenFail int
	// failNext fails the next n writes transiently, storing nothing.
	failNext int
	// failProgress fails the next n Progress calls.
	failProgress int
	// failResume fails the next n Resume calls.
	failResume int
	// onWrite, when set, sees the rows of each write that stores them,
	// while their Records are valid.
	onWrite func(rows []sinks.Row)
}

type resumeCall struct {
	window time.Duration
	limit  int
}

func newFakeStore(t testing.TB, ops *opLog) *fakeStore {
	return &fakeStore{t: t, ops: ops, rows: make(map[int32][]sinks.Row)}
}

func (f *fakeStore) Write(_ context.Context, _ *schemas.Stream, part int32, rows []sinks.Row) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	if len(rows) == 0 {
		f.t.Errorf("empty write to partition %d", part)
		return nil
	}
	for i, r := range rows {
		if i > 0 && r.Offset <= rows[i-1].Offset {
			f.t.Errorf("write of partition %d not in offset order: %d after %d", part, r.Offset, rows[i-1].Offset)
		}
	}
	for _, r := range rows {
		if f.panicOn[r.Event.ID] {
			panic("driver: unexpected value " + r.Event.ID)
		}
	}
	for _, r := range rows {
		if f.reject[r.Event.ID] {
			return sinks.Permanent(fmt.Errorf("event %s: %w", r.Event.ID, errBadValue))
		}
	}
	if f.failNext > 0 {
		f.failNext--
		return errDown
	}
	if held := f.rows[part]; len(held) > 0 && rows[0].Offset <= held[len(held)-1].Offset {
		f.t.Errorf("write of offsets %d-%d to partition %d, which holds up to %d: written twice or out of order",
			rows[0].Offset, rows[len(rows)-1].Offset, part, held[len(held)-1].Offset)
	}
	if f.onWrite != nil {
		f.onWrite(rows)
	}
	for _, r := range rows {
		// A Record is valid only during Write (sinks.Row): keep none.
		r.Record = schemas.Record{}
		f.rows[part] = append(f.rows[part], r)
	}
	f.ops.add("store %d-%d", rows[0].Offset, rows[len(rows)-1].Offset)
	if f.storeThenFail > 0 {
		f.storeThenFail--
		return fmt.Errorf("read response: %w", errDown)
	}
	return nil
}

func (f *fakeStore) Progress(_ context.Context, _ *schemas.Stream, part int32) (int64, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.progress++
	if f.failProgress > 0 {
		f.failProgress--
		return 0, false, errDown
	}
	held := f.rows[part]
	if len(held) == 0 {
		return 0, false, nil
	}
	return held[len(held)-1].Offset, true, nil
}

func (f *fakeStore) Resume(_ context.Context, _ *schemas.Stream, part int32, window time.Duration, limit int) (sinks.Resumed, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resumes = append(f.resumes, resumeCall{window, limit})
	if f.failResume > 0 {
		f.failResume--
		return sinks.Resumed{}, errDown
	}
	held := f.rows[part]
	if len(held) == 0 {
		return sinks.Resumed{}, nil
	}
	res := sinks.Resumed{Offset: held[len(held)-1].Offset, OK: true}
	for _, r := range held {
		if r.Event.ReceivedAt.After(res.Newest) {
			res.Newest = r.Event.ReceivedAt
		}
	}
	for _, r := range held {
		if !r.Event.ReceivedAt.Before(res.Newest.Add(-window)) {
			res.IDs = append(res.IDs, sinks.Received{ID: r.Event.ID, At: r.Event.ReceivedAt, Offset: r.Offset})
		}
	}
	if len(res.IDs) > limit {
		res.IDs = res.IDs[len(res.IDs)-limit:]
	}
	return res, nil
}

// seed stores the events of specs at offsets from 0, as a store that held
// them before the partition was opened.
func (f *fakeStore) seed(t testing.TB, st *schemas.Stream, part int32, specs ...string) {
	t.Helper()
	b := makeBatch(t, st, 0, specs...)
	(&StoreDeliverer{}).Prepare(b)
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, m := range b.Messages {
		if b.Decoded[i].Err != nil {
			t.Fatalf("seed: %v", b.Decoded[i].Err)
		}
		f.rows[part] = append(f.rows[part], sinks.Row{Offset: m.Offset, Event: b.Decoded[i].Event, Record: b.Decoded[i].Record, Value: m.Value})
	}
}

// ids returns the event_ids the partition holds, in the order written.
func (f *fakeStore) ids(part int32) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.rows[part] {
		out = append(out, r.Event.ID)
	}
	return out
}

func (f *fakeStore) set(fn func(*fakeStore)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// fakeDLQ is an in-memory dead-letter topic.
type fakeDLQ struct {
	ops *opLog

	mu      sync.Mutex
	letters []DeadLetter
	calls   int
	// failNext fails the next n writes; down fails all of them.
	failNext int
	down     bool
}

func (q *fakeDLQ) WriteDeadLetters(_ context.Context, l []DeadLetter) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.calls++
	if q.down {
		return errDown
	}
	if q.failNext > 0 {
		q.failNext--
		return errDown
	}
	for _, d := range l {
		q.ops.add("dlq %d", d.Offset)
	}
	q.letters = append(q.letters, l...)
	return nil
}

func (q *fakeDLQ) list() []DeadLetter {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]DeadLetter(nil), q.letters...)
}

// describe renders letters as "offset reason" for comparison with
// expected reason prefixes.
func describeLetters(ls []DeadLetter) []string {
	var out []string
	for _, l := range ls {
		out = append(out, fmt.Sprintf("%d %s", l.Offset, l.Reason))
	}
	return out
}

// matchPrefixes reports whether each of got starts with the same-indexed
// want.
func matchPrefixes(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			return false
		}
	}
	return true
}

// fakeOutput is an in-memory sinks.Output with a script of failures.
type fakeOutput struct {
	name string

	mu sync.Mutex
	// calls holds the event_ids of each Publish call.
	calls [][]string
	// published holds the event_ids the output confirmed, in order.
	published []string
	// results scripts Publish's answers in turn: n >= 0 confirms the first
	// n rows and then fails (a sinks.PartialError); -1 fails confirming
	// none (a plain error); -2 fails with a permanent error that is no
	// PartialError. Once used up, Publish succeeds.
	results []int
	// down fails every Publish.
	down bool
	// refuse makes the output refuse these event_ids for good, as NATS
	// refuses a message larger than its maximum payload: it confirms the
	// rows before and fails with a permanent sinks.PartialError.
	refuse map[string]bool
}

func (o *fakeOutput) Name() string { return o.name }

func (o *fakeOutput) Publish(_ context.Context, _ *schemas.Stream, _ int32, rows []sinks.Row) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.Event.ID
	}
	o.calls = append(o.calls, ids)
	if o.down {
		return errDown
	}
	if len(o.results) > 0 {
		n := o.results[0]
		o.results = o.results[1:]
		switch n {
		case -1:
			return errDown
		case -2:
			return sinks.Permanent(errTooLarge)
		}
		n = min(n, len(ids))
		o.published = append(o.published, ids[:n]...)
		return fmt.Errorf("nats: %w", &sinks.PartialError{Done: n, Err: errDown})
	}
	for i, id := range ids {
		if o.refuse[id] {
			o.published = append(o.published, ids[:i]...)
			return &sinks.PartialError{Done: i, Err: sinks.Permanent(fmt.Errorf("event %s: %w", id, errTooLarge))}
		}
	}
	o.published = append(o.published, ids...)
	return nil
}

func (o *fakeOutput) state() (calls [][]string, published []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([][]string(nil), o.calls...), append([]string(nil), o.published...)
}

// fakeProgress is an in-memory sinks.ProgressLog.
type fakeProgress struct {
	mu    sync.Mutex
	saved map[string]int64
	loads int
	// failLoad fails the next n Loads.
	failLoad int
}

func progressKey(topic string, part int32) string { return fmt.Sprintf("%s/%d", topic, part) }

func (p *fakeProgress) Load(_ context.Context, topic string, part int32) (int64, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.loads++
	if p.failLoad > 0 {
		p.failLoad--
		return 0, false, errDown
	}
	off, ok := p.saved[progressKey(topic, part)]
	return off, ok, nil
}

func (p *fakeProgress) Save(_ context.Context, topic string, part int32, off int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.saved == nil {
		p.saved = make(map[string]int64)
	}
	p.saved[progressKey(topic, part)] = off
	return nil
}

// encodeEvent returns event id of stream st as it sits in Kafka, received
// at recv.
func encodeEvent(t testing.TB, st *schemas.Stream, id string, recv time.Time) []byte {
	t.Helper()
	ev := schemas.Event{ID: id, Key: "dev-1", ReceivedAt: recv, Fields: map[string]any{
		"device_id": "dev-1", "ts": time.UnixMilli(1_700_000_000_000), "metrics": map[string]float64{"t": 1},
	}}
	v, err := st.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// makeBatch builds a batch of partition 0 at consecutive offsets from
// first, one message per spec. A spec is an event_id, received at recv0
// plus its offset in seconds; "id@10m" is received at recv0 plus 10
// minutes; "!" is a message that is not a valid event. Every message has
// the Kafka time now.
func makeBatch(t testing.TB, st *schemas.Stream, first int64, specs ...string) *Batch {
	t.Helper()
	b := &Batch{Topic: testTopic, Stream: st, Partition: 0}
	now := time.Now()
	for i, spec := range specs {
		off := first + int64(i)
		v := []byte(`{"device_id":"dev-1","metrics":"not a map"}`)
		if spec != "!" {
			id, at, timed := strings.Cut(spec, "@")
			recv := recv0.Add(time.Duration(off) * time.Second)
			if timed {
				d, err := time.ParseDuration(at)
				if err != nil {
					t.Fatalf("spec %q: %v", spec, err)
				}
				recv = recv0.Add(d)
			}
			v = encodeEvent(t, st, id, recv)
		}
		b.Messages = append(b.Messages, Message{Offset: off, Key: []byte("dev-1"), Value: v, Time: now})
		b.Bytes += len(v)
	}
	return b
}

// batches cuts specs, the events at offsets from first, into batches of at
// most n (all in one when n is 0).
func batches(t testing.TB, st *schemas.Stream, first int64, n int, specs []string) []*Batch {
	t.Helper()
	if n <= 0 {
		n = max(len(specs), 1)
	}
	var out []*Batch
	for i := 0; i < len(specs); i += n {
		out = append(out, makeBatch(t, st, first+int64(i), specs[i:min(i+n, len(specs))]...))
	}
	return out
}

func newTestPartition(st *schemas.Stream, committed int64) *Partition {
	return &Partition{Topic: testTopic, Stream: st, ID: 0, Committed: committed, Assigned: 1, Outputs: 1}
}

func newTestStoreDeliverer(t testing.TB, store sinks.Store, dlq DeadLetterWriter, opts ...func(*StoreConfig)) *StoreDeliverer {
	t.Helper()
	cfg := StoreConfig{Store: store, DLQ: dlq, Retry: fastRetry, Logger: quiet}
	for _, o := range opts {
		o(&cfg)
	}
	d, err := NewStoreDeliverer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func newTestOutputDeliverer(t testing.TB, out sinks.Output, prog sinks.ProgressLog, dlq DeadLetterWriter, opts ...func(*OutputConfig)) *OutputDeliverer {
	t.Helper()
	cfg := OutputConfig{Output: out, Progress: prog, DLQ: dlq, Retry: fastRetry, Logger: quiet}
	for _, o := range opts {
		o(&cfg)
	}
	d, err := NewOutputDeliverer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// deliver prepares and delivers b, failing the test on an error or when
// the delivery takes more than 5 s (retrying something for ever).
func deliver(t testing.TB, d Deliverer, p *Partition, b *Batch) {
	t.Helper()
	d.Prepare(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Deliver(ctx, p, b); err != nil {
		t.Fatalf("%s: Deliver(%d-%d) = %v", d.Name(), b.First(), b.Last(), err)
	}
}
