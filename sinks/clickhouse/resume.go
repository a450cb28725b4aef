package clickhouse

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks"
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
}

// found is what a search found of a Kafka partition's rows.
type found struct {
	ok     bool      // the partition has rows
	offset int64     // the highest offset
	stored time.Time // the highest stored_at
	newest time.Time // the newest received_at among the rows looked at

	// Where a window was asked for (windowAsk): the rows of the look that
	// found the partition were those stored at or after lo; seen of them,
	// those with the highest offsets, were looked at, and ids are the ones
	// received within the window of newest, in increasing offset order.
	lo   time.Time
	seen int
	ids  []sinks.Received
}

// windowAsk asks a search to collect a dedupe window in the same look that
// finds the partition's progress, so that Resume reads the time partition
// holding the newest rows once rather than once per question: the rows
// received within window of the newest, at most limit, those with the
// highest offsets.
type windowAsk struct {
	window time.Duration
	limit  int
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
	return s.searchTable(ctx, baseSearched(st, lay), partition, nil)
}

// searchTable finds the partition's progress in the table, and its window
// when ask is not nil, and records what it learnt, by table and partition.
func (s *Sink) searchTable(ctx context.Context, tb searched, partition int32, ask *windowAsk) (found, error) {
	key := partitionKey{tb.table, partition}
	s.mu.Lock()
	var floor time.Time
	if ps := s.parts[key]; ps != nil {
		floor = ps.floor
	}
	s.mu.Unlock()
	f, err := s.searchFrom(ctx, tb, partition, floor, ask)
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
	return f, nil
}

// searchFrom runs the search, first from floor when it is known.
func (s *Sink) searchFrom(ctx context.Context, tb searched, partition int32, floor time.Time, ask *windowAsk) (found, error) {
	// Every row stored at or after searched has been looked at.
	var searched time.Time
	if !floor.IsZero() {
		f, err := s.probe(ctx, tb, partition, floor, time.Time{}, ask)
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
		f, err := s.probe(ctx, tb, partition, lo, time.Time{}, ask)
		if err != nil || f.ok {
			return f, err
		}
		searched = lo
	}
	for _, p := range timeParts(parts) {
		if !searched.IsZero() && !p.min.Before(searched) {
			continue // looked at already
		}
		f, err := s.probe(ctx, tb, partition, p.min, p.max, ask)
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

// storedWithin is the condition on the partition's rows stored at or after
// lo, and at or before hi unless hi is zero, and its arguments.
func storedWithin(partition int32, lo, hi time.Time) (string, []any) {
	where := fmt.Sprintf("%[1]s = ? AND %[2]s >= toDateTime(?)", Quote(ColKafkaPartition), Quote(ColStoredAt))
	args := []any{partition, lo.Unix()}
	if !hi.IsZero() {
		where += fmt.Sprintf(" AND %s <= toDateTime(?)", Quote(ColStoredAt))
		args = append(args, hi.Unix())
	}
	return where, args
}

// probe sums up the partition's rows stored at or after lo, and at or
// before hi unless hi is zero; with ask, it collects the window too.
func (s *Sink) probe(ctx context.Context, tb searched, partition int32, lo, hi time.Time, ask *windowAsk) (found, error) {
	if ask != nil && ask.limit > 0 {
		return s.probeWindow(ctx, tb, partition, lo, hi, ask)
	}
	where, args := storedWithin(partition, lo, hi)
	// toInt64: the newest expression is a constant 0 for a rollup, whose
	// max() would otherwise be a UInt8.
	q := fmt.Sprintf("SELECT count(), max(%[1]s), max(%[2]s), max(toInt64(%[3]s)) FROM %[4]s WHERE %[5]s",
		Quote(ColKafkaOffset), Quote(ColStoredAt), tb.newest, TableName(s.db, tb.table), where)
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

// probeWindow is probe that also collects ask's window, reading the rows
// once: the inner query keeps the partition's ask.limit rows with the
// highest offsets (a bounded sort), and the outer one sums them up and
// keeps those received within the window of the newest of them. Where the
// partition's newest receive time is not among those rows (a collector's
// clock ahead by more than they span), newest is early and the window
// wider than asked, which remembers more ids, never fewer.
func (s *Sink) probeWindow(ctx context.Context, tb searched, partition int32, lo, hi time.Time, ask *windowAsk) (found, error) {
	where, args := storedWithin(partition, lo, hi)
	q := fmt.Sprintf(`SELECT count(), max(o), max(s), max(r) AS newest,
  arrayFilter((x, at) -> at >= newest - ?, groupArray(i), groupArray(r)),
  arrayFilter(at -> at >= newest - ?, groupArray(r)),
  arrayFilter((x, at) -> at >= newest - ?, groupArray(o), groupArray(r))
FROM (SELECT %[1]s AS i, toInt64(%[2]s) AS r, %[3]s AS o, %[4]s AS s FROM %[5]s WHERE %[6]s ORDER BY o DESC LIMIT ?)`,
		Quote(ColEventID), tb.newest, Quote(ColKafkaOffset), Quote(ColStoredAt), TableName(s.db, tb.table), where)
	w := ask.window.Milliseconds()
	args = append([]any{w, w, w}, append(args, ask.limit)...)
	var (
		f           found
		count       uint64
		newest      int64
		ids         []string
		at, offsets []int64
	)
	if err := s.conn.QueryRow(s.readCtx(ctx), q, args...).Scan(&count, &f.offset, &f.stored, &newest, &ids, &at, &offsets); err != nil {
		return found{}, err
	}
	if count == 0 {
		return found{}, nil
	}
	if len(ids) != len(at) || len(ids) != len(offsets) {
		return found{}, fmt.Errorf("window of partition %d: %d ids, %d times and %d offsets", partition, len(ids), len(at), len(offsets))
	}
	f.ok, f.stored, f.newest = true, f.stored.UTC(), time.UnixMilli(newest).UTC()
	f.lo, f.seen = lo, int(count)
	f.ids = make([]sinks.Received, len(ids))
	for i := range ids {
		f.ids[i] = sinks.Received{ID: ids[i], At: time.UnixMilli(at[i]).UTC(), Offset: offsets[i]}
	}
	// groupArray keeps the order rows reach it in, which several streams
	// of the inner query do not fix.
	slices.SortFunc(f.ids, func(a, b sinks.Received) int { return cmp.Compare(a.Offset, b.Offset) })
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
	ps.used = at
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
