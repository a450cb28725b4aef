package clickhouse

import (
	"context"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/schemas"
)

// Resuming from a table partitioned by time.
//
// Every INSERT of a Kafka partition gets one stored_at, never earlier than
// the one before it. So within a Kafka partition stored_at never decreases
// as offsets grow, and two facts follow:
//
//   - the partition's highest offset is in its rows with the highest
//     stored_at, which lie in the newest time partition holding any of its
//     rows: time partitions cover disjoint ranges of stored_at;
//   - if the partition has any row stored at or after t, its highest
//     offset is among the rows stored at or after t.
//
// A query bounded by stored_at reads only the parts whose stored_at range
// meets the bounds: every MergeTree part keeps the minimum and maximum of
// its partition key's columns (system.parts min_time, max_time) and the
// server skips the others without reading them. That works on 18.16, which
// has no skip indexes. So the search for a partition's progress reads, in
// turn: the rows stored since a time the Sink knows the partition had rows
// at (its last write or search); else the last hour of the newest time
// partition, where an active partition has its newest rows; then each time
// partition, newest first, until one holds rows of the Kafka partition.

// probeWindow is the first look of a search that knows nothing of the
// partition: the newest stored rows of the whole table, this far back.
const probeWindow = time.Hour

// partState is what the Sink knows of one Kafka partition of a table
// partitioned by time.
type partState struct {
	// used is the newest stored_at given to an INSERT of the partition,
	// stored or not: the next is never earlier.
	used time.Time
	// floor is a stored_at at which the partition is known to have rows,
	// where the next search starts; zero when unknown.
	floor time.Time
	// last is what the last search found; nil once the partition is
	// written again.
	last *found
}

// found is what a search found of a Kafka partition's rows.
type found struct {
	ok     bool      // the partition has rows
	offset int64     // the highest offset
	stored time.Time // the highest stored_at
	newest time.Time // the newest received_at among the rows looked at
}

// timePart is one time partition of a table: the stored_at range its
// active parts hold.
type timePart struct {
	id       string
	min, max time.Time
}

// search finds the partition's progress and records what it learnt.
func (s *Sink) search(ctx context.Context, st *schemas.Stream, lay *tableLayout, partition int32) (found, error) {
	key := partitionKey{st.Table, partition}
	s.mu.Lock()
	var floor time.Time
	if ps := s.parts[key]; ps != nil {
		floor = ps.floor
	}
	s.mu.Unlock()
	f, err := s.searchFrom(ctx, st, lay, partition, floor)
	if err != nil {
		return found{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.parts[key]
	if ps == nil {
		ps = &partState{}
		s.parts[key] = ps
	}
	ps.floor = time.Time{}
	if f.ok {
		ps.floor = f.stored
		if f.stored.After(ps.used) {
			ps.used = f.stored
		}
	}
	ps.last = &f
	return f, nil
}

// searchFrom runs the search, first from floor when it is known.
func (s *Sink) searchFrom(ctx context.Context, st *schemas.Stream, lay *tableLayout, partition int32, floor time.Time) (found, error) {
	// Every row stored at or after searched has been looked at.
	var searched time.Time
	if !floor.IsZero() {
		f, err := s.probe(ctx, st, lay, partition, floor, time.Time{})
		if err != nil || f.ok {
			return f, err
		}
		searched = floor // the rows were dropped since (retention)
	}
	parts, err := s.timeParts(ctx, st.Table)
	if err != nil || len(parts) == 0 {
		return found{}, err
	}
	if lo := parts[0].max.Add(-probeWindow); searched.IsZero() || lo.Before(searched) {
		f, err := s.probe(ctx, st, lay, partition, lo, time.Time{})
		if err != nil || f.ok {
			return f, err
		}
		searched = lo
	}
	for _, p := range parts {
		if !p.min.Before(searched) {
			continue // looked at already
		}
		f, err := s.probe(ctx, st, lay, partition, p.min, p.max)
		if err != nil || f.ok {
			return f, err
		}
	}
	return found{}, nil
}

// probe sums up the partition's rows stored at or after lo, and at or
// before hi unless hi is zero.
func (s *Sink) probe(ctx context.Context, st *schemas.Stream, lay *tableLayout, partition int32, lo, hi time.Time) (found, error) {
	q := fmt.Sprintf("SELECT count(), max(%[1]s), max(%[2]s), max(%[3]s) FROM %[4]s WHERE %[5]s = ? AND %[2]s >= toDateTime(?)",
		Quote(ColKafkaOffset), Quote(ColStoredAt), lay.recvMillis(), s.table(st), Quote(ColKafkaPartition))
	args := []any{partition, lo.Unix()}
	if !hi.IsZero() {
		q += fmt.Sprintf(" AND %s <= toDateTime(?)", Quote(ColStoredAt))
		args = append(args, hi.Unix())
	}
	var (
		f      found
		count  uint64
		millis int64
	)
	if err := s.conn.QueryRow(s.readCtx(ctx), q, args...).Scan(&count, &f.offset, &f.stored, &millis); err != nil {
		return found{}, err
	}
	if count == 0 {
		return found{}, nil
	}
	f.ok, f.stored, f.newest = true, f.stored.UTC(), time.UnixMilli(millis).UTC()
	return f, nil
}

// timeParts lists the table's time partitions, newest first.
func (s *Sink) timeParts(ctx context.Context, table string) ([]timePart, error) {
	rows, err := s.conn.Query(s.readCtx(ctx), `SELECT partition_id, min(min_time) AS lo, max(max_time) AS hi FROM system.parts
WHERE database = ? AND table = ? AND active GROUP BY partition_id ORDER BY hi DESC`, s.db, table)
	if err != nil {
		return nil, fmt.Errorf("partitions of %s.%s: %w", s.db, table, err)
	}
	defer rows.Close()
	var out []timePart
	for rows.Next() {
		var p timePart
		if err := rows.Scan(&p.id, &p.min, &p.max); err != nil {
			return nil, fmt.Errorf("partitions of %s.%s: %w", s.db, table, err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("partitions of %s.%s: %w", s.db, table, err)
	}
	return out, nil
}

// lastFound returns what the last search of the partition found, when it
// has not been written since, or searches again.
func (s *Sink) lastFound(ctx context.Context, st *schemas.Stream, lay *tableLayout, partition int32) (found, error) {
	s.mu.Lock()
	ps := s.parts[partitionKey{st.Table, partition}]
	var last *found
	if ps != nil {
		last = ps.last
	}
	s.mu.Unlock()
	if last != nil {
		return *last, nil
	}
	return s.search(ctx, st, lay, partition)
}

// nextStoredAt returns the stored_at of the partition's next INSERT: the
// Sink's clock in whole seconds, or the last one given if the clock is
// behind it (a clock set back, or another worker's clock ahead). A
// partition the Sink knows nothing of is searched first, to learn it.
func (s *Sink) nextStoredAt(ctx context.Context, st *schemas.Stream, lay *tableLayout, partition int32) (time.Time, error) {
	key := partitionKey{st.Table, partition}
	s.mu.Lock()
	known := s.parts[key] != nil
	if !known && !lay.byTime {
		// Progress does not depend on stored_at here: nothing to learn.
		s.parts[key], known = &partState{}, true
	}
	s.mu.Unlock()
	if !known {
		if _, err := s.search(ctx, st, lay, partition); err != nil {
			return time.Time{}, fmt.Errorf("learn the newest stored_at: %w", err)
		}
	}
	at := s.now().UTC().Truncate(time.Second)
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.parts[key]
	if ps == nil { // the table was migrated meanwhile: learn again next time
		return at, fmt.Errorf("the table's layout changed; write again")
	}
	if at.Before(ps.used) {
		at = ps.used
	}
	ps.used, ps.last = at, nil
	return at, nil
}

// stored records a successful INSERT of the partition: it holds rows at
// the stored_at last given, which is where the next search starts.
func (s *Sink) stored(st *schemas.Stream, partition int32, lay *tableLayout) {
	if !lay.storedAt {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ps := s.parts[partitionKey{st.Table, partition}]; ps != nil {
		ps.floor = ps.used
	}
}
