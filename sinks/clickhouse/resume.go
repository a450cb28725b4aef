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
// at (its last write or search); else the newest parts, those of recent
// INSERTs that merges have not yet folded into big ones, as long as they
// hold no more than an eighth of the newest time partition (probeFloor):
// a partition being written has its newest rows there; then each time
// partition, newest first, until one holds rows of the Kafka partition.
// Reading is by whole parts, so what the search reads is at most the newest
// time partition holding the Kafka partition, plus the newest parts and the
// newer time partitions that do not hold it.

// probeShare bounds the first look of a search that knows nothing of the
// partition: the newest parts, up to this share of the rows of the newest
// time partition.
const probeShare = 8

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

// part is one active part of a table: its time partition, the stored_at
// range it holds, and its rows.
type part struct {
	partition string
	min, max  time.Time
	rows      uint64
}

// searched is a table that the search for a Kafka partition's progress
// reads: st's table, or its rollup. Both are partitioned by stored_at,
// which never decreases along a Kafka partition's offsets in either.
type searched struct {
	// table is the table's name, unquoted.
	table string
	// newest is an expression of the newest receive time of rows, in Unix
	// milliseconds, that the search returns as found.newest; "0" where the
	// table has none (a rollup).
	newest string
}

// baseSearched is st's table as the search reads it.
func baseSearched(st *schemas.Stream, lay *tableLayout) searched {
	return searched{table: st.Table, newest: lay.recvMillis()}
}

// search finds the partition's progress in st's table and records what it
// learnt.
func (s *Sink) search(ctx context.Context, st *schemas.Stream, lay *tableLayout, partition int32) (found, error) {
	return s.searchTable(ctx, baseSearched(st, lay), partition)
}

// searchTable finds the partition's progress in the table and records what
// it learnt, by table and partition.
func (s *Sink) searchTable(ctx context.Context, tb searched, partition int32) (found, error) {
	key := partitionKey{tb.table, partition}
	s.mu.Lock()
	var floor time.Time
	if ps := s.parts[key]; ps != nil {
		floor = ps.floor
	}
	s.mu.Unlock()
	f, err := s.searchFrom(ctx, tb, partition, floor)
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
func (s *Sink) searchFrom(ctx context.Context, tb searched, partition int32, floor time.Time) (found, error) {
	// Every row stored at or after searched has been looked at.
	var searched time.Time
	if !floor.IsZero() {
		f, err := s.probe(ctx, tb, partition, floor, time.Time{})
		if err != nil || f.ok {
			return f, err
		}
		searched = floor // the rows were dropped since (retention)
	}
	parts, err := s.activeParts(ctx, tb.table)
	if err != nil || len(parts) == 0 {
		return found{}, err
	}
	if lo := probeFloor(parts); !lo.IsZero() && (searched.IsZero() || lo.Before(searched)) {
		f, err := s.probe(ctx, tb, partition, lo, time.Time{})
		if err != nil || f.ok {
			return f, err
		}
		searched = lo
	}
	for _, p := range timeParts(parts) {
		if !searched.IsZero() && !p.min.Before(searched) {
			continue // looked at already
		}
		f, err := s.probe(ctx, tb, partition, p.min, p.max)
		if err != nil || f.ok {
			return f, err
		}
	}
	return found{}, nil
}

// probeFloor returns the lowest stored_at from which a look reads no more
// than 1/probeShare of the rows of the newest time partition: all parts
// whose newest row is stored at or after it. It is zero when even the
// newest part is larger (a merge just folded the recent INSERTs into a big
// part): then the newest time partition is read whole at once, rather than
// that part twice. parts are newest first.
func probeFloor(parts []part) time.Time {
	var budget uint64
	for _, p := range parts {
		if p.partition == parts[0].partition {
			budget += p.rows
		}
	}
	budget /= probeShare
	var floor time.Time
	for _, next := range parts {
		lo := next.min
		if !floor.IsZero() && floor.Before(lo) {
			lo = floor
		}
		var cost uint64
		for _, p := range parts {
			if !p.max.Before(lo) {
				cost += p.rows
			}
		}
		if cost > budget {
			break
		}
		floor = lo
	}
	return floor
}

// probe sums up the partition's rows stored at or after lo, and at or
// before hi unless hi is zero.
func (s *Sink) probe(ctx context.Context, tb searched, partition int32, lo, hi time.Time) (found, error) {
	// toInt64: the newest expression is a constant 0 for a rollup, whose
	// max() would otherwise be a UInt8.
	q := fmt.Sprintf("SELECT count(), max(%[1]s), max(%[2]s), max(toInt64(%[3]s)) FROM %[4]s WHERE %[5]s = ? AND %[2]s >= toDateTime(?)",
		Quote(ColKafkaOffset), Quote(ColStoredAt), tb.newest, TableName(s.db, tb.table), Quote(ColKafkaPartition))
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

// activeParts lists the table's active parts, newest first.
func (s *Sink) activeParts(ctx context.Context, table string) ([]part, error) {
	rows, err := s.conn.Query(s.readCtx(ctx), `SELECT partition_id, min_time, max_time, rows FROM system.parts
WHERE database = ? AND table = ? AND active ORDER BY max_time DESC`, s.db, table)
	if err != nil {
		return nil, fmt.Errorf("parts of %s.%s: %w", s.db, table, err)
	}
	defer rows.Close()
	var out []part
	for rows.Next() {
		var p part
		if err := rows.Scan(&p.partition, &p.min, &p.max, &p.rows); err != nil {
			return nil, fmt.Errorf("parts of %s.%s: %w", s.db, table, err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("parts of %s.%s: %w", s.db, table, err)
	}
	return out, nil
}

// timeParts groups parts (newest first) by time partition, newest first.
// Time partitions cover disjoint ranges of stored_at.
func timeParts(parts []part) []timePart {
	var out []timePart
	at := map[string]int{}
	for _, p := range parts {
		i, ok := at[p.partition]
		if !ok {
			at[p.partition] = len(out)
			out = append(out, timePart{id: p.partition, min: p.min, max: p.max})
			continue
		}
		if p.min.Before(out[i].min) {
			out[i].min = p.min
		}
	}
	return out
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
