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

// Progress returns the highest Kafka offset stored for the partition, and
// ok=false when the partition has no rows.
//
// The answer is the truth about the partition, not a snapshot that a late
// INSERT may overtake: an INSERT of the partition that a Write left
// unsettled (its outcome unknown and the server unreachable to confirm its
// end) is settled first, as Write describes, and Progress fails while it
// cannot be. An INSERT running concurrently (a Write of the same partition
// that has not returned) is the caller's to avoid.
func (s *Sink) Progress(ctx context.Context, st *schemas.Stream, partition int32) (offset int64, ok bool, err error) {
	if err := s.settleUnsettled(ctx, st, partition); err != nil {
		return 0, false, err
	}
	return s.maxOffset(ctx, st, partition)
}

// maxOffset reads the partition's highest stored offset. It reads the
// partition's own MergeTree partition only.
func (s *Sink) maxOffset(ctx context.Context, st *schemas.Stream, partition int32) (offset int64, ok bool, err error) {
	// max() of no rows is 0 rather than NULL on 18.16, which would read as
	// "offset 0 is stored": count() tells the two apart.
	var count uint64
	q := fmt.Sprintf("SELECT count(), max(%s) FROM %s WHERE %s = ?", Quote(ColKafkaOffset), s.table(st), Quote(ColKafkaPartition))
	if err := s.conn.QueryRow(ctx, q, partition).Scan(&count, &offset); err != nil {
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
// on the events' own receive times rather than on its clock.
func (s *Sink) Recent(ctx context.Context, st *schemas.Stream, partition int32, since time.Time, limit int) ([]sinks.Received, time.Time, error) {
	newest, err := s.newestReceived(ctx, st, partition)
	if err != nil {
		return nil, time.Time{}, err
	}
	if since.Before(minDateTime) {
		since = minDateTime
	}
	sec, ms := splitTime(since)
	q := fmt.Sprintf(`SELECT %[1]s, toUnixTimestamp(%[4]s), %[5]s, %[6]s FROM %[2]s
WHERE %[3]s = ? AND (%[4]s > toDateTime(?) OR (%[4]s = toDateTime(?) AND %[5]s >= ?))
ORDER BY %[6]s DESC`,
		Quote(ColEventID), s.table(st), Quote(ColKafkaPartition), Quote(ColReceivedAt), Quote(ColReceivedAtMs), Quote(ColKafkaOffset))
	args := []any{partition, sec.Unix(), sec.Unix(), ms}
	if limit > 0 {
		q += " LIMIT ?"
		args = append(args, limit)
	}
	fail := func(err error) ([]sinks.Received, time.Time, error) {
		return nil, time.Time{}, fmt.Errorf("clickhouse: recent event ids of %s.%s partition %d: %w", s.db, st.Table, partition, err)
	}
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	var out []sinks.Received
	for rows.Next() {
		var (
			id     string
			secs   uint32
			msec   uint16
			offset int64
		)
		if err := rows.Scan(&id, &secs, &msec, &offset); err != nil {
			return fail(err)
		}
		out = append(out, sinks.Received{ID: id, At: joinTime(int64(secs), msec), Offset: offset})
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	slices.Reverse(out)
	return out, newest, nil
}

// newestReceived returns the newest received_at of the partition's rows, or
// the zero time when it has none. A row's instant in milliseconds is one
// number, so one max() finds it: 18.16's max() of a tuple is not relied on.
func (s *Sink) newestReceived(ctx context.Context, st *schemas.Stream, partition int32) (time.Time, error) {
	var (
		count  uint64
		millis uint64
	)
	q := fmt.Sprintf("SELECT count(), max(toUInt64(toUnixTimestamp(%[1]s)) * 1000 + %[2]s) FROM %[3]s WHERE %[4]s = ?",
		Quote(ColReceivedAt), Quote(ColReceivedAtMs), s.table(st), Quote(ColKafkaPartition))
	if err := s.conn.QueryRow(ctx, q, partition).Scan(&count, &millis); err != nil {
		return time.Time{}, fmt.Errorf("clickhouse: newest received_at of %s.%s partition %d: %w", s.db, st.Table, partition, err)
	}
	if count == 0 {
		return time.Time{}, nil
	}
	return time.UnixMilli(int64(millis)).UTC(), nil
}

// joinTime is the inverse of splitTime.
func joinTime(secs int64, ms uint16) time.Time {
	return time.Unix(secs, int64(ms)*int64(time.Millisecond)).UTC()
}
