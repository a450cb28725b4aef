package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sluicehq/sluice/backpressure"
	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks"
)

// DefaultMaxLag is how far an output may fall behind before it skips ahead.
const DefaultMaxLag = time.Hour

// OutputConfig configures an OutputDeliverer.
type OutputConfig struct {
	Output sinks.Output
	// Progress keeps the output's progress per partition.
	Progress sinks.ProgressLog
	// DLQ records the ranges skipped for lag.
	DLQ DeadLetterWriter
	// MaxLag is how old (by Kafka timestamp) a batch may be before the
	// output skips it instead of delivering it (default DefaultMaxLag): a
	// real-time output that is down for long must not hold the pipeline.
	MaxLag time.Duration

	Retry   backpressure.RetryPolicy
	Logger  *slog.Logger
	Metrics *SinkMetrics
}

// OutputDeliverer is the Deliverer of an output (NATS). Its lane reads from
// the output's own progress, so it neither waits for the store nor holds it
// back. It passes on the events the store keeps: not the invalid ones, not
// duplicates by event_id (the partition's window is shared with the store's
// lane), and not those the store refused, when the store got there first.
// A batch older than MaxLag is skipped, and the skipped range is recorded
// in a metric and a dead-letter record.
type OutputDeliverer struct {
	cfg OutputConfig
	log *slog.Logger
	m   *SinkMetrics
}

// NewOutputDeliverer returns an OutputDeliverer.
func NewOutputDeliverer(cfg OutputConfig) (*OutputDeliverer, error) {
	if cfg.Output == nil || cfg.Progress == nil || cfg.DLQ == nil {
		return nil, errors.New("workers: an output's delivery needs the output, a progress log and a dead-letter writer")
	}
	if cfg.MaxLag <= 0 {
		cfg.MaxLag = DefaultMaxLag
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
	name := cfg.Output.Name()
	return &OutputDeliverer{cfg: cfg, log: cfg.Logger.With("component", "delivery", "sink", name), m: cfg.Metrics}, nil
}

// Name names the output.
func (d *OutputDeliverer) Name() string { return d.cfg.Output.Name() }

// Open reads the output's progress: its lane starts after the last offset
// it saved, or at the committed offset when it saved none.
func (d *OutputDeliverer) Open(ctx context.Context, p *Partition) (int64, error) {
	start := p.Committed
	err := d.retry(ctx, fmt.Sprintf("read %s progress of %s/%d", d.Name(), p.Stream.Name, p.ID), func(ctx context.Context) error {
		off, ok, err := d.cfg.Progress.Load(ctx, p.Topic, p.ID)
		if ok {
			start = off + 1
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("open %s partition %d for %s: %w", p.Stream.Name, p.ID, d.Name(), err)
	}
	d.log.Info("partition opened", "stream", p.Stream.Name, "partition", p.ID, "committed", p.Committed, "start", start)
	return start, nil
}

// Prepare does nothing: an output's lane decides in Deliver, where it can
// tell whether the store's lane has gone through the batch already.
func (d *OutputDeliverer) Prepare(*Batch) {}

// Deliver publishes the batch's events that the store keeps, or skips the
// batch once it is older than MaxLag. It returns an error only when ctx ends
// first.
func (d *OutputDeliverer) Deliver(ctx context.Context, p *Partition, b *Batch) error {
	rows := rowPool.Get(len(b.Messages))
	followed := 0
	var envs envelopeChunk
	for _, m := range b.Messages {
		if !envs.holds(m.Offset) {
			envs = p.envelopes.chunk(m.Offset)
		}
		ev, ok, known := d.keeps(p, b.Stream, m, envs.at(m.Offset))
		if ok {
			rows = append(rows, sinks.Row{Offset: m.Offset, Event: ev, Value: m.Value})
		}
		if known {
			followed++
		}
	}
	defer p.passed(d, b.Last())
	// The rows go back to the pool once published: the output keeps none
	// (it publishes each row's Value, which is not recycled). kept is the
	// whole slice, as publish leaves in rows only what is still to go.
	kept := rows
	name, st := d.Name(), b.Stream.Name
	d.m.checked.WithLabelValues(name, st, "store").Add(float64(followed))
	d.m.checked.WithLabelValues(name, st, "output").Add(float64(len(b.Messages) - followed))
	skipped := false
	err := backpressure.Retry(ctx, d.log, fmt.Sprintf("publish %d events of %s/%d to %s", len(rows), st, p.ID, name), d.transient(), func(ctx context.Context) error {
		if lag := time.Since(b.Messages[len(b.Messages)-1].Time); lag > d.cfg.MaxLag {
			skipped = true
			return d.skip(ctx, b, lag)
		}
		if len(rows) == 0 {
			return nil
		}
		var err error
		rows, err = d.publish(ctx, p, b, rows)
		return err
	})
	if err != nil || skipped {
		return err
	}
	rowPool.Put(kept)
	return nil
}

// keeps returns the envelope of m, whether the store keeps it (not
// invalid, refused or a duplicate), and whether the store's lane decided
// that (known) rather than the output. Where the store's lane has gone
// through m already, its answer stands, and the envelope is env, where the
// store found it, or read (Envelope); otherwise the output validates m as
// the store's lane does (DecodeEnvelope: the same verdict as Decode,
// building no fields) and asks the window. A message that panics the
// decoder is invalid, as prepare makes it for the store's lane.
func (d *OutputDeliverer) keeps(p *Partition, st *schemas.Stream, m Message, env envelopeAt) (ev schemas.Event, ok, known bool) {
	if p.wasRejected(m.Offset) {
		return schemas.Event{}, false, true
	}
	var skip bool
	if p.window != nil {
		skip, known = p.window.LeadVerdict(m.Offset)
	}
	if skip {
		return schemas.Event{}, false, true
	}
	if known {
		if ev, ok := env.event(m.Value); ok {
			return ev, true, true
		}
	}
	dec := decodeOne(m.Value, func(v []byte) (schemas.Event, schemas.Record, error) {
		if known {
			if ev, ok := st.Envelope(v); ok {
				return ev, schemas.Record{}, nil
			}
		}
		ev, err := st.DecodeEnvelope(v)
		return ev, schemas.Record{}, err
	})
	switch {
	case dec.Err != nil:
		return schemas.Event{}, false, known // the store's lane dead-letters it
	case !known && p.window != nil && p.window.Duplicate(dec.Event.ID, m.Offset, dec.Event.ReceivedAt, false):
		return schemas.Event{}, false, false
	}
	return dec.Event, true, known
}

// publish publishes rows once and returns those still to publish: all of
// them after a failure, the rest after a partial one, minus a row the output
// refused for good (too large for it), which goes to the dead-letter topic.
func (d *OutputDeliverer) publish(ctx context.Context, p *Partition, b *Batch, rows []sinks.Row) ([]sinks.Row, error) {
	name, st := d.Name(), b.Stream.Name
	start := time.Now()
	err := d.cfg.Output.Publish(ctx, b.Stream, p.ID, rows)
	d.m.observeWrite(name, st, start, err)
	done := len(rows)
	var partial *sinks.PartialError
	switch {
	case err == nil:
	case errors.As(err, &partial):
		done = min(partial.Done, len(rows))
	default:
		done = 0
	}
	now, fresh := time.Now(), d.m.freshness.WithLabelValues(name, st)
	for _, r := range rows[:done] {
		fresh.Observe(now.Sub(r.Event.ReceivedAt).Seconds())
	}
	d.m.written.WithLabelValues(name, st).Add(float64(done))
	rows = rows[done:]
	if err == nil {
		return rows, nil
	}
	d.m.retries.WithLabelValues(name, st).Inc()
	if partial != nil && sinks.IsPermanent(err) && len(rows) > 0 {
		m := b.Messages[b.index(rows[0].Offset)]
		letter := deadLetter(b, m, "refused by "+name+": "+partial.Err.Error())
		// The store still has it: the record excuses nothing there.
		letter.SkippedBy, letter.SkippedThrough = name, m.Offset
		if derr := d.cfg.DLQ.WriteDeadLetters(ctx, []DeadLetter{letter}); derr != nil {
			return rows, derr
		}
		d.log.Warn("event refused by the output for good: dead-lettered", "stream", st, "partition", p.ID, "offset", rows[0].Offset, "err", err)
		rows = rows[1:]
	}
	return rows, err
}

// skip records that the output skips the batch for lag: a metric, a log
// line and a dead-letter record of the range. The store's lane still writes
// every event of it.
func (d *OutputDeliverer) skip(ctx context.Context, b *Batch, lag time.Duration) error {
	name := d.Name()
	reason := fmt.Sprintf("%s skipped offsets %d-%d: %s behind, more than the maximum lag of %s",
		name, b.First(), b.Last(), lag.Round(time.Second), d.cfg.MaxLag)
	letter := DeadLetter{Stream: b.Stream.Name, Topic: b.Topic, Partition: b.Partition, Offset: b.First(),
		Reason: reason, SkippedBy: name, SkippedThrough: b.Last()}
	if err := d.cfg.DLQ.WriteDeadLetters(ctx, []DeadLetter{letter}); err != nil {
		return err
	}
	d.m.skipped.WithLabelValues(name, b.Stream.Name).Add(float64(len(b.Messages)))
	d.log.Warn("output fell too far behind: skipped a range", "stream", b.Stream.Name, "partition", b.Partition,
		"first", b.First(), "last", b.Last(), "lag", lag.Round(time.Second), "max_lag", d.cfg.MaxLag)
	return nil
}

// transient is the retry policy of publishing: every error is retried.
func (d *OutputDeliverer) transient() backpressure.RetryPolicy {
	retry := d.cfg.Retry
	retry.IsPermanent = nil
	return retry
}

func (d *OutputDeliverer) retry(ctx context.Context, what string, op func(context.Context) error) error {
	return backpressure.Retry(ctx, d.log, what, d.transient(), op)
}

// SaveProgress records in the output's progress log that offsets up to and
// including offset are done; the consumer calls it as the lane moves.
func (d *OutputDeliverer) SaveProgress(ctx context.Context, topic string, partition int32, offset int64) error {
	return d.cfg.Progress.Save(ctx, topic, partition, offset)
}
