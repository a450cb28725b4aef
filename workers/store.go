package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/sluicehq/sluice/backpressure"
	"github.com/sluicehq/sluice/eventkey"
	"github.com/sluicehq/sluice/internal/slicepool"
	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks"
)

// StoreConfig configures a StoreDeliverer.
type StoreConfig struct {
	// Name names the store in logs and metrics (default "clickhouse").
	Name  string
	Store sinks.Store
	DLQ   DeadLetterWriter

	// DedupeWindow is how far back in receive time an event_id is
	// remembered (default 10 min).
	DedupeWindow time.Duration
	// DedupeMaxIDs bounds the ids remembered across the partitions this
	// worker owns (default 4,000,000); each partition gets its share of
	// the partitions actually assigned. The window is shorter when a
	// partition receives more within DedupeWindow.
	DedupeMaxIDs int

	Retry   backpressure.RetryPolicy
	Logger  *slog.Logger
	Metrics *SinkMetrics
}

// StoreDeliverer is the Deliverer of the store (ClickHouse). It writes each
// partition exactly once in effect:
//
//   - its lane starts after the highest offset the store holds, whatever
//     Kafka's committed offset says, so a lost tail is read again and a
//     stored range is not;
//   - an event_id seen within the dedupe window is not written again;
//   - each batch is one atomic write of one partition's consecutive offsets;
//   - what the store refuses for its content goes to the dead-letter topic,
//     one row at a time, before any later row is written, and the rest of
//     the batch still lands.
//
// docs/delivery.md explains the failure windows this covers.
type StoreDeliverer struct {
	cfg StoreConfig
	log *slog.Logger
	m   *SinkMetrics
}

// NewStoreDeliverer returns a StoreDeliverer.
func NewStoreDeliverer(cfg StoreConfig) (*StoreDeliverer, error) {
	if cfg.Store == nil || cfg.DLQ == nil {
		return nil, errors.New("workers: the store's delivery needs a store and a dead-letter writer")
	}
	if cfg.Name == "" {
		cfg.Name = "clickhouse"
	}
	if cfg.DedupeWindow <= 0 {
		cfg.DedupeWindow = 10 * time.Minute
	}
	if cfg.DedupeMaxIDs <= 0 {
		cfg.DedupeMaxIDs = 4_000_000
	}
	if cfg.Retry.Initial <= 0 {
		cfg.Retry = backpressure.DefaultRetry
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewSinkMetrics(nil)
	}
	return &StoreDeliverer{cfg: cfg, log: cfg.Logger.With("component", "delivery", "sink", cfg.Name), m: cfg.Metrics}, nil
}

// Name names the store.
func (d *StoreDeliverer) Name() string { return d.cfg.Name }

// Open learns what the store holds of the partition: its highest offset,
// where the lane starts, and the event_ids within the dedupe window of the
// newest one it received, which fill the partition's shared window.
func (d *StoreDeliverer) Open(ctx context.Context, p *Partition) (int64, error) {
	st := p.Stream
	if p.window == nil {
		p.window = d.newWindow(p)
	}
	perPartition := d.perPartition(p)
	var stored int64 = -1
	err := d.retry(ctx, fmt.Sprintf("read progress of %s/%d", st.Name, p.ID), func(ctx context.Context) error {
		res, err := d.cfg.Store.Resume(ctx, st, p.ID, d.cfg.DedupeWindow, perPartition)
		d.m.observeProgress(d.cfg.Name, st.Name, err)
		if err != nil {
			return err
		}
		if res.OK {
			stored = res.Offset
		}
		for _, r := range res.IDs {
			p.window.Remember(idHasher.Sum(r.ID), r.Offset, r.At)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("open %s partition %d: %w", st.Name, p.ID, err)
	}
	start := p.Committed
	switch {
	case stored < 0 && p.Committed < 0:
		// Nothing stored and nothing committed: from offset 0, not from
		// wherever the log starts now, so that data Kafka deleted before
		// the store ever read it shows as a gap rather than vanishing.
		start = 0
	case stored < 0:
		// Nothing stored (or all of it removed on purpose, by TTL): the
		// committed offset is all there is to go by.
	case p.Committed >= 0 && stored+1 < p.Committed:
		d.log.Warn("the store holds less than Kafka's committed offset says: reading again from what it holds",
			"stream", st.Name, "partition", p.ID, "stored_up_to", stored, "committed", p.Committed)
		start = stored + 1
	default:
		start = stored + 1
	}
	d.log.Info("partition opened", "stream", st.Name, "partition", p.ID, "stored_up_to", stored,
		"committed", p.Committed, "start", start, "dedupe_ids", p.window.Len())
	return start, nil
}

// windowMaker is implemented by the store's Deliverer: the consumer makes a
// partition's dedupe window before any of its lanes opens, so that an
// output's lane can use it while the store is still unreachable (the store
// fills it once it opens).
type windowMaker interface {
	newWindow(p *Partition) *dedupeWindow
}

func (d *StoreDeliverer) newWindow(p *Partition) *dedupeWindow {
	return newDedupeWindow(d.cfg.DedupeWindow, d.perPartition(p))
}

// perPartition is a partition's share of DedupeMaxIDs.
func (d *StoreDeliverer) perPartition(p *Partition) int {
	return d.cfg.DedupeMaxIDs / max(1, p.Assigned)
}

// Prepare decodes and validates every message.
//
// The fields go into one schemas.Records per batch, which the store reads
// column by column, rather than a map per event.
func (d *StoreDeliverer) Prepare(b *Batch) {
	rs := schemas.NewRecords(b.Stream, len(b.Messages))
	prepare(b, rs.Decode)
	rs.Done()
	b.records = rs
}

// release gives b's Records back for later batches, once b is stored and
// nothing reads its Decoded any more. A batch abandoned half way keeps
// them: a write the driver may still be reading must not see them reused.
func release(b *Batch) {
	if b.records != nil {
		b.records.Release()
		decodedPool.Put(b.Decoded)
		b.records, b.Decoded = nil, nil
	}
}

// Deliver writes one batch. It returns an error only when ctx ends first.
func (d *StoreDeliverer) Deliver(ctx context.Context, p *Partition, b *Batch) error {
	st := b.Stream
	var (
		rows = rowPool.Get(len(b.Messages))
		dead []DeadLetter
		dups int
		// envs is, for the outputs, where the kept events' envelopes are.
		envs []envelopeAt
	)
	if p.Outputs > 0 {
		envs = make([]envelopeAt, b.Last()-b.First()+1)
	}
	warm(p.window, b.Decoded)
	for i, m := range b.Messages {
		dec := b.Decoded[i]
		switch {
		case dec.Err != nil:
			p.window.Invalid(m.Offset)
			dead = append(dead, deadLetter(b, m, "invalid event: "+dec.Err.Error()))
		case p.window.DuplicateKey(keyOf(dec), m.Offset, dec.Event.ReceivedAt, true):
			dups++
		default:
			rows = append(rows, sinks.Row{Offset: m.Offset, Event: dec.Event, Record: dec.Record, Value: m.Value})
			if envs != nil {
				envs[m.Offset-b.First()] = envelopeOf(dec.Event, m.Value)
			}
		}
	}
	if envs != nil {
		p.envelopes.put(b.First(), envs)
	}
	p.window.Decided()
	if err := d.deadLetter(ctx, dead); err != nil {
		return err
	}
	w := &storeWrite{d: d, p: p, b: b}
	if err := w.write(ctx, rows); err != nil {
		return err
	}
	d.m.duplicates.WithLabelValues(st.Name).Add(float64(dups))
	d.m.written.WithLabelValues(d.cfg.Name, st.Name).Add(float64(len(rows) - w.rejected))
	d.m.deadLettered.WithLabelValues(st.Name).Add(float64(len(dead) + w.rejected))
	d.m.windowEvicted.WithLabelValues(st.Name).Add(float64(p.window.takeEvicted()))
	now, fresh := time.Now(), d.m.freshness.WithLabelValues(d.cfg.Name, st.Name)
	for _, r := range rows {
		fresh.Observe(now.Sub(r.Event.ReceivedAt).Seconds())
	}
	release(b)
	rowPool.Put(rows)
	return nil
}

// warm has the window read ahead what deciding on the valid events of ds
// will read (dedupeWindow.Warm).
func warm(w *dedupeWindow, ds []Decoded) {
	keys := keyPool.Get(2 * len(ds))
	for _, d := range ds {
		if d.Err == nil {
			keys = append(keys, keyOf(d))
		}
	}
	keyPool.Put(w.Warm(keys))
}

// keyPool recycles warm's keys.
var keyPool slicepool.Pool[eventkey.Key]

// rowPool recycles the rows of delivered batches: a store's Write keeps
// none (sinks.Row), an output publishes their Values.
var rowPool slicepool.Pool[sinks.Row]

// decodedPool recycles the Decoded of stored batches.
var decodedPool slicepool.Pool[Decoded]

// storeWrite is one batch's rows on their way into the store.
type storeWrite struct {
	d        *StoreDeliverer
	p        *Partition
	b        *Batch
	failed   bool // a write of this batch failed: ask the store before writing again
	rejected int
}

// write writes rows, isolating rows the store refuses for their content by
// halving the failing range until single rows remain. Ranges are written in
// offset order, and a refused row is dead-lettered before the next range is
// written, so the store's highest offset always marks a prefix that is done:
// in the store or in the dead-letter topic.
func (w *storeWrite) write(ctx context.Context, rows []sinks.Row) error {
	if len(rows) == 0 {
		return nil
	}
	err := w.attempt(ctx, rows)
	if err == nil || ctx.Err() != nil {
		return err
	}
	if len(rows) == 1 {
		return w.reject(ctx, rows[0], err)
	}
	mid := len(rows) / 2
	if err := w.write(ctx, rows[:mid]); err != nil {
		return err
	}
	return w.write(ctx, rows[mid:])
}

// attempt writes rows as one write, retrying transient errors without end.
// It returns nil once they are stored, a permanent error, or ctx's error.
func (w *storeWrite) attempt(ctx context.Context, rows []sinks.Row) error {
	d, st, part := w.d, w.b.Stream, w.p.ID
	retry := d.cfg.Retry
	retry.IsPermanent = sinks.IsPermanent
	what := fmt.Sprintf("write %d rows into %s/%d", len(rows), st.Name, part)
	return backpressure.Retry(ctx, d.log, what, retry, func(ctx context.Context) error {
		if w.failed {
			// An earlier write of this batch may be stored after all: the
			// connection broke after the part was committed, or a
			// materialized view failed after the base table took it. The
			// store settles unknown writes before it answers, a write is
			// all or nothing, and a partition's writes go in offset order,
			// so the store holding this write's first offset means it
			// holds all of it.
			stored, ok, err := d.cfg.Store.Progress(ctx, st, part)
			if err != nil {
				d.m.errors.WithLabelValues(d.cfg.Name, st.Name, "progress").Inc()
				return err
			}
			if ok && stored >= rows[0].Offset {
				d.log.Info("write found stored after a failed attempt", "stream", st.Name, "partition", part, "first", rows[0].Offset, "stored_up_to", stored)
				return nil
			}
			d.m.retries.WithLabelValues(d.cfg.Name, st.Name).Inc()
		}
		start := time.Now()
		err := d.safeWrite(ctx, st, part, rows)
		d.m.observeWrite(d.cfg.Name, st.Name, start, err)
		if err != nil {
			w.failed = true
		}
		return err
	})
}

// reject dead-letters one row the store refused, before anything after it is
// written.
func (w *storeWrite) reject(ctx context.Context, r sinks.Row, err error) error {
	w.d.log.Warn("row rejected", "stream", w.b.Stream.Name, "partition", w.p.ID, "offset", r.Offset, "err", err)
	m := w.b.Messages[w.b.index(r.Offset)]
	if err := w.d.deadLetter(ctx, []DeadLetter{deadLetter(w.b, m, "rejected by "+w.d.cfg.Name+": "+err.Error())}); err != nil {
		return err
	}
	w.p.markRejected(r.Offset)
	w.rejected++
	return nil
}

// errPanic marks a write that panicked: the data made the driver fail, so
// it is treated as the data's fault (wrapped by sinks.Permanent).
var errPanic = errors.New("panic during write")

func (d *StoreDeliverer) safeWrite(ctx context.Context, st *schemas.Stream, partition int32, rows []sinks.Row) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = sinks.Permanent(fmt.Errorf("%w: %v\n%s", errPanic, r, debug.Stack()))
		}
	}()
	return d.cfg.Store.Write(ctx, st, partition, rows)
}

func (d *StoreDeliverer) deadLetter(ctx context.Context, dead []DeadLetter) error {
	if len(dead) == 0 {
		return nil
	}
	return d.retry(ctx, "write to the dead-letter topic", func(ctx context.Context) error {
		return d.cfg.DLQ.WriteDeadLetters(ctx, dead)
	})
}

// retry runs op until it succeeds or ctx ends: every failure is transient.
func (d *StoreDeliverer) retry(ctx context.Context, what string, op func(context.Context) error) error {
	retry := d.cfg.Retry
	retry.IsPermanent = nil
	return backpressure.Retry(ctx, d.log, what, retry, op)
}

// prepare decodes and validates every message of b with decode. A message
// that panics the decoder is marked bad on its own.
func prepare(b *Batch, decode func([]byte) (schemas.Event, schemas.Record, error)) {
	b.Decoded = decodedPool.Get(len(b.Messages))[:len(b.Messages)]
	for i, m := range b.Messages {
		d := &b.Decoded[i]
		*d = decodeOne(m.Value, decode)
		if d.Err == nil {
			d.Key = idHasher.Sum(d.Event.ID)
		}
	}
}

// keyOf returns d's dedupe key, hashing its id if prepare did not: a batch
// prepared otherwise must not have all its events share the zero key.
func keyOf(d Decoded) eventkey.Key {
	if d.Key == (eventkey.Key{}) {
		return idHasher.Sum(d.Event.ID)
	}
	return d.Key
}

func decodeOne(value []byte, decode func([]byte) (schemas.Event, schemas.Record, error)) (d Decoded) {
	defer func() {
		if r := recover(); r != nil {
			d = Decoded{Err: fmt.Errorf("panic while decoding: %v", r)}
		}
	}()
	ev, rec, err := decode(value)
	return Decoded{Event: ev, Record: rec, Err: err}
}

func deadLetter(b *Batch, m Message, reason string) DeadLetter {
	return DeadLetter{Stream: b.Stream.Name, Topic: b.Topic, Partition: b.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value, Reason: reason}
}
