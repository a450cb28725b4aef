package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sluicehq/sluice/schemas"
)

// Migration is a difference between a table and the one Sluice would
// create, which Sluice reports instead of fixing: it never alters or drops
// anything of a table except adding the columns a schema gained. Until an
// operator runs Statements, Sluice keeps writing the table as it is.
type Migration struct {
	// Table is database.table.
	Table string
	// Problem says what differs and what to mind when migrating.
	Problem string
	// Statements are what an operator runs, in order, to migrate.
	Statements []string
}

// Migrations returns what the last EnsureTables found to differ in the
// tables, by table name. Empty when every table is as Sluice creates it.
func (s *Sink) Migrations() []Migration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Migration
	for _, m := range s.migrations {
		out = append(out, m...)
	}
	slices.SortStableFunc(out, func(a, b Migration) int { return strings.Compare(a.Table, b.Table) })
	return out
}

// tableInfo is a table as the system tables describe it.
type tableInfo struct {
	engine, engineFull, partitionKey, sortingKey string
	// cols maps each column's name to its type; names keeps table order.
	cols  map[string]string
	names []string
}

// errNoTable is a table that does not exist: Write's caller retries, since
// EnsureTables or an operator can fix it.
var errNoTable = errors.New("table does not exist")

// describe reads a table's engine, keys and columns.
func (s *Sink) describe(ctx context.Context, table string) (*tableInfo, error) {
	ti := &tableInfo{cols: make(map[string]string)}
	rows, err := s.conn.Query(ctx, "SELECT engine, engine_full, partition_key, sorting_key FROM system.tables WHERE database = ? AND name = ?", s.db, table)
	if err != nil {
		return nil, fmt.Errorf("describe %s.%s: %w", s.db, table, err)
	}
	found := rows.Next()
	if found {
		err = rows.Scan(&ti.engine, &ti.engineFull, &ti.partitionKey, &ti.sortingKey)
	}
	rows.Close()
	if err == nil {
		err = rows.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("describe %s.%s: %w", s.db, table, err)
	}
	if !found {
		return nil, fmt.Errorf("%s.%s: %w", s.db, table, errNoTable)
	}
	rows, err = s.conn.Query(ctx, "SELECT name, type FROM system.columns WHERE database = ? AND table = ?", s.db, table)
	if err != nil {
		return nil, fmt.Errorf("columns of %s.%s: %w", s.db, table, err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, fmt.Errorf("columns of %s.%s: %w", s.db, table, err)
		}
		ti.cols[name] = typ
		ti.names = append(ti.names, name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("columns of %s.%s: %w", s.db, table, err)
	}
	return ti, nil
}

// flavor is the types the table was created with, told by received_at,
// which every table has.
func (ti *tableInfo) flavor(server Version) flavor {
	typ, ok := ti.cols[ColReceivedAt]
	switch {
	case !ok:
		return flavorOf(server)
	case strings.HasPrefix(typ, "DateTime64("):
		return modernTypes
	}
	return legacyTypes
}

func normalizeKey(k string) string {
	return strings.NewReplacer("`", "", " ", "").Replace(k)
}

// byTime reports whether the table is partitioned by stored_at.
func (ti *tableInfo) byTime() bool {
	k := normalizeKey(ti.partitionKey)
	return k == "toYYYYMM("+ColStoredAt+")" || k == "toYYYYMMDD("+ColStoredAt+")"
}

// byKafkaPartition reports whether the table has the previous layout.
func (ti *tableInfo) byKafkaPartition() bool {
	return normalizeKey(ti.partitionKey) == ColKafkaPartition
}

// ownTTL reports whether the table has a TTL of its own.
func (ti *tableInfo) ownTTL() bool { return strings.Contains(ti.engineFull, " TTL ") }

// checkEngine refuses the engines that merge rows away. A
// ReplacingMergeTree drops rows with equal sort keys (two readings of one
// device in one millisecond), Summing and Aggregating ones fold them
// together, Collapsing ones cancel them: stored events would vanish or
// change after the fact, and count() would not be the truth.
func checkEngine(engine string) error {
	base := strings.TrimPrefix(strings.TrimPrefix(engine, "Replicated"), "Shared")
	switch {
	case base == "MergeTree":
		return nil
	case strings.HasSuffix(base, "MergeTree"):
		return fmt.Errorf("engine %s merges rows with equal sort keys away (replaces, sums, collapses or aggregates them): stored events would vanish or change; Sluice needs a plain MergeTree", engine)
	}
	return fmt.Errorf("engine %s: Sluice needs a MergeTree", engine)
}

// checkLayout refuses a table whose partitioning could split one INSERT
// into several parts, which would make it not atomic.
func checkLayout(ti *tableInfo) error {
	if err := checkEngine(ti.engine); err != nil {
		return err
	}
	if !ti.byTime() && !ti.byKafkaPartition() {
		return fmt.Errorf("partitioned by %q: the rows of one INSERT could land in several partitions, so inserts are not atomic; Sluice needs PARTITION BY toYYYYMM(stored_at), toYYYYMMDD(stored_at) or kafka_partition", ti.partitionKey)
	}
	return nil
}

// layoutOf resolves every slot of st in the table (lenient: see resolve),
// and lists the slots Sluice cannot write as it finds them.
func layoutOf(st *schemas.Stream, ti *tableInfo, server Version) (*tableLayout, []string) {
	lay := &tableLayout{byTime: ti.byTime(), ownTTL: ti.ownTTL()}
	var problems []string
	for _, want := range wantSlots(st, ti.flavor(server)) {
		if _, ok := ti.cols[ColStoredAt]; want.src == srcStoredAt && !ok {
			continue // the previous layout: no stored_at to fill
		}
		got, ok := resolve(want, ti.cols)
		if !ok {
			problems = append(problems, mismatch(want, ti.cols))
		}
		switch want.src {
		case srcStoredAt:
			lay.storedAt = true
		case srcReceivedAt:
			lay.recv64 = got.form == formTime64
		}
		lay.slots = append(lay.slots, got)
	}
	return lay, problems
}

func mismatch(want slot, have map[string]string) string {
	var got, need []string
	for _, c := range want.cols {
		need = append(need, c.typ)
		if t, ok := have[c.name]; ok {
			got = append(got, c.name+" is "+t)
		} else {
			got = append(got, c.name+" is missing")
		}
	}
	return fmt.Sprintf("column %s, the schema needs %s", strings.Join(got, " and "), strings.Join(need, " and "))
}
