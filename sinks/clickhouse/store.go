package clickhouse

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks"
)

// The Sink is the worker core's store.
var _ sinks.Store = (*Sink)(nil)

// recentSlack is how far a collector's clock may run ahead of a worker's:
// a row received at or after t was stored at or after t minus this, so
// Recent reads only the parts holding rows stored since then.
const recentSlack = time.Hour

// Progress returns the highest Kafka offset stored for the partition, and
// ok=false when the partition has no rows.
//
// It reads the newest time partition holding rows of the Kafka partition,
// never the table's whole history (see search). The answer is the truth
// about the partition, not a snapshot that a late INSERT may overtake: an
// INSERT of the partition that a Write left unsettled (its outcome unknown
// and the server unreachable to confirm its end) is settled first, as
// Write describes, and Progress fails while it cannot be. An INSERT running
// concurrently (a Write of the same partition that has not returned) is the
// caller's to avoid.
//
// A stream with a rollup (rollup.go) has its rollup checked too, and
// repaired from the stored rows when it is behind the base table, before
// Progress answers; Progress fails while the rollup cannot be repaired.
func (s *Sink) Progress(ctx context.Context, st *schemas.Stream, partition int32) (offset int64, ok bool, err error) {
	if err := s.settleUnsettled(ctx, st, partition); err != nil {
		return 0, false, err
	}
	lay, err := s.layout(ctx, st)
	if err != nil {
		return 0, false, fmt.Errorf("clickhouse: progress of %s.%s partition %d: %w", s.db, st.Table, partition, err)
	}
	if !lay.byTime {
		return s.maxOffset(ctx, st, partition)
	}
	f, err := s.search(ctx, st, lay, partition)
	if err != nil {
		return 0, false, fmt.Errorf("clickhouse: progress of %s.%s partition %d: %w", s.db, st.Table, partition, err)
	}
	if r := s.rollupFor(st, lay); r != nil {
		// The worker asks Progress when it takes a partition and before
		// it retries a write: the moments a rollup may have been left
		// behind. It answers only once the rollup is level again.
		if err := s.syncRollup(ctx, st, lay, r, partition, f); err != nil {
			return 0, false, err
		}
	}
	return f.offset, f.ok, nil
}

// maxOffset reads the partition's highest stored offset in a table of the
// previous layout, where the partition is a MergeTree partition of its own.
func (s *Sink) maxOffset(ctx context.Context, st *schemas.Stream, partition int32) (offset int64, ok bool, err error) {
	// max() of no rows is 0 rather than NULL on 18.16, which would read as
	// "offset 0 is stored": count() tells the two apart.
	var count uint64
	q := fmt.Sprintf("SELECT count(), max(%s) FROM %s WHERE %s = ?", Quote(ColKafkaOffset), s.table(st), Quote(ColKafkaPartition))
	if err := s.conn.QueryRow(s.readCtx(ctx), q, partition).Scan(&count, &offset); err != nil {
		return 0, false, fmt.Errorf("clickhouse: progress of %s.%s partition %d: %w", s.db, st.Table, partition, err)
	}
	if count == 0 {
		return 0, false, nil
	}
	return offset, true, nil
}

// Recent returns the event_ids of the partition's rows received (by
// received_at, to the millisecond) at or after since, each with its
// received_at, oldest first by offset. When there are more than limit, it
// returns the limit with the highest offsets; limit <= 0 means no limit.
//
// It also returns the newest received_at the partition holds, or the zero
// time when it holds no rows, so that the caller can measure a dedupe window
// on the events' own receive times rather than on its clock. Right after
// Progress that is known without reading again; the rows it returns are
// read from the parts holding rows stored since since minus recentSlack.
func (s *Sink) Recent(ctx context.Context, st *schemas.Stream, partition int32, since time.Time, limit int) ([]sinks.Received, time.Time, error) {
	fail := func(err error) ([]sinks.Received, time.Time, error) {
		return nil, time.Time{}, fmt.Errorf("clickhouse: recent event ids of %s.%s partition %d: %w", s.db, st.Table, partition, err)
	}
	lay, err := s.layout(ctx, st)
	if err != nil {
		return fail(err)
	}
	newest, err := s.newestReceived(ctx, st, lay, partition)
	if err != nil {
		return fail(err)
	}
	if newest.IsZero() {
		return nil, time.Time{}, nil
	}
	if since.Before(minDateTime) {
		since = minDateTime
	}
	ids, err := s.recentIDs(ctx, st, lay, partition, since, limit)
	if err != nil {
		return fail(err)
	}
	return ids, newest, nil
}

// recentIDs reads the ids Recent returns.
func (s *Sink) recentIDs(ctx context.Context, st *schemas.Stream, lay *tableLayout, partition int32, since time.Time, limit int) ([]sinks.Received, error) {
	where := fmt.Sprintf("%s = ? AND %s >= ?", Quote(ColKafkaPartition), lay.recvMillis())
	args := []any{partition, since.UnixMilli()}
	if lay.byTime {
		// Prunes every part stored before the window: the minmax of the
		// partition key covers stored_at on every server version.
		where += fmt.Sprintf(" AND %s >= toDateTime(?)", Quote(ColStoredAt))
		args = append(args, max(0, since.Add(-recentSlack).Unix()))
	}
	q := fmt.Sprintf("SELECT %s, %s, %s FROM %s WHERE %s ORDER BY %s DESC",
		Quote(ColEventID), lay.recvMillis(), Quote(ColKafkaOffset), s.table(st), where, Quote(ColKafkaOffset))
	if limit > 0 {
		q += " LIMIT ?"
		args = append(args, limit)
	}
	rows, err := s.conn.Query(s.readCtx(ctx), q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []sinks.Received
	for rows.Next() {
		var (
			id     string
			millis int64
			offset int64
		)
		if err := rows.Scan(&id, &millis, &offset); err != nil {
			return nil, err
		}
		out = append(out, sinks.Received{ID: id, At: time.UnixMilli(millis).UTC(), Offset: offset})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.Reverse(out)
	return out, nil
}

// newestReceived returns the newest received_at of the partition's rows, or
// the zero time when it has none. A row's instant in milliseconds is one
// number, so one max() finds it: 18.16's max() of a tuple is not relied on.
//
// In a table partitioned by time it is what the search for the partition's
// progress found, in the newest time partition holding the Kafka
// partition's rows. A row in an older one was stored earlier, and so
// received earlier, but for collectors' clock skew: the answer can then be
// early by that skew, which widens the dedupe window the caller rebuilds
// and never narrows it.
func (s *Sink) newestReceived(ctx context.Context, st *schemas.Stream, lay *tableLayout, partition int32) (time.Time, error) {
	if lay.byTime {
		f, err := s.lastFound(ctx, st, lay, partition)
		if err != nil || !f.ok {
			return time.Time{}, err
		}
		return f.newest, nil
	}
	var (
		count  uint64
		millis int64
	)
	q := fmt.Sprintf("SELECT count(), max(%s) FROM %s WHERE %s = ?", lay.recvMillis(), s.table(st), Quote(ColKafkaPartition))
	if err := s.conn.QueryRow(s.readCtx(ctx), q, partition).Scan(&count, &millis); err != nil {
		return time.Time{}, err
	}
	if count == 0 {
		return time.Time{}, nil
	}
	return time.UnixMilli(millis).UTC(), nil
}
