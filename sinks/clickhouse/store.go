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
// Resume reads only the parts holding rows stored since then.
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
	if err := s.levelRollup(ctx, st, lay, partition, f); err != nil {
		return 0, false, err
	}
	return f.offset, f.ok, nil
}

// levelRollup repairs st's rollup, if it has one, up to what the search
// found in the base table. The worker asks Progress or Resume when it takes
// a partition and before it retries a write: the moments a rollup may have
// been left behind. They answer only once the rollup is level again.
func (s *Sink) levelRollup(ctx context.Context, st *schemas.Stream, lay *tableLayout, partition int32, f found) error {
	if r := s.rollupFor(st, lay); r != nil {
		return s.syncRollup(ctx, st, lay, r, partition, f)
	}
	return nil
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

// Resume answers sinks.Store.Resume.
//
// In a table partitioned by time it is Progress's search (resume.go) with
// each look also collecting the window: the time partition holding the
// Kafka partition's newest rows is read once for both answers. Only when
// the window may reach rows stored before that look (within recentSlack of
// its lower bound: the window crosses into an older time partition, or the
// look read only the newest parts) are those read too, by stored_at. Like
// Progress, it settles an unsettled INSERT first and levels the rollup.
func (s *Sink) Resume(ctx context.Context, st *schemas.Stream, partition int32, window time.Duration, limit int) (sinks.Resumed, error) {
	fail := func(err error) (sinks.Resumed, error) {
		return sinks.Resumed{}, fmt.Errorf("clickhouse: resume %s.%s partition %d: %w", s.db, st.Table, partition, err)
	}
	if err := s.settleUnsettled(ctx, st, partition); err != nil {
		return sinks.Resumed{}, err
	}
	lay, err := s.layout(ctx, st)
	if err != nil {
		return fail(err)
	}
	if !lay.byTime {
		return s.resumeByOffset(ctx, st, lay, partition, window, limit)
	}
	f, err := s.searchTable(ctx, baseSearched(st, lay), partition, &windowAsk{window: window, limit: limit})
	if err != nil {
		return fail(err)
	}
	if err := s.levelRollup(ctx, st, lay, partition, f); err != nil {
		return sinks.Resumed{}, err
	}
	if !f.ok {
		return sinks.Resumed{}, nil
	}
	res := sinks.Resumed{Offset: f.offset, OK: true, Newest: f.newest, IDs: f.ids}
	since := f.newest.Add(-window)
	if limit > 0 && f.seen < limit && since.Add(-recentSlack).Before(f.lo) {
		// Rows stored before lo have lower offsets than every row looked
		// at: they come first, and only while the limit has room.
		older, err := s.recentIDs(ctx, st, lay, partition, since, f.lo, limit-len(f.ids))
		if err != nil {
			return fail(err)
		}
		res.IDs = append(older, res.IDs...)
	}
	return res, nil
}

// resumeByOffset is Resume in a table of the previous layout, partitioned
// by Kafka partition, which it reads whole.
func (s *Sink) resumeByOffset(ctx context.Context, st *schemas.Stream, lay *tableLayout, partition int32, window time.Duration, limit int) (sinks.Resumed, error) {
	off, ok, err := s.maxOffset(ctx, st, partition)
	if err != nil || !ok {
		return sinks.Resumed{}, err
	}
	res := sinks.Resumed{Offset: off, OK: true}
	q := fmt.Sprintf("SELECT max(%s) FROM %s WHERE %s = ?", lay.recvMillis(), s.table(st), Quote(ColKafkaPartition))
	var millis int64
	if err := s.conn.QueryRow(s.readCtx(ctx), q, partition).Scan(&millis); err != nil {
		return sinks.Resumed{}, fmt.Errorf("clickhouse: newest receive time of %s.%s partition %d: %w", s.db, st.Table, partition, err)
	}
	res.Newest = time.UnixMilli(millis).UTC()
	if limit > 0 {
		if res.IDs, err = s.recentIDs(ctx, st, lay, partition, res.Newest.Add(-window), time.Time{}, limit); err != nil {
			return sinks.Resumed{}, err
		}
	}
	return res, nil
}

// recentIDs reads the ids of the partition's rows received at or after
// since, the limit with the highest offsets, in increasing offset order. In
// a table partitioned by time it reads only rows stored at or after since
// minus recentSlack, and before before unless that is zero.
func (s *Sink) recentIDs(ctx context.Context, st *schemas.Stream, lay *tableLayout, partition int32, since, before time.Time, limit int) ([]sinks.Received, error) {
	fail := func(err error) ([]sinks.Received, error) {
		return nil, fmt.Errorf("clickhouse: recent event ids of %s.%s partition %d: %w", s.db, st.Table, partition, err)
	}
	if since.Before(minDateTime) {
		since = minDateTime
	}
	where := fmt.Sprintf("%s = ? AND %s >= ?", Quote(ColKafkaPartition), lay.recvMillis())
	args := []any{partition, since.UnixMilli()}
	if lay.byTime {
		// Prunes every part stored before the window: the minmax of the
		// partition key covers stored_at on every server version.
		where += fmt.Sprintf(" AND %s >= toDateTime(?)", Quote(ColStoredAt))
		args = append(args, max(0, since.Add(-recentSlack).Unix()))
		if !before.IsZero() {
			where += fmt.Sprintf(" AND %s < toDateTime(?)", Quote(ColStoredAt))
			args = append(args, before.Unix())
		}
	}
	q := fmt.Sprintf("SELECT %s, %s, %s FROM %s WHERE %s ORDER BY %s DESC LIMIT ?",
		Quote(ColEventID), lay.recvMillis(), Quote(ColKafkaOffset), s.table(st), where, Quote(ColKafkaOffset))
	args = append(args, limit)
	rows, err := s.conn.Query(s.readCtx(ctx), q, args...)
	if err != nil {
		return fail(err)
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
			return fail(err)
		}
		out = append(out, sinks.Received{ID: id, At: time.UnixMilli(millis).UTC(), Offset: offset})
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	slices.Reverse(out)
	return out, nil
}
