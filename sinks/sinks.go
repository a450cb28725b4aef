// Package sinks says what a sink is to the worker core: the row it is
// given, and the two roles a sink can play.
//
//   - A Store holds events durably and knows, from its own data, how far
//     each Kafka partition got: it writes one partition's rows atomically and
//     in offset order. ClickHouse is the store. A store never skips: the
//     Kafka offsets are committed only behind what it holds.
//   - An Output delivers events onwards in real time, at least once and
//     idempotent on event_id. NATS is an output; S3 or a webhook would be
//     others. An output keeps its progress in a ProgressLog, and one that
//     falls too far behind skips ahead rather than hold the pipeline.
//
// The worker core (package workers) depends on this package only, never on
// a sink's own types, and every sink depends on it: it is the seam a new
// sink plugs into. It imports nothing of Sluice's but schemas.
package sinks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/schemas"
)

// Row is one event on its way to a sink, at its place in Kafka.
type Row struct {
	// Offset is the event's offset in its Kafka partition. A store keeps it
	// with the row: that is how it knows its progress after a restart.
	Offset int64
	// Event is the decoded, validated event. An Output gets its envelope
	// only (ID, Key, ReceivedAt; Fields is nil): it passes Value on, and
	// building the fields for every output cost the work role a quarter of
	// its CPU.
	Event schemas.Event
	// Record holds the event's fields for a store, typed and column by
	// column, when the worker decoded them into a schemas.Records; then
	// Event.Fields is nil. A store takes the fields from Event.Fields when
	// Record is not valid. A Record is valid only until the Write it came
	// with returns: the worker then reuses its memory for a later batch,
	// so a store copies what it keeps.
	Record schemas.Record
	// Value is the event as it sits in Kafka (JSON): what outputs publish.
	Value []byte
}

// Store is a sink that holds events durably and knows its own progress.
//
// Write must be atomic and the rows of a partition must be written one call
// at a time, in offset order: then the highest offset the store holds marks
// a prefix of the partition that is entirely done, which is what makes
// resuming from the store exact. Implementations are safe for concurrent use
// across partitions.
type Store interface {
	// Write stores rows of one partition, in increasing offset order, all
	// or none. An error that IsPermanent reports as permanent means the
	// rows' content is refused and retrying cannot help; any other error
	// leaves the outcome settled (the write is known not to be running any
	// more) but unknown, and the caller asks Progress before writing again.
	Write(ctx context.Context, st *schemas.Stream, partition int32, rows []Row) error
	// Progress returns the highest offset stored for the partition, and
	// ok=false when the store holds none of its rows.
	Progress(ctx context.Context, st *schemas.Stream, partition int32) (offset int64, ok bool, err error)
	// Resume returns what a worker needs when it takes the partition, in
	// one look at the store rather than one per question, since a worker
	// asks it of every partition it is assigned: the highest offset
	// stored (as Progress), and the event_ids received within window of
	// the newest received_at held, at most limit of them (those with the
	// highest offsets; none when limit <= 0), from which the worker
	// rebuilds its dedupe window.
	Resume(ctx context.Context, st *schemas.Stream, partition int32, window time.Duration, limit int) (Resumed, error)
}

// Resumed is what a Store holds of a partition when a worker takes it.
type Resumed struct {
	// Offset is the highest offset stored; OK is false when the store
	// holds none of the partition's rows, and then the rest is empty.
	Offset int64
	OK     bool
	// Newest is the newest received_at among the rows the store looked
	// at: the partition's newest, or early by collectors' clock skew
	// (which widens the window rebuilt from it, never narrows it).
	Newest time.Time
	// IDs are the rows received at or after Newest minus the window, in
	// increasing offset order.
	IDs []Received
}

// Received is a stored event_id, with the time its collector received it
// and the Kafka offset it was stored from.
type Received struct {
	ID     string
	At     time.Time
	Offset int64
}

// Output is a sink that passes events on, at least once and idempotent on
// event_id: publishing a row again after a crash must be harmless, or be
// the subscriber's documented at-least-once.
type Output interface {
	// Name names the output in logs, metrics and its progress log.
	Name() string
	// Publish sends rows of one partition, in offset order, and returns
	// once the output holds them all.
	Publish(ctx context.Context, st *schemas.Stream, partition int32, rows []Row) error
}

// ProgressLog keeps how far an output got in each partition, so that a
// restart or a rebalance republishes only what the output has not had.
type ProgressLog interface {
	// Load returns the highest offset saved for the partition, and
	// ok=false when none was.
	Load(ctx context.Context, topic string, partition int32) (offset int64, ok bool, err error)
	// Save records that every offset up to and including offset is done.
	Save(ctx context.Context, topic string, partition int32, offset int64) error
}

// permanent marks an error as the data's fault.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent marks err as the data's fault: the same rows would fail the same
// way again, so the worker isolates them for the dead-letter topic instead
// of retrying. Nil stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked by
// Permanent.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}

// PartialError is an Output's failure part way through a Publish: the first
// Done rows are confirmed, the rest are not. The worker publishes again from
// row Done only, which keeps a key's events in order and sends no confirmed
// row twice.
type PartialError struct {
	Done int
	Err  error
}

func (e *PartialError) Error() string {
	return fmt.Sprintf("%d rows confirmed, then: %v", e.Done, e.Err)
}

func (e *PartialError) Unwrap() error { return e.Err }
