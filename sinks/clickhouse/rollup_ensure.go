package clickhouse

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sluicehq/sluice/schemas"
)

// Rollup tables as EnsureTables finds them, and their retention.

// ensureRollup checks st's rollup table, which DDL has just created if it
// was missing, and returns what differs from what Sluice would create. A
// table Sluice cannot keep equal to the base (an engine that sums or
// replaces rows, a partitioning not by stored_at, a column missing or of
// another kind) is an error naming the statements that rebuild it.
func (s *Sink) ensureRollup(ctx context.Context, st *schemas.Stream) ([]Migration, error) {
	r := rollupOf(st)
	if r == nil {
		return nil, nil
	}
	ti, err := s.describe(ctx, r.table)
	if err != nil {
		return nil, err
	}
	if problems := rollupProblems(r, ti); len(problems) > 0 {
		m := rebuildRollup(s.db, st, r, s.ver, s.opts, ti, problems)
		return nil, fmt.Errorf("rollup %s.%s: %s: Sluice cannot keep it equal to %s; to rebuild it: %s",
			s.db, r.table, strings.Join(problems, "; "), st.Table, strings.Join(m.Statements, "; "))
	}
	migs := rollupMigrations(s.db, st, r, s.ver, s.opts, ti)
	for _, m := range migs {
		s.log.Warn("rollup table differs from what Sluice would create; Sluice writes it as it is until it is migrated",
			"table", m.Table, "problem", m.Problem, "statements", strings.Join(m.Statements, ";\n"))
	}
	return migs, nil
}

// rollupProblems lists what keeps Sluice from writing the rollup table as
// it is: its engine, its partitioning, and its columns. Any MergeTree that
// only sorts, or aggregates SimpleAggregateFunction columns, will do.
func rollupProblems(r *rollup, ti *tableInfo) []string {
	var out []string
	switch base := strings.TrimPrefix(strings.TrimPrefix(ti.engine, "Replicated"), "Shared"); base {
	case "MergeTree", "AggregatingMergeTree":
	default:
		out = append(out, "engine "+ti.engine+" (want MergeTree, or AggregatingMergeTree)")
	}
	if !ti.byTime() {
		out = append(out, fmt.Sprintf("partitioned by %q, not by the month or day of stored_at", ti.partitionKey))
	}
	for _, c := range r.columns() {
		typ, ok := ti.cols[c.name]
		switch {
		case !ok:
			out = append(out, "column "+c.name+" is missing")
		case !rollupTypeOK(typ, c):
			out = append(out, fmt.Sprintf("column %s is %s (want %s or %s)", c.name, typ, c.legacy, c.modern))
		}
	}
	return out
}

// rollupTypeOK reports whether a rollup column of type typ holds what
// Sluice writes into c: c's type on either server, or its plain type
// wrapped in LowCardinality. A SimpleAggregateFunction must be c's own,
// since merges apply its function.
func rollupTypeOK(typ string, c rollupColumn) bool {
	switch {
	case typ == c.legacy || typ == c.modern:
		return true
	case strings.HasPrefix(typ, "SimpleAggregateFunction("):
		return false
	case c.legacy == "DateTime":
		return isDateTime(typ)
	}
	return typ == "LowCardinality("+c.legacy+")"
}

// rollupMigrations compares a rollup table Sluice can write with what it
// would create on a server of version v with the base table's options o:
// a rebuild when the engine, partitioning, sort key or column types
// differ (a rollup created on 18.16 on an upgraded server), else the TTL.
func rollupMigrations(db string, st *schemas.Stream, r *rollup, v Version, o TableOptions, ti *tableInfo) []Migration {
	fl := flavorOf(v)
	var why []string
	want := map[flavor]string{legacyTypes: "MergeTree", modernTypes: "AggregatingMergeTree"}[fl]
	if strings.TrimPrefix(strings.TrimPrefix(ti.engine, "Replicated"), "Shared") != want {
		why = append(why, fmt.Sprintf("the table's engine is %s, Sluice would create %s on server %s", ti.engine, want, v))
	}
	if normalizeKey(ti.partitionKey) != o.partitionKey() {
		why = append(why, fmt.Sprintf("the table is partitioned by %s, the options ask for %s", ti.partitionKey, o.partitionKey()))
	}
	if got, key := sortKey(ti.sortingKey), strings.Join(r.sortKey(fl), ","); got != key {
		why = append(why, fmt.Sprintf("the table is sorted by (%s), Sluice would sort it by (%s)", ti.sortingKey, strings.Join(r.sortKey(fl), ", ")))
	}
	for _, c := range r.columns() {
		if got := ti.cols[c.name]; len(why) == 0 && got != c.typ(fl) {
			why = append(why, fmt.Sprintf("column %s is %s, Sluice would create %s", c.name, got, c.typ(fl)))
		}
	}
	if len(why) > 0 {
		return []Migration{rebuildRollup(db, st, r, v, o, ti, why)}
	}
	if m, ok := ttlMigrationOf(db, r.table, v, rollupOptions(o), ti); ok {
		return []Migration{m}
	}
	return nil
}

// rebuildRollup copies the rollup's rows into a new table created as DDL
// says, and swaps the two. Partial rows stay partial rows: analysts'
// queries sum them up whatever the engine.
func rebuildRollup(db string, st *schemas.Stream, r *rollup, v Version, o TableOptions, ti *tableInfo, why []string) Migration {
	cur := TableName(db, r.table)
	tmp, old := TableName(db, r.table+newSuffix), TableName(db, r.table+oldSuffix)
	create := strings.Replace(createRollup(tmp, r, flavorOf(v), o), "CREATE TABLE IF NOT EXISTS", "CREATE TABLE", 1)
	var cols []string
	for _, c := range r.columns() {
		if _, ok := ti.cols[c.name]; ok {
			cols = append(cols, Quote(c.name))
		}
	}
	problem := strings.Join(why, "; ") + ". Stop the workers of stream " + st.Name +
		" first (nothing may write the tables meanwhile), run the statements, start them again, and once the sums agree drop " + old + "."
	return Migration{Table: db + "." + r.table, Problem: problem, Statements: []string{
		create,
		fmt.Sprintf("INSERT INTO %s (%[2]s) SELECT %[2]s FROM %s", tmp, strings.Join(cols, ", "), cur),
		fmt.Sprintf("RENAME TABLE %s TO %s, %s TO %s", cur, old, tmp, cur),
	}}
}

// dropExpiredRollup applies the rollup's retention, twice the TTL of the
// Sink's TableOptions, where the rollup table has no TTL of its own, as
// DropExpired does for the base table. A rollup row is stored no earlier
// than the base rows it sums up, so the rollup always outlives them.
func (s *Sink) dropExpiredRollup(ctx context.Context, st *schemas.Stream) error {
	r := rollupOf(st)
	if r == nil {
		return nil
	}
	ti, err := s.describe(ctx, r.table)
	if err != nil {
		return err
	}
	if !ti.byTime() || ti.ownTTL() {
		return nil
	}
	days := rollupOptions(s.opts).ttlDays()
	return s.dropPartitionsBefore(ctx, r.table, s.now().Add(-time.Duration(days)*24*time.Hour), days)
}
