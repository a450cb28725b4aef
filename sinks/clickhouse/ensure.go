package clickhouse

import (
	"context"
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/schemas"
)

// EnsureTables creates the database and each stream's table if missing,
// as DDL describes them for the server's version and the Sink's
// TableOptions. A table that exists is checked instead:
//
//   - columns a newer schema added are added to it (the one change Sluice
//     makes by itself);
//   - an engine that merges rows away, a partitioning under which an
//     INSERT would not be atomic, or a column of a type Sluice cannot
//     write is an error, naming the statements that would fix it;
//   - any other difference from what Sluice would create (the previous
//     layout partitioned by kafka_partition, 18.16's types on a newer
//     server, another partition granularity, sort key, column type or TTL)
//     is logged and listed by Migrations with the statements to run, and
//     Sluice goes on writing the table as it is.
//
// A built-in stream's rollup table is checked the same way (ensureRollup).
//
// It is idempotent and safe to run from several processes at once.
func (s *Sink) EnsureTables(ctx context.Context, streams []*schemas.Stream) error {
	if err := s.conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+Quote(s.db)); err != nil {
		return fmt.Errorf("clickhouse: create database %s: %w", s.db, err)
	}
	for _, st := range streams {
		if err := s.ensureTable(ctx, st); err != nil {
			return fmt.Errorf("clickhouse: table %s.%s of stream %s: %w", s.db, st.Table, st.Name, err)
		}
	}
	return nil
}

func (s *Sink) ensureTable(ctx context.Context, st *schemas.Stream) error {
	for _, q := range DDL(s.db, st, s.ver, s.opts) {
		if err := s.conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("create: %w", err)
		}
	}
	ti, err := s.describe(ctx, st.Table)
	if err != nil {
		return err
	}
	if err := checkLayout(ti); err != nil {
		m := rebuild(s.db, st, s.ver, s.opts, ti, nil)
		return fmt.Errorf("%w. Rows already merged away cannot be recovered; to move to a table Sluice can write: %s", err, strings.Join(m.Statements, "; "))
	}
	if ti, err = s.addMissing(ctx, st, ti); err != nil {
		return err
	}
	lay, problems := layoutOf(st, ti, s.ver)
	if len(problems) > 0 {
		return fmt.Errorf("%s: Sluice cannot write it; alter or drop the table", strings.Join(problems, "; "))
	}
	migs := migrationsFor(s.db, st, s.ver, s.opts, ti)
	for _, m := range migs {
		s.log.Warn("table differs from what Sluice would create; Sluice writes it as it is until it is migrated",
			"table", m.Table, "problem", m.Problem, "statements", strings.Join(m.Statements, ";\n"))
	}
	rmigs, err := s.ensureRollup(ctx, st)
	if err != nil {
		return err
	}
	migs = append(migs, rmigs...)
	s.setLayout(st.Table, lay)
	s.mu.Lock()
	s.migrations[st.Table] = migs
	s.mu.Unlock()
	return nil
}

// addMissing adds the columns of st that the table lacks, in the table's
// own types, and returns the table as it is then. Existing rows get the
// type's default, which is what Write writes for an absent field.
func (s *Sink) addMissing(ctx context.Context, st *schemas.Stream, ti *tableInfo) (*tableInfo, error) {
	prev, added := "", false
	for _, want := range wantSlots(st, ti.flavor(s.ver)) {
		if want.src == srcStoredAt {
			continue // part of the layout, not of the schema: a migration adds it
		}
		got, ok := resolve(want, ti.cols)
		if ok {
			prev = got.cols[len(got.cols)-1].name
			continue
		}
		for _, c := range want.cols {
			if _, exists := ti.cols[c.name]; !exists {
				if err := s.addColumn(ctx, st, c, prev); err != nil {
					return nil, err
				}
				added = true
			}
			prev = c.name
		}
	}
	if !added {
		return ti, nil
	}
	return s.describe(ctx, st.Table)
}

// addColumn adds a column that a schema change introduced.
func (s *Sink) addColumn(ctx context.Context, st *schemas.Stream, c column, after string) error {
	def := c.typ
	if c.codec != "" {
		def += " " + c.codec
	}
	q := fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", s.table(st), Quote(c.name), def)
	if after != "" {
		q += " AFTER " + Quote(after)
	}
	if err := s.conn.Exec(ctx, q); err != nil {
		// 18.16 has no ADD COLUMN IF NOT EXISTS: another process may have
		// added it first.
		ti, rerr := s.describe(ctx, st.Table)
		if rerr == nil && ti.cols[c.name] == c.typ {
			return nil
		}
		return fmt.Errorf("add column %s %s: %w", c.name, c.typ, err)
	}
	s.log.Info("added column", "table", s.db+"."+st.Table, "column", c.name, "type", c.typ)
	return nil
}

// layout returns how st's table is to be written and read: as EnsureTables
// found it, or read now for a table this Sink has not seen.
func (s *Sink) layout(ctx context.Context, st *schemas.Stream) (*tableLayout, error) {
	s.mu.Lock()
	lay := s.layouts[st.Table]
	s.mu.Unlock()
	if lay != nil {
		return lay, nil
	}
	return s.reloadLayout(ctx, st)
}

// reloadLayout reads the table's layout again.
func (s *Sink) reloadLayout(ctx context.Context, st *schemas.Stream) (*tableLayout, error) {
	ti, err := s.describe(ctx, st.Table)
	if err != nil {
		return nil, err
	}
	lay, _ := layoutOf(st, ti, s.ver)
	s.setLayout(st.Table, lay)
	return lay, nil
}

// setLayout caches a table's layout. When it differs from the one cached
// (an operator migrated the table), what the Sink learnt of the table's
// Kafka partitions is forgotten, to be learnt again from the new table.
func (s *Sink) setLayout(table string, lay *tableLayout) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.layouts[table]; old != nil && old.signature() != lay.signature() {
		for k := range s.parts {
			if k.table == table {
				delete(s.parts, k)
			}
		}
	}
	s.layouts[table] = lay
}

// signature tells two layouts apart.
func (l *tableLayout) signature() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v %v %v|", l.byTime, l.storedAt, l.ownTTL)
	for _, sl := range l.slots {
		for _, c := range sl.cols {
			b.WriteString(c.name + " " + c.typ + ",")
		}
	}
	return b.String()
}
