package workers

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/backpressure"
	"github.com/sluicehq/sluice/deadletter"
	"github.com/sluicehq/sluice/internal/slicepool"
	"golang.org/x/sync/semaphore"
)

// lane reads one partition for one sink, from that sink's own progress,
// cuts batches, has the pool decode them, and delivers them to the sink in
// offset order. Three goroutines work for a lane: the fetcher (owns msgs),
// the batcher (run itself; owns ordered), and the deliverer, the only one
// that calls Deliver for the partition and sink.
type lane struct {
	c     *Consumer
	pool  *Pool
	sink  Deliverer
	part  *Partition
	start int64
	// output is set for an output's lane, which may skip what Kafka no
	// longer holds; the store's lane stops there instead.
	output bool
	// idle bounds the fetcher's wait before it checks the log start;
	// owned by the fetcher.
	idle       context.Context
	cancelIdle context.CancelFunc
	// accepted is set, by the fetcher, from an operator's acceptance of a
	// gap until the next message is read.
	accepted bool
	// seekBefore is set, by the fetcher, while the lane reads from the
	// partition's fetchShare: its reader must move on before it fetches.
	seekBefore bool
	// fetchedKafka and fetchedShared count the messages the fetcher read
	// from Kafka and from the partition's fetchShare.
	fetchedKafka, fetchedShared prometheus.Counter
	// leadLate is set, by the deliverer, while an output's lane does not
	// wait for the store's answers: see awaitLead.
	leadLate bool
	// budget is the sink's share of the byte budget.
	budget     *semaphore.Weighted
	tracker    *Tracker
	stop       context.Context
	deliverCtx context.Context
}

func (l *lane) run() {
	cfg := l.c.cfg
	// Two chunks of up to maxChunk messages: what the lane holds ahead
	// of its batches (membudget counts 256 messages a reader).
	msgs := make(chan []Message, 2)
	fetched := make(chan struct{})
	go func() {
		defer close(fetched)
		l.fetch(msgs)
	}()

	// ordered holds the lane's jobs in offset order; its capacity is what
	// bounds the partition's batches in flight.
	ordered := make(chan *job, cfg.MaxInFlight-1)
	delivered := make(chan struct{})
	go func() {
		defer close(delivered)
		l.deliver(ordered)
	}()
	l.batch(msgs, ordered)
	close(ordered)
	<-delivered
	// The fetcher stops with the lane (l.stop): waiting for it keeps a
	// revoked lane's reader (and a gap it reports) out of the next
	// generation.
	<-fetched
}

// fetcher is what a lane reads a partition with: a *partitionReader, or a
// fake in tests.
type fetcher interface {
	SetOffset(offset int64) error
	// FetchMessages returns the partition's next messages, at least one
	// and at most limit, waiting for one to be produced.
	FetchMessages(ctx context.Context, limit int) ([]Message, error)
	Close() error
}

// newReader is a reader of the lane's partition.
func (l *lane) newReader() fetcher {
	if l.c.newFetcher != nil {
		return l.c.newFetcher(l.part.Topic, l.part.ID)
	}
	return &partitionReader{
		dialer:    l.c.readerDialer,
		brokers:   l.c.cfg.Brokers,
		topic:     l.part.Topic,
		partition: int(l.part.ID),
		// The broker answers a fetch once it has minBytes or maxWait has
		// passed. With minBytes 1 each lane fetched once per produce
		// batch, about a hundred times a second per partition, and the
		// requests were a fifth of the work role's CPU; waiting for
		// fetchMinBytes or fetchMaxWait costs at most fetchMaxWait of
		// latency at low rates.
		minBytes: min(fetchMinBytes, l.c.cfg.FetchMaxBytes/2),
		// Small fetches keep what a lane holds outside the byte budget to
		// a few MiB per partition.
		maxBytes: l.c.cfg.FetchMaxBytes,
		maxWait:  fetchMaxWait,
	}
}

// fetchMinBytes and fetchMaxWait are what a lane's fetch waits for: the
// broker answers once it holds fetchMinBytes for the partition, or after
// fetchMaxWait.
//
// A quarter of a second is small beside the batches' linger (a second by
// default), and at 20,000 events/s over 16 partitions it takes a lane
// four fetches a second instead of ten.
const (
	fetchMinBytes = 256 << 10
	fetchMaxWait  = 250 * time.Millisecond
)

// fetchRetry is how long a lane waits before reading again after a failed
// read: it doubles from Initial up to Max while reads keep failing.
var fetchRetry = struct{ Initial, Max time.Duration }{100 * time.Millisecond, 5 * time.Second}

// fetch reads the partition into msgs, and closes msgs, when the lane
// stops. A failed read never ends it while the partition is assigned: a
// lane that ended would leave the partition unread until the next
// rebalance. The failure is logged and counted, and reading resumes at the
// next offset on a new reader after a backoff.
func (l *lane) fetch(msgs chan<- []Message) {
	defer close(msgs)
	defer func() {
		if l.cancelIdle != nil {
			l.cancelIdle()
		}
	}()
	labels := []string{l.sink.Name(), l.part.Stream.Name, strconv.Itoa(int(l.part.ID))}
	lag := l.c.metrics.lag.WithLabelValues(labels...)
	l.fetchedKafka = l.c.metrics.fetched.WithLabelValues(l.sink.Name(), l.part.Stream.Name, "kafka")
	l.fetchedShared = l.c.metrics.fetched.WithLabelValues(l.sink.Name(), l.part.Stream.Name, "shared")
	defer l.c.metrics.lag.DeleteLabelValues(labels...)
	next, wait := l.start, fetchRetry.Initial
	for {
		r := l.newReader()
		err := l.checkLogStart(&next)
		if err == nil {
			err = r.SetOffset(next)
			l.seekBefore = false
		}
		for err == nil {
			var ms []Message
			if ms, err = l.fetchShared(r, &next); err != nil {
				break
			}
			wait = fetchRetry.Initial
			last := ms[len(ms)-1]
			lag.Set(float64(max(0, last.HighWaterMark-last.Offset-1)))
			err = l.pass(ms, &next, msgs)
		}
		_ = r.Close()
		if l.stop.Err() != nil {
			return
		}
		l.c.metrics.fetchErrors.WithLabelValues(l.part.Stream.Name).Inc()
		l.c.log.Error("fetch failed; reading the partition again after a pause", "topic", l.part.Topic, "partition", l.part.ID,
			"sink", l.sink.Name(), "offset", next, "retry_in", wait, "err", err)
		select {
		case <-time.After(wait):
		case <-l.stop.Done():
			return
		}
		wait = min(2*wait, fetchRetry.Max)
	}
}

// idleCheck is how long a lane waits for a message before it checks that
// Kafka still holds the offset it waits at.
var idleCheck = 5 * time.Second

// pass hands ms to the batcher. A jump over offsets before a message is
// handled as a gap, after the messages before it were handed on.
func (l *lane) pass(ms []Message, next *int64, msgs chan<- []Message) error {
	start := 0
	for i, m := range ms {
		if *next >= 0 && m.Offset > *next {
			if err := l.send(ms[start:i], msgs); err != nil {
				return err
			}
			start = i
			if _, err := l.gap(*next, m.Offset-1, false); err != nil {
				return err
			}
		}
		*next = m.Offset + 1
		l.accepted = false
	}
	return l.send(ms[start:], msgs)
}

func (l *lane) send(ms []Message, msgs chan<- []Message) error {
	if len(ms) == 0 {
		return nil
	}
	select {
	case msgs <- ms:
		return nil
	case <-l.stop.Done():
		return l.stop.Err()
	}
}

// maxChunk is the most messages a lane's fetcher hands its batcher at
// once: handing them over one at a time cost two channel operations each.
const maxChunk = 128

// skipper is a fetcher that can move on to another offset between
// fetches; a lane shares fetches with the partition's other lanes only
// with one.
type skipper interface {
	SkipTo(offset int64) error
}

// fetchShared returns the partition's next messages, one or more: from
// what another lane of the partition fetched, when the partition's share
// still holds them, else from the lane's own reader, whose answer it then
// shares. When another lane is fetching from the same offset already, it
// waits for that fetch rather than send the same request.
func (l *lane) fetchShared(r fetcher, next *int64) ([]Message, error) {
	sk, ok := r.(skipper)
	share := l.part.fetched
	if !ok || share == nil {
		return l.fetchSome(r, next)
	}
	for {
		if ms := share.take(*next, maxChunk, !l.output); ms != nil {
			l.seekBefore = true
			l.fetchedShared.Add(float64(len(ms)))
			l.reach(ms)
			return ms, nil
		}
		wait := share.begin(*next)
		if wait == nil {
			break
		}
		select {
		case <-wait:
		case <-l.stop.Done():
			return nil, l.stop.Err()
		}
	}
	from := *next
	defer share.end(from)
	if l.seekBefore {
		// The reader is where the lane was before it read from the share.
		if err := sk.SkipTo(*next); err != nil {
			return nil, err
		}
		l.seekBefore = false
	}
	ms, err := l.fetchSome(r, next)
	if err == nil {
		l.reach(ms)
		share.put(from, ms, !l.output)
		l.fetchedKafka.Add(float64(len(ms)))
	}
	return ms, err
}

// reach tells the partition's fetch share, on the store's lane, how far
// the lane has read: see fetchShare.hold.
func (l *lane) reach(ms []Message) {
	if !l.output && len(ms) > 0 {
		l.part.fetched.reach(ms[len(ms)-1].Offset + 1)
	}
}

// fetchSome returns the partition's next messages, one or more. Every
// idleCheck (one deadline shared by many fetches, so that a busy lane pays
// nothing per message) it checks that Kafka has not deleted the offset the
// lane waits at: the reader would move on to the log start, and with no
// message after the deleted range, the jump would never show.
func (l *lane) fetchSome(r fetcher, next *int64) ([]Message, error) {
	for {
		if l.idle == nil || l.idle.Err() != nil {
			if l.cancelIdle != nil {
				l.cancelIdle()
			}
			l.idle, l.cancelIdle = context.WithTimeout(l.stop, idleCheck)
		}
		ms, err := r.FetchMessages(l.idle, maxChunk)
		if err == nil || l.stop.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return ms, err
		}
		if err := l.checkLogStart(next); err != nil {
			return nil, err
		}
	}
}

// checkLogStart reports the range from next to Kafka's first offset of the
// partition as a gap when Kafka deleted it, and moves next past it. A
// failure to ask is no gap: the reader's own jump check still holds.
func (l *lane) checkLogStart(next *int64) error {
	if *next < 0 || l.c.logStart == nil {
		return nil
	}
	first, err := l.c.logStart(l.stop, l.part.Topic, l.part.ID)
	if err != nil || first <= *next {
		return nil
	}
	last, err := l.gap(*next, first-1, true)
	if err != nil {
		return err
	}
	*next = last + 1
	return nil
}

// gap handles offsets first..last that the reader jumped over: stream topics
// are neither compacted nor transactional, so a jump means Kafka deleted them
// (retention) before this sink read them. An output skips them with a
// record; the store's lane stops until an operator accepts the loss, so that
// nothing is ever skipped silently. It returns an error only when the lane
// stops first.
//
// With extend set (no message after the gap is in hand yet), the gap takes
// in what Kafka deleted while it waited for the operator: the same backlog,
// still expiring, which the operator accepted as lost by accepting "what
// Kafka no longer holds". It returns the gap's last offset.
func (l *lane) gap(first, last int64, extend bool) (int64, error) {
	g := Gap{Stream: l.part.Stream.Name, Topic: l.part.Topic, Partition: l.part.ID, First: first, Last: last}
	switch {
	case !l.output && l.accepted:
		// The backlog the operator accepted as lost goes on expiring
		// until the lane reads its first message past it: the same loss.
		l.c.log.Warn("more expired right after the accepted gap, before anything past it was read: part of the accepted loss", "gap", g.String())
	case !l.output:
		l.c.log.Error("partition stopped: data expired from Kafka before it was stored; an operator must accept the loss to go on",
			"gap", g.String(), "sink", l.sink.Name())
		if err := l.c.gaps.wait(l.stop, g); err != nil {
			return last, err
		}
		l.accepted = true
		l.c.log.Warn("gap accepted by the operator: reading on past it", "gap", g.String())
		if extend && l.c.logStart != nil {
			if now, err := l.c.logStart(l.stop, g.Topic, g.Partition); err == nil && now-1 > g.Last {
				g.Last = now - 1
				l.c.log.Warn("more expired while the gap waited: the accepted loss grows to Kafka's log start", "gap", g.String())
			}
		}
	default:
		l.c.log.Warn("output skips data expired from Kafka before it was published", "gap", g.String(), "sink", l.sink.Name())
	}
	if err := l.recordGap(g); err != nil {
		return g.Last, err
	}
	l.tracker.Done(l.part.ID, g.First, g.Last)
	return g.Last, nil
}

// recordGap writes a record of a lost range to the dead-letter topic,
// retrying until it is written or the lane stops: an accepted loss must
// leave a trace.
func (l *lane) recordGap(g Gap) error {
	if l.c.cfg.DeadLetters == nil {
		return nil
	}
	letter := DeadLetter{Stream: g.Stream, Topic: g.Topic, Partition: g.Partition, Offset: g.First,
		SkippedBy: deadletter.SkippedByRetention, SkippedThrough: g.Last,
		Reason: fmt.Sprintf("lost to Kafka retention before %s had them: %s", l.sink.Name(), g)}
	return backpressure.Retry(l.stop, l.c.log, "record a gap in the dead-letter topic", backpressure.DefaultRetry, func(ctx context.Context) error {
		return l.c.cfg.DeadLetters.WriteDeadLetters(ctx, []DeadLetter{letter})
	})
}

// batch cuts msgs into batches by count, bytes and time, and hands each to
// the pool and, in order, to the deliverer.
func (l *lane) batch(msgs <-chan []Message, ordered chan<- *job) {
	cfg := l.c.cfg
	var cur *Batch
	// lastLen sizes a new batch like the one before, rather than growing
	// it by doubling from nothing.
	lastLen := 0
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	defer linger.Stop()
	defer func() {
		if cur != nil {
			l.unhold(cur)
		}
	}()

	flush := func() bool {
		if cur == nil {
			return true
		}
		b := cur
		cur = nil
		lastLen = len(b.Messages)
		linger.Stop()
		if err := l.budget.Acquire(l.stop, l.weight(b)); err != nil {
			l.unhold(b)
			return false
		}
		j := &job{batch: b, prepare: l.sink.Prepare, stop: l.stop, prepared: make(chan struct{})}
		select {
		case ordered <- j:
		case <-l.stop.Done():
			l.budget.Release(l.weight(b))
			l.unhold(b)
			return false
		}
		if err := l.pool.submit(j); err != nil {
			// The deliverer sees stop and abandons it.
			close(j.prepared)
			return false
		}
		return true
	}

	for {
		select {
		case ms, ok := <-msgs:
			if !ok {
				return
			}
			for _, m := range ms {
				if cur == nil {
					cur = &Batch{Topic: l.part.Topic, Stream: l.part.Stream, Partition: l.part.ID,
						Messages: messagePool.Get(min(lastLen+lastLen/4, cfg.BatchMaxEvents))}
					linger.Reset(cfg.BatchLinger)
					if !l.output {
						l.part.fetched.hold(m.Offset)
					}
				}
				cur.Messages = append(cur.Messages, m)
				cur.Bytes += len(m.Value)
				if len(cur.Messages) >= cfg.BatchMaxEvents || cur.Bytes >= cfg.BatchMaxBytes {
					if !flush() {
						return
					}
				}
			}
		case <-linger.C:
			if !flush() {
				return
			}
		case <-l.stop.Done():
			return
		}
	}
}

// weight is what a batch takes from the byte budget: its size, capped so
// that one batch larger than the whole budget still gets through alone.
func (l *lane) weight(b *Batch) int64 {
	return min(int64(b.Bytes)+1, l.c.budgetSize)
}

// deliver delivers the lane's jobs one at a time, in order. Once the
// partition is revoked, jobs not yet started are abandoned; a delivery
// already running finishes (bounded by deliverCtx), because abandoning an
// INSERT half way would leave it unknown whether ClickHouse stored it while
// the next owner already reads.
func (l *lane) deliver(ordered <-chan *job) {
	abandoned := false
	for j := range ordered {
		b, delivered := j.batch, false
		if !abandoned {
			select {
			case <-j.prepared:
			case <-l.stop.Done():
			}
			abandoned = l.stop.Err() != nil
		}
		if !abandoned && l.output {
			l.awaitLead(b)
		}
		if !abandoned {
			start := time.Now()
			if err := l.sink.Deliver(l.deliverCtx, l.part, b); err != nil {
				abandoned = true
				l.c.log.Warn("delivery abandoned", "topic", l.part.Topic, "partition", l.part.ID, "sink", l.sink.Name(), "first", b.First(), "err", err)
			} else {
				l.tracker.Done(b.Partition, b.First(), b.Last())
				l.c.metrics.delivered.WithLabelValues(l.sink.Name(), b.Stream.Name).Add(float64(len(b.Messages)))
				l.c.metrics.deliverSeconds.WithLabelValues(l.sink.Name(), b.Stream.Name).Observe(time.Since(start).Seconds())
				delivered = true
			}
		}
		l.budget.Release(l.weight(b))
		l.unhold(b)
		if delivered {
			recycleMessages(b)
		}
	}
}

// unhold ends, on the store's lane, the fetch share's hold on b's messages
// (fetchShare.hold), taken when b was begun: b is delivered, abandoned or
// dropped, and the lane no longer keeps its messages.
func (l *lane) unhold(b *Batch) {
	if !l.output && len(b.Messages) > 0 {
		l.part.fetched.release(b.First())
	}
}

// messagePool recycles the Messages of delivered batches.
var messagePool slicepool.Pool[Message]

// recycleMessages gives b's Messages back once b is delivered: prepared
// (so that no worker of the pool reads them) and no longer the
// deliverer's. A batch abandoned half way keeps them.
func recycleMessages(b *Batch) {
	messagePool.Put(b.Messages)
	b.Messages = nil
}

// leadWait bounds how long an output's lane waits for the store's lane to
// decide anything more: see awaitLead. The store decides a batch just
// before its INSERT, so the bound must outlast an INSERT: at saturation on
// a busy machine, half a second often did not.
var leadWait = 2 * time.Second

// awaitLead waits, on an output's lane, until the store's lane has decided
// the events of b (which are duplicates, which invalid), as long as the
// store's lane keeps deciding: a wait runs out when it has decided nothing
// for leadWait.
//
// Why: an output that decides for itself validates each event in full and
// looks its id up in the dedupe window, where following the store's
// verdicts costs it only reading the envelope; at saturation deciding was
// a sixth of the work role's CPU. The store's lane decides a batch before
// it writes it, so while it keeps up the wait is about one INSERT. While
// it is slower than the input (at saturation), the output keeps its pace
// rather than run ahead and spend the CPU the store lacks: an earlier bound
// on the whole wait let the output go its own way as soon as the store
// fell half a second behind, and it never came back.
//
// An output is never held back for long by a store that is down or stuck:
// once a wait runs out, the lane decides for itself (as it always may) and
// waits no more until the store's lane has caught up with it.
func (l *lane) awaitLead(b *Batch) {
	w := l.part.window
	if w == nil {
		return
	}
	to, moved := w.DecidedTo()
	if l.leadLate {
		if to < b.First() {
			return // still behind the output
		}
		l.leadLate = false
	}
	if to > b.Last() {
		return
	}
	t := time.NewTimer(leadWait)
	defer t.Stop()
	for to <= b.Last() {
		select {
		case <-moved:
			t.Reset(leadWait)
		case <-t.C:
			l.leadLate = true
			return
		case <-l.stop.Done():
			return
		}
		to, moved = w.DecidedTo()
	}
}
