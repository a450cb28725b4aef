package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks"
)

// Writing and repairing rollups (see rollup.go for the design).

// rollupFor returns st's rollup as the Sink writes it, or nil: only a base
// table partitioned by stored_at has one, since the rollup's rows take the
// base rows' stored_at and its repair reads the base by stored_at. A table
// of the previous layout gets its rollup once migrated (the first Progress
// then fills it from the whole table).
func (s *Sink) rollupFor(st *schemas.Stream, lay *tableLayout) *rollup {
	if !lay.byTime || !lay.storedAt {
		return nil
	}
	return rollupOf(st)
}

// rollupSearched is the rollup table as the progress search reads it.
func (r *rollup) searched() searched { return searched{table: r.table, newest: "0"} }

// level reports whether the Sink knows the partition's rollup to hold
// exactly what the base holds: it checked (Progress, or Write after a
// failure) and has written both since, each time successfully.
func (s *Sink) level(r *rollup, partition int32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rollupLevel[partitionKey{r.table, partition}]
}

func (s *Sink) setLevel(r *rollup, partition int32, level bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := partitionKey{r.table, partition}
	if level {
		s.rollupLevel[key] = true
	} else {
		delete(s.rollupLevel, key)
	}
}

// catchUp brings the partition's rollup level with its base table, for a
// Write that does not know it to be: the base's progress first, then the
// rollup's, and a repair if it is behind.
func (s *Sink) catchUp(ctx context.Context, st *schemas.Stream, lay *tableLayout, r *rollup, partition int32) error {
	base, err := s.search(ctx, st, lay, partition)
	if err != nil {
		return fmt.Errorf("clickhouse: progress of %s.%s partition %d: %w", s.db, st.Table, partition, err)
	}
	return s.syncRollup(ctx, st, lay, r, partition, base)
}

// syncRollup makes the partition's rollup hold the base rows up to base,
// the base's progress: when the rollup's own progress is behind, it sums
// up the missing range from the base (repairRollup), then checks again.
// A repaired range with nothing to sum up gets a marker row. A rollup
// ahead of its base (a base table restored from an older backup) cannot be
// repaired by adding rows: it is logged, and left as it is.
func (s *Sink) syncRollup(ctx context.Context, st *schemas.Stream, lay *tableLayout, r *rollup, partition int32, base found) error {
	fail := func(err error) error {
		return fmt.Errorf("clickhouse: rollup %s.%s of partition %d: %w", s.db, r.table, partition, err)
	}
	for round := 0; ; round++ {
		got, err := s.searchTable(ctx, r.searched(), partition, nil)
		if err != nil {
			return fail(fmt.Errorf("progress: %w", err))
		}
		switch {
		case !base.ok || got.ok && got.offset >= base.offset:
			if base.ok && got.offset > base.offset {
				s.log.Error("the rollup holds offsets its base table does not: the base lost rows it had (a restore?), and rows stored again will be counted twice in the rollup",
					"rollup", s.db+"."+r.table, "partition", partition, "rollup_offset", got.offset, "base_offset", base.offset,
					"fix", fmt.Sprintf("ALTER TABLE %s DELETE WHERE %s = %d AND %s > %d, then restart the workers",
						TableName(s.db, r.table), Quote(ColKafkaPartition), partition, Quote(ColKafkaOffset), base.offset))
			}
			s.setLevel(r, partition, true)
			return nil
		case round == 0:
			err = s.repairRollup(ctx, st, lay, r, partition, got, base)
		case round == 1:
			// The repair committed and the rollup is still behind: the
			// range held no value to sum up.
			err = s.insertRollup(ctx, r, partition, []*rollupRow{r.marker()}, base.offset, base.stored)
		default:
			return fail(fmt.Errorf("still at offset %d after a repair up to %d", got.offset, base.offset))
		}
		if err != nil {
			return fail(err)
		}
	}
}

// Settings of a repair's INSERT ... SELECT. The server squashes the
// SELECT's blocks into blocks of min_insert_block_size_rows (or _bytes)
// before it writes them, each block a part: raising both past any result
// makes the whole result one block, so the repair is one part, all or
// nothing. (Checked on 18.16: 3 million rows made 3 parts by default, one
// with these.) max_insert_threads, on servers that have it, keeps the
// INSERT in one stream.
const squashAll = 1 << 62

func (s *Sink) repairSettings() ch.Settings {
	set := ch.Settings{"min_insert_block_size_rows": squashAll, "min_insert_block_size_bytes": squashAll}
	if s.ver.Modern() {
		set["max_insert_threads"] = 1
	}
	return set
}

// repairRollup sums up the base rows of the partition after the rollup's
// progress (from), up to and including the base's (to), into the rollup:
// one INSERT ... SELECT on the server, stored_at the base's newest
// stored_at, so that the rollup's stored_at never goes back along the
// partition either. An INSERT of unknown outcome is settled as Write's are.
func (s *Sink) repairRollup(ctx context.Context, st *schemas.Stream, lay *tableLayout, r *rollup, partition int32, from, to found) error {
	q, args, err := r.repairSQL(s.db, st, lay, partition, from, to)
	if err != nil {
		return err
	}
	id := s.newQueryID()
	start := time.Now()
	err = s.conn.Exec(ch.Context(ctx, ch.WithQueryID(id), ch.WithSettings(s.repairSettings())), q, args...)
	if err == nil {
		s.log.Info("repaired a rollup that was behind its base table", "rollup", s.db+"."+r.table, "partition", partition,
			"from_offset", from.offset, "found", from.ok, "to_offset", to.offset, "took", time.Since(start).Round(time.Millisecond))
		return nil
	}
	err = fmt.Errorf("repair offsets after %d up to %d (query id %s): %w", from.offset, to.offset, id, err)
	return s.rollupFailed(ctx, r, partition, id, err)
}

// rollupFailed settles a failed rollup INSERT of unknown outcome, and
// returns err, saying so when it could not.
func (s *Sink) rollupFailed(ctx context.Context, r *rollup, partition int32, id string, err error) error {
	s.setLevel(r, partition, false)
	if cerr := ctxEnded(ctx); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w (%w)", err, cerr)
	}
	if neverSent(err) {
		return err
	}
	if serr := s.afterFailureKey(ctx, partitionKey{r.table, partition}, id); serr != nil {
		return fmt.Errorf("%w; it may still be running on the server, which the next Write or Progress of the partition waits for: %w", err, serr)
	}
	return err
}

// repairSQL is the INSERT ... SELECT of repairRollup, reading the base
// table in the layout it has, pruned to the parts stored since the
// rollup's newest row (a base row after the rollup's progress was stored
// no earlier than the base row the rollup's newest rows came from).
func (r *rollup) repairSQL(db string, st *schemas.Stream, lay *tableLayout, partition int32, from, to found) (string, []any, error) {
	slots := map[string]slot{}
	for _, sl := range lay.slots {
		if sl.src == srcField {
			slots[sl.name] = sl
		}
	}
	var sel, group []string
	for i, d := range r.dims {
		alias := fmt.Sprintf("sluice_dim%d", i)
		sel, group = append(sel, fmt.Sprintf("toString(%s) AS %s", Quote(d), alias)), append(group, alias)
	}
	join := ""
	if r.values != "" {
		switch sl := slots[r.values]; sl.form {
		case formNested:
			join = fmt.Sprintf(" ARRAY JOIN %s AS sluice_metric, %s AS sluice_value", Quote(sl.cols[0].name), Quote(sl.cols[1].name))
		case formMap:
			join = fmt.Sprintf(" ARRAY JOIN mapKeys(%[1]s) AS sluice_metric, mapValues(%[1]s) AS sluice_value", Quote(sl.name))
		default:
			return "", nil, fmt.Errorf("field %s of %s is not a map the rollup can read", r.values, st.Table)
		}
		sel, group = append(sel, "sluice_metric"), append(group, "sluice_metric")
	}
	minute := "toDateTime(intDiv(toUInt32(%s), 60) * 60)"
	switch sl := slots[r.time]; sl.form {
	case formTime64:
		minute = "toDateTime(intDiv(toUnixTimestamp64Milli(%s), 60000) * 60)"
	case formSplitTime:
	default:
		return "", nil, fmt.Errorf("field %s of %s is not a time the rollup can read", r.time, st.Table)
	}
	sel = append(sel, fmt.Sprintf(minute+" AS sluice_minute", Quote(r.time)), "count()")
	group = append(group, "sluice_minute")
	if r.values != "" {
		sel = append(sel, "min(sluice_value)", "max(sluice_value)", "sum(sluice_value)")
	}
	sel = append(sel, "toInt32(?)", "toInt64(?)", "toDateTime(?)")
	var cols []string
	for _, c := range r.columns() {
		cols = append(cols, Quote(c.name))
	}
	lo, first := int64(0), int64(-1)
	if from.ok {
		lo, first = from.stored.Unix(), from.offset
	}
	q := fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s%s WHERE %s = ? AND %s > ? AND %s <= ? AND %s >= toDateTime(?) AND %s <= toDateTime(?) GROUP BY %s",
		TableName(db, r.table), strings.Join(cols, ", "), strings.Join(sel, ", "), TableName(db, st.Table), join,
		Quote(ColKafkaPartition), Quote(ColKafkaOffset), Quote(ColKafkaOffset), Quote(ColStoredAt), Quote(ColStoredAt),
		strings.Join(group, ", "))
	args := []any{partition, to.offset, to.stored.Unix(), partition, first, to.offset, lo, to.stored.Unix()}
	return q, args, nil
}

// writeRollup sums up the rows a Write has just stored into the rollup.
// The error of a failed INSERT is never permanent: the rows are stored,
// and the rollup is repaired from them by the partition's next Progress
// (or Write), which the worker asks before it retries.
func (s *Sink) writeRollup(ctx context.Context, st *schemas.Stream, r *rollup, partition int32, storedAt time.Time, rows []sinks.Row) error {
	groups := r.aggregate(rows)
	if len(groups) == 0 {
		groups = []*rollupRow{r.marker()}
	}
	last := rows[len(rows)-1].Offset
	if err := s.insertRollup(ctx, r, partition, groups, last, storedAt); err != nil {
		return fmt.Errorf("clickhouse: %d rows (offsets %d-%d) are stored in %s.%s, but their rollup failed, to be repaired from them: %w",
			len(rows), rows[0].Offset, last, s.db, st.Table, err)
	}
	return nil
}

// insertRollup sends rows to the rollup as one INSERT, marked with the
// offset and storedAt, and records where the partition's rollup is.
func (s *Sink) insertRollup(ctx context.Context, r *rollup, partition int32, rows []*rollupRow, offset int64, storedAt time.Time) error {
	names, data := r.insertColumns(rows, partition, offset, storedAt)
	id := s.newQueryID()
	err := s.send(ch.Context(ctx, ch.WithQueryID(id)), TableName(s.db, r.table), names, data)
	if err != nil {
		err = fmt.Errorf("insert %d rows marked with offset %d into %s.%s (query id %s): %w", len(rows), offset, s.db, r.table, id, err)
		return s.rollupFailed(ctx, r, partition, id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := partitionKey{r.table, partition}
	ps := s.parts[key]
	if ps == nil {
		ps = &partState{}
		s.parts[key] = ps
	}
	ps.floor = storedAt
	if storedAt.After(ps.used) {
		ps.used = storedAt
	}
	return nil
}
