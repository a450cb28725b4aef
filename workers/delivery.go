package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/backpressure"
	"github.com/sluicehq/sluice/eventkey"
	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks/clickhouse"
	natssink "github.com/sluicehq/sluice/sinks/nats"
)

// RowWriter is the ClickHouse side of delivery. Besides writing, it answers
// what a partition already holds: the progress of each partition lives with
// the data, so a worker that takes a partition over resumes after what
// ClickHouse has, whatever Kafka's committed offset says.
type RowWriter interface {
	// Insert writes rows of one partition, in offset order, atomically.
	Insert(ctx context.Context, st *schemas.Stream, partition int32, rows []clickhouse.Row) error
	// MaxOffset returns the highest offset stored for the partition.
	MaxOffset(ctx context.Context, st *schemas.Stream, partition int32) (int64, bool, error)
	// RecentEventIDs returns the partition's event_ids received since since.
	RecentEventIDs(ctx context.Context, st *schemas.Stream, partition int32, since time.Time, limit int) ([]string, error)
}

// Publisher is the NATS side of delivery.
type Publisher interface {
	Publish(ctx context.Context, st *schemas.Stream, msgs []natssink.Message) error
}

// DeliveryConfig configures a Delivery.
type DeliveryConfig struct {
	Rows RowWriter
	// Publisher may be nil: then events go to ClickHouse only.
	Publisher Publisher
	DLQ       DeadLetterWriter
	// IsPermanent classifies Insert errors: permanent ones are the data's
	// fault and isolate rows for the dead-letter topic, others are retried.
	IsPermanent func(error) bool

	// DedupeWindow is how long an event_id is remembered (default 10 min).
	DedupeWindow time.Duration
	// DedupeMaxPerPartition bounds the ids remembered per partition
	// (default 250,000); the window is shorter when a partition receives
	// more within DedupeWindow.
	DedupeMaxPerPartition int

	Retry      backpressure.RetryPolicy
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Delivery is the Handler that writes batches to ClickHouse and NATS exactly
// once in effect:
//
//   - rows at offsets ClickHouse already holds are not inserted again;
//   - an event_id seen within the dedupe window is not inserted again;
//   - each batch is one INSERT of one partition's consecutive offsets;
//   - what ClickHouse rejects for its content goes to the dead-letter topic,
//     one row at a time, and the rest of the batch still lands.
//
// docs/delivery.md explains the failure windows this covers.
type Delivery struct {
	cfg     DeliveryConfig
	log     *slog.Logger
	metrics *deliveryMetrics

	mu    sync.Mutex
	parts map[partKey]*partState
}

type partKey struct {
	stream    string
	partition int32
}

// partState is touched only by the partition's ordered stage, one batch at a
// time, so it needs no lock of its own.
type partState struct {
	// stored is the highest offset ClickHouse held when the partition was
	// opened, or -1.
	stored int64
	window *dedupeWindow
}

// NewDelivery returns a Delivery.
func NewDelivery(cfg DeliveryConfig) (*Delivery, error) {
	if cfg.Rows == nil || cfg.DLQ == nil {
		return nil, errors.New("workers: delivery needs a row writer and a dead-letter writer")
	}
	if cfg.DedupeWindow <= 0 {
		cfg.DedupeWindow = 10 * time.Minute
	}
	if cfg.DedupeMaxPerPartition <= 0 {
		cfg.DedupeMaxPerPartition = 250_000
	}
	if cfg.Retry.Initial <= 0 {
		cfg.Retry = backpressure.DefaultRetry
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Delivery{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "delivery"),
		metrics: newDeliveryMetrics(cfg.Registerer),
		parts:   make(map[partKey]*partState),
	}, nil
}

// OpenPartition learns what ClickHouse already holds of the partition: its
// highest offset, and the event_ids of the dedupe window, so that neither a
// replay from Kafka nor a producer's retry is written twice after a restart
// or a rebalance.
func (d *Delivery) OpenPartition(ctx context.Context, st *schemas.Stream, partition int32) error {
	retry := d.cfg.Retry
	retry.IsPermanent = nil
	state := &partState{stored: -1, window: newDedupeWindow(d.cfg.DedupeWindow, d.cfg.DedupeMaxPerPartition)}
	err := backpressure.Retry(ctx, d.log, fmt.Sprintf("read progress of %s/%d", st.Name, partition), retry, func(ctx context.Context) error {
		off, ok, err := d.cfg.Rows.MaxOffset(ctx, st, partition)
		if err != nil {
			return err
		}
		if ok {
			state.stored = off
		}
		now := time.Now()
		ids, err := d.cfg.Rows.RecentEventIDs(ctx, st, partition, now.Add(-d.cfg.DedupeWindow), d.cfg.DedupeMaxPerPartition)
		if err != nil {
			return err
		}
		for _, id := range ids {
			state.window.Add(idHasher.Sum(id), now)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("open %s partition %d: %w", st.Name, partition, err)
	}
	d.log.Info("partition opened", "stream", st.Name, "partition", partition, "stored_up_to", state.stored, "dedupe_ids", state.window.Len())
	d.mu.Lock()
	d.parts[partKey{st.Name, partition}] = state
	d.mu.Unlock()
	return nil
}

// ClosePartition forgets the partition: whoever owns it next rebuilds its
// state from ClickHouse.
func (d *Delivery) ClosePartition(st *schemas.Stream, partition int32) {
	d.mu.Lock()
	delete(d.parts, partKey{st.Name, partition})
	d.mu.Unlock()
}

// Prepare decodes and validates every message. A message that panics the
// decoder is marked bad on its own.
func (d *Delivery) Prepare(b *Batch) {
	b.Decoded = make([]Decoded, len(b.Messages))
	for i, m := range b.Messages {
		b.Decoded[i] = decodeOne(b.Stream, m.Value)
	}
}

func decodeOne(st *schemas.Stream, value []byte) (d Decoded) {
	defer func() {
		if r := recover(); r != nil {
			d = Decoded{Err: fmt.Errorf("panic while decoding: %v", r)}
		}
	}()
	ev, err := st.Decode(value)
	return Decoded{Event: ev, Err: err}
}

// Deliver writes one batch. It returns an error only when ctx ends first.
func (d *Delivery) Deliver(ctx context.Context, b *Batch) error {
	d.mu.Lock()
	ps := d.parts[partKey{b.Stream.Name, b.Partition}]
	d.mu.Unlock()
	if ps == nil {
		return fmt.Errorf("deliver %s/%d: partition not open", b.Stream.Name, b.Partition)
	}
	now := time.Now()
	st := b.Stream

	var (
		rows    []clickhouse.Row
		keys    []eventkey.Key // of each row's event_id
		rowIdx  []int          // message index of each row
		publish = make([]bool, len(b.Messages))
		dead    []DeadLetter
		inBatch = make(map[eventkey.Key]struct{}, len(b.Messages))
		dups    int
	)
	for i, m := range b.Messages {
		dec := b.Decoded[i]
		switch {
		case dec.Err != nil:
			dead = append(dead, deadLetter(b, m, "invalid event: "+dec.Err.Error()))
		case m.Offset <= ps.stored:
			// Stored by an earlier owner that may have died before
			// publishing it: publish again, do not insert again.
			publish[i] = true
		default:
			k := idHasher.Sum(dec.Event.ID)
			if _, seen := inBatch[k]; seen || ps.window.Contains(k, now) {
				dups++
				continue
			}
			inBatch[k] = struct{}{}
			rows = append(rows, clickhouse.Row{Offset: m.Offset, Event: dec.Event})
			keys = append(keys, k)
			rowIdx = append(rowIdx, i)
		}
	}

	if err := d.deadLetter(ctx, dead); err != nil {
		return err
	}
	rejected, err := d.insert(ctx, st, b.Partition, rows)
	if err != nil {
		return err
	}
	var rejectedLetters []DeadLetter
	for i, reason := range rejected {
		if reason != "" {
			m := b.Messages[rowIdx[i]]
			rejectedLetters = append(rejectedLetters, deadLetter(b, m, "rejected by ClickHouse: "+reason))
			continue
		}
		publish[rowIdx[i]] = true
		ps.window.Add(keys[i], now)
		ps.stored = max(ps.stored, rows[i].Offset)
	}
	if err := d.deadLetter(ctx, rejectedLetters); err != nil {
		return err
	}
	d.metrics.duplicates.WithLabelValues(st.Name).Add(float64(dups))
	d.metrics.inserted.WithLabelValues(st.Name).Add(float64(len(rows) - len(rejectedLetters)))
	d.metrics.deadLettered.WithLabelValues(st.Name).Add(float64(len(dead) + len(rejectedLetters)))
	d.metrics.windowEvicted.WithLabelValues(st.Name).Add(float64(ps.window.evictedYoung))
	ps.window.evictedYoung = 0

	if d.cfg.Publisher == nil {
		return nil
	}
	msgs := make([]natssink.Message, 0, len(b.Messages))
	for i, m := range b.Messages {
		if publish[i] {
			ev := b.Decoded[i].Event
			msgs = append(msgs, natssink.Message{Key: ev.Key, EventID: ev.ID, Data: m.Value})
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	retry := d.cfg.Retry
	retry.IsPermanent = nil
	return backpressure.Retry(ctx, d.log, "publish to NATS", retry, func(ctx context.Context) error {
		return d.cfg.Publisher.Publish(ctx, st, msgs)
	})
}

// insert writes rows, isolating rows ClickHouse rejects for their content by
// halving the failing range until single rows remain. Ranges are written in
// offset order, so ClickHouse's highest offset still marks a prefix that is
// done. It returns, per row, why ClickHouse rejected it, or "" when the row
// was written.
func (d *Delivery) insert(ctx context.Context, st *schemas.Stream, partition int32, rows []clickhouse.Row) (rejected []string, err error) {
	rejected = make([]string, len(rows))
	retry := d.cfg.Retry
	retry.IsPermanent = func(err error) bool {
		return errors.Is(err, errPanic) || (d.cfg.IsPermanent != nil && d.cfg.IsPermanent(err))
	}
	var write func(lo, hi int) error
	write = func(lo, hi int) error {
		if lo >= hi {
			return nil
		}
		attempt := 0
		err := backpressure.Retry(ctx, d.log, fmt.Sprintf("insert %d rows into %s/%d", hi-lo, st.Name, partition), retry, func(ctx context.Context) error {
			attempt++
			if attempt > 1 {
				// The failed attempt may have been stored after all (the
				// connection broke after ClickHouse wrote the part). An
				// insert is one part, all or nothing, and a partition's
				// inserts go in offset order, so ClickHouse holding this
				// insert's first offset means it holds all of it.
				stored, ok, err := d.cfg.Rows.MaxOffset(ctx, st, partition)
				if err != nil {
					return err
				}
				if ok && stored >= rows[lo].Offset {
					d.log.Info("insert found stored after a failed attempt", "stream", st.Name, "partition", partition, "first", rows[lo].Offset, "stored_up_to", stored)
					return nil
				}
			}
			return d.safeInsert(ctx, st, partition, rows[lo:hi])
		})
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if hi-lo == 1 {
			rejected[lo] = err.Error()
			d.log.Warn("row rejected", "stream", st.Name, "partition", partition, "offset", rows[lo].Offset, "err", err)
			return nil
		}
		mid := lo + (hi-lo)/2
		if err := write(lo, mid); err != nil {
			return err
		}
		return write(mid, hi)
	}
	return rejected, write(0, len(rows))
}

// errPanic marks an insert that panicked: the data made the driver fail, so
// it is treated as the data's fault.
var errPanic = errors.New("panic during insert")

func (d *Delivery) safeInsert(ctx context.Context, st *schemas.Stream, partition int32, rows []clickhouse.Row) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v\n%s", errPanic, r, debug.Stack())
		}
	}()
	return d.cfg.Rows.Insert(ctx, st, partition, rows)
}

func (d *Delivery) deadLetter(ctx context.Context, dead []DeadLetter) error {
	if len(dead) == 0 {
		return nil
	}
	retry := d.cfg.Retry
	retry.IsPermanent = nil
	return backpressure.Retry(ctx, d.log, "write to the dead-letter topic", retry, func(ctx context.Context) error {
		return d.cfg.DLQ.WriteDeadLetters(ctx, dead)
	})
}

func deadLetter(b *Batch, m Message, reason string) DeadLetter {
	return DeadLetter{Stream: b.Stream.Name, Topic: b.Topic, Partition: b.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value, Reason: reason}
}

type deliveryMetrics struct {
	inserted, duplicates, deadLettered, windowEvicted *prometheus.CounterVec
}

func newDeliveryMetrics(reg prometheus.Registerer) *deliveryMetrics {
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"stream"})
	}
	m := &deliveryMetrics{
		inserted:      counter("sluice_clickhouse_rows_inserted_total", "Rows written to ClickHouse."),
		duplicates:    counter("sluice_duplicates_skipped_total", "Events not written because their event_id was delivered within the dedupe window."),
		deadLettered:  counter("sluice_dead_letters_total", "Events sent to the dead-letter topic."),
		windowEvicted: counter("sluice_dedupe_evicted_early_total", "Event ids forgotten before the dedupe window elapsed, for lack of room; raise the bound if this grows."),
	}
	if reg != nil {
		reg.MustRegister(m.inserted, m.duplicates, m.deadLettered, m.windowEvicted)
	}
	return m
}
