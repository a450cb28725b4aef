package workers

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluicehq/sluice/internal/eventually"
)

// msgRange is the messages at offsets from..to, less those in holes, each
// with a value of size bytes.
func msgRange(from, to int64, size int, holes ...int64) []Message {
	var out []Message
next:
	for off := from; off <= to; off++ {
		for _, h := range holes {
			if off == h {
				continue next
			}
		}
		out = append(out, Message{Offset: off, Value: make([]byte, size)})
	}
	return out
}

func offsets(ms []Message) string {
	if ms == nil {
		return "miss"
	}
	s := ""
	for _, m := range ms {
		s += fmt.Sprint(m.Offset, " ")
	}
	return s
}

// The share answers a lane as Kafka would have: from the offset asked
// for, across the holes a fetch jumped over, within what it holds.
func TestFetchShare(t *testing.T) {
	s := newFetchShare(10 * (messageOverhead + 100))
	check := func(next int64, limit int, want string) {
		t.Helper()
		if got := offsets(s.take(next, limit, false)); got != want {
			t.Errorf("take(%d, %d) = %s, want %s", next, limit, got, want)
		}
	}
	check(0, 10, "miss")
	s.put(0, msgRange(0, 3, 100), false)
	check(0, 2, "0 1 ")
	check(2, 10, "2 3 ")
	check(4, 10, "miss")
	// The next fetch follows on, and starts after a hole: a lane at the
	// hole jumps over it, as from Kafka.
	s.put(4, msgRange(6, 7, 100), false)
	check(4, 10, "6 7 ")
	check(5, 1, "6 ")
	// Two lanes fetched at once: only what is new is added.
	s.put(6, msgRange(6, 9, 100), false)
	check(8, 10, "8 9 ")
	check(6, 10, "6 7 ")
	// Past ten messages' worth, the oldest chunks go.
	s.put(10, msgRange(10, 12, 100), false)
	check(0, 10, "miss")
	check(4, 10, "6 7 ")
	check(10, 10, "10 11 12 ")
	// A fetch of nothing newer is not kept; one that does not follow on
	// starts the window again.
	s.put(2, msgRange(2, 5, 100), false)
	check(4, 10, "6 7 ")
	s.put(20, msgRange(20, 21, 100), false)
	check(10, 10, "miss")
	check(20, 10, "20 21 ")
	// A fetch larger than the whole share is not kept.
	s.put(22, msgRange(22, 40, 100), false)
	check(22, 10, "miss")
	check(20, 10, "20 21 ")
	// The slice handed out cannot be appended to over the share's.
	if ms := s.take(20, 1, false); cap(ms) != 1 {
		t.Errorf("take hands out capacity %d past its length 1", cap(ms))
	}
	var none *fetchShare
	none.put(0, msgRange(0, 1, 1), false)
	if none.take(0, 1, false) != nil {
		t.Error("a nil share answered")
	}
}

// skippingFetcher is a fakeFetcher that can move on without a new reader,
// as a partitionReader does, and counts what it hands out.
type skippingFetcher struct {
	fakeFetcher
	handed *atomic.Int64
}

func (f *skippingFetcher) SkipTo(o int64) error {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	f.offset = o
	return nil
}

func (f *skippingFetcher) FetchMessages(ctx context.Context, limit int) ([]Message, error) {
	ms, err := f.fakeFetcher.FetchMessages(ctx, limit)
	f.handed.Add(int64(len(ms)))
	return ms, err
}

// Two lanes of a partition: the one behind reads what the one ahead
// fetched from the share, catches up from Kafka when the share no longer
// holds where it is, and moves its own reader on past what it read from
// the share; each lane gets every message once, in order.
func TestLanesShareFetches(t *testing.T) {
	// A lane waiting at the end rereads once its idle check is up: soon.
	old := idleCheck
	idleCheck = 20 * time.Millisecond
	t.Cleanup(func() { idleCheck = old })
	script := &fetchScript{high: 300}
	store, output := &recordingSink{name: "clickhouse"}, &recordingSink{name: "nats"}
	c, pool := newLaneConsumer(t, script, store, &fakeDLQ{})
	var storeReads, outputReads atomic.Int64
	c.newFetcher = func(string, int32) fetcher {
		// The store's lane starts first: its readers count in storeReads.
		if len(store.delivered()) < int(script.high) {
			return &skippingFetcher{fakeFetcher{s: script}, &storeReads}
		}
		return &skippingFetcher{fakeFetcher{s: script}, &outputReads}
	}
	p := newTestPartition(iotStream(t), 0)
	// A hundred messages' worth: the share holds the last hundred.
	p.fetched = newFetchShare(100 * (messageOverhead + int64(len("dev-1"))))
	startLane(t, c, pool, store, p, 0, false, NewTracker())
	eventually.True(t, 5*time.Second, "the store's lane to read 300 messages", func() bool { return len(store.delivered()) == 300 })

	startLane(t, c, pool, output, p, 0, true, NewTracker())
	eventually.True(t, 5*time.Second, "the output's lane to read 300 messages", func() bool { return len(output.delivered()) == 300 })
	if n := outputReads.Load(); n < 195 || n > 205 {
		t.Errorf("the output's lane read %d messages from Kafka, want the 200 the share no longer held", n)
	}
	script.mu.Lock()
	script.high = 400
	script.mu.Unlock()
	eventually.True(t, 5*time.Second, "both lanes to read 400 messages", func() bool {
		return len(store.delivered()) == 400 && len(output.delivered()) == 400
	})
	for _, s := range []*recordingSink{store, output} {
		for i, off := range s.delivered() {
			if off != int64(i) {
				t.Fatalf("%s: offset %d delivered %d-th", s.name, off, i)
			}
		}
	}
	kafkaReads := testutil.ToFloat64(c.metrics.fetched.WithLabelValues("nats", testStream, "kafka"))
	shared := testutil.ToFloat64(c.metrics.fetched.WithLabelValues("nats", testStream, "shared"))
	if kafkaReads+shared != 400 || kafkaReads != float64(outputReads.Load()) {
		t.Errorf("the output's lane counted %v messages from Kafka and %v shared, its readers handed out %d; want 400 in all",
			kafkaReads, shared, outputReads.Load())
	}
}

// pollingFetcher is a skippingFetcher that answers as a broker's fetch
// does: every message it holds from the reader's offset on, up to limit,
// and when it holds none yet, the first ones produced while it waits.
type pollingFetcher struct {
	skippingFetcher
}

func (f *pollingFetcher) FetchMessages(ctx context.Context, limit int) ([]Message, error) {
	for {
		f.s.mu.Lock()
		avail := f.s.high - max(f.offset, 0)
		f.s.mu.Unlock()
		if avail > 0 {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	var out []Message
	for len(out) < limit {
		f.s.mu.Lock()
		more := f.offset < f.s.high
		f.s.mu.Unlock()
		if !more {
			break
		}
		m, err := f.fetchMessage(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	f.handed.Add(int64(len(out)))
	return out, nil
}

// Two lanes that wait together at the end of the partition do not both
// fetch what is produced next: one fetches it, the other waits for that
// fetch and takes the messages from the share.
func TestLanesAtTheEndFetchOnce(t *testing.T) {
	script := &fetchScript{high: 10}
	store, output := &recordingSink{name: "clickhouse"}, &recordingSink{name: "nats"}
	c, pool := newLaneConsumer(t, script, store, &fakeDLQ{})
	var reads atomic.Int64
	c.newFetcher = func(string, int32) fetcher {
		return &pollingFetcher{skippingFetcher{fakeFetcher{s: script}, &reads}}
	}
	p := newTestPartition(iotStream(t), 0)
	p.fetched = newFetchShare(DefaultFetchShareBytes)
	startLane(t, c, pool, store, p, 0, false, NewTracker())
	startLane(t, c, pool, output, p, 0, true, NewTracker())
	eventually.True(t, 5*time.Second, "both lanes to read the first 10 messages", func() bool {
		return len(store.delivered()) == 10 && len(output.delivered()) == 10
	})
	const rounds, each = 20, 100
	before := reads.Load()
	for i := range rounds {
		// Both lanes wait at the end before each round is produced.
		time.Sleep(5 * time.Millisecond)
		script.mu.Lock()
		script.high += each
		script.mu.Unlock()
		want := 10 + (i+1)*each
		eventually.True(t, 5*time.Second, "both lanes to read the round", func() bool {
			return len(store.delivered()) == want && len(output.delivered()) == want
		})
	}
	// Each round is fetched once; a lane that had not yet asked when the
	// other's fetch returned may fetch a round's tail again.
	if n := reads.Load() - before; n > rounds*each*5/4 {
		t.Errorf("the lanes read %d messages from Kafka for %d produced, want each read once", n, rounds*each)
	}
	for _, s := range []*recordingSink{store, output} {
		for i, off := range s.delivered() {
			if off != int64(i) {
				t.Fatalf("%s: offset %d delivered %d-th", s.name, off, i)
			}
		}
	}
}

// gatedSink is a recordingSink whose deliveries wait until gate is closed.
type gatedSink struct {
	recordingSink
	gate chan struct{}
}

func (s *gatedSink) Deliver(ctx context.Context, p *Partition, b *Batch) error {
	select {
	case <-s.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.recordingSink.Deliver(ctx, p, b)
}

// The share keeps, beyond its size, the messages of the batches the
// store's lane holds (being cut, or in flight): an output's lane that
// follows the store's a few batches behind takes them from the share
// instead of reading Kafka again. Once the store's lane is done with them,
// the share is back within its size.
func TestShareKeepsWhatTheStoresLaneHolds(t *testing.T) {
	script := &fetchScript{high: 12}
	store := &gatedSink{recordingSink: recordingSink{name: "clickhouse"}, gate: make(chan struct{})}
	output := &recordingSink{name: "nats"}
	c, pool := newLaneConsumer(t, script, store, &fakeDLQ{})
	var lanes, storeReads, outputReads atomic.Int64
	c.newFetcher = func(string, int32) fetcher {
		if lanes.Add(1) == 1 {
			return &skippingFetcher{fakeFetcher{s: script}, &storeReads}
		}
		return &skippingFetcher{fakeFetcher{s: script}, &outputReads}
	}
	p := newTestPartition(iotStream(t), 0)
	// Room for the 12 messages' Message structs, not for the messages
	// whole: only what the store's lane holds costs the share so little.
	p.fetched = newFetchShare(12*messageOverhead + 40)
	held := func() int {
		p.fetched.mu.Lock()
		defer p.fetched.mu.Unlock()
		return len(p.fetched.held)
	}
	startLane(t, c, pool, store, p, 0, false, NewTracker())
	// Batches of 4: one in Deliver, one queued, one cut and waiting.
	eventually.True(t, 5*time.Second, "the store's lane to hold three batches", func() bool {
		return storeReads.Load() == 12 && held() == 3
	})
	startLane(t, c, pool, output, p, 0, true, NewTracker())
	eventually.True(t, 5*time.Second, "the output's lane to deliver 12 messages", func() bool { return len(output.delivered()) == 12 })
	if n := outputReads.Load(); n != 0 {
		t.Errorf("the output's lane read %d messages from Kafka, want none: the store's lane held them all", n)
	}
	close(store.gate)
	eventually.True(t, 5*time.Second, "the store's lane to deliver 12 messages and hold none", func() bool {
		return len(store.delivered()) == 12 && held() == 0
	})
	p.fetched.mu.Lock()
	defer p.fetched.mu.Unlock()
	if p.fetched.bytes > p.fetched.max {
		t.Errorf("the share holds %d bytes once the store's lane holds nothing, want at most %d", p.fetched.bytes, p.fetched.max)
	}
}

// The chunks the store's lane holds messages of cost the share their
// Message structs only, so that it keeps more of them, but no more than
// its size in Message structs: a store's lane that held a batch forever
// (a bug) cannot make it grow without bound.
func TestShareHoldIsBounded(t *testing.T) {
	s := newFetchShare(4 * (messageOverhead + 100))
	s.hold(0)
	for from := int64(0); from < 400; from += 4 {
		s.reach(from + 4)
		s.put(from, msgRange(from, from+3, 100), true)
	}
	msgs := 0
	for _, c := range s.chunks {
		msgs += len(c.msgs)
	}
	if msgs <= 4 || int64(msgs)*messageOverhead > s.max {
		t.Errorf("the share keeps %d held messages, want more than the 4 it keeps otherwise and at most %d", msgs, s.max/messageOverhead)
	}
	if got := offsets(s.take(0, 1, false)); got != "miss" {
		t.Errorf("take(0) = %s past the bound, want a miss", got)
	}
	s.release(0)
	if s.bytes > s.max {
		t.Errorf("the share holds %d bytes after the release, want at most %d", s.bytes, s.max)
	}
}

// What an output's lane fetched beyond where the store's lane has read
// (the output ahead, ClickHouse slow) is kept within the share's size
// only, whatever the store's lane holds: those messages are in memory for
// nobody else.
func TestShareKeepsOnlyWhatTheStoreHasRead(t *testing.T) {
	size := messageOverhead + 100
	s := newFetchShare(4 * size)
	s.hold(0)
	s.reach(4)
	s.put(0, msgRange(0, 3, 100), true)
	for from := int64(4); from < 40; from += 4 {
		s.put(from, msgRange(from, from+3, 100), false)
	}
	if got := offsets(s.take(0, 4, false)); got != "0 1 2 3 " {
		t.Errorf("take(0) = %s, want what the store's lane holds", got)
	}
	if s.bytes > 8*size {
		t.Errorf("the share holds %d bytes, want at most %d: the held chunk and its size", s.bytes, 8*size)
	}
}
