package clickhouse

import (
	"context"
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/schemas"
)

// Names of the columns every table has besides the stream's own fields:
// the layout that readers of Sluice's tables (sluice verify) rely on.
const (
	// ColEventID holds the event's identity, the key of deduplication.
	ColEventID = schemas.FieldEventID
	// ColReceivedAt holds when a collector received the event, in whole
	// seconds (DateTime); ColReceivedAtMs holds the milliseconds.
	ColReceivedAt   = schemas.FieldReceivedAt
	ColReceivedAtMs = schemas.FieldReceivedAt + msSuffix
	// ColKafkaPartition holds the event's Kafka partition. Every table is
	// partitioned by it (PARTITION BY), so the names of a table's MergeTree
	// partitions in system.parts are Kafka partition numbers.
	ColKafkaPartition = "kafka_partition"
	// ColKafkaOffset holds the event's offset in its Kafka partition.
	ColKafkaOffset = "kafka_offset"

	// msSuffix names the column holding the milliseconds of a timestamp,
	// since 18.16's DateTime stops at seconds.
	msSuffix = "_ms"
)

// column is one column as system.columns and INSERT name it: a Nested field
// is two Array columns, <field>.name and <field>.value.
type column struct {
	name, typ string
}

// columns returns the physical columns of st's table, in table order.
func columns(st *schemas.Stream) []column {
	cols := make([]column, 0, 2*len(st.Fields)+5)
	cols = append(cols, column{ColEventID, "String"})
	for _, f := range st.Fields {
		switch f.Type {
		case schemas.TypeTimestamp:
			cols = append(cols, column{f.Name, "DateTime"}, column{f.Name + msSuffix, "UInt16"})
		case schemas.TypeNumberMap:
			cols = append(cols, column{f.Name + ".name", "Array(String)"}, column{f.Name + ".value", "Array(Float64)"})
		case schemas.TypeStringMap:
			cols = append(cols, column{f.Name + ".name", "Array(String)"}, column{f.Name + ".value", "Array(String)"})
		default: // string, enum
			cols = append(cols, column{f.Name, "String"})
		}
	}
	return append(cols,
		column{ColReceivedAt, "DateTime"},
		column{ColReceivedAtMs, "UInt16"},
		column{ColKafkaPartition, "Int32"},
		column{ColKafkaOffset, "Int64"},
	)
}

// fieldDefs returns the column definitions of CREATE TABLE, where a map
// field is one Nested column rather than its two arrays.
func fieldDefs(st *schemas.Stream) []string {
	defs := []string{Quote(ColEventID) + " String"}
	for _, f := range st.Fields {
		n := Quote(f.Name)
		switch f.Type {
		case schemas.TypeTimestamp:
			defs = append(defs, n+" DateTime", Quote(f.Name+msSuffix)+" UInt16")
		case schemas.TypeNumberMap:
			defs = append(defs, n+" Nested(name String, value Float64)")
		case schemas.TypeStringMap:
			defs = append(defs, n+" Nested(name String, value String)")
		default:
			defs = append(defs, n+" String")
		}
	}
	return append(defs,
		Quote(ColReceivedAt)+" DateTime",
		Quote(ColReceivedAtMs)+" UInt16",
		Quote(ColKafkaPartition)+" Int32",
		Quote(ColKafkaOffset)+" Int64",
	)
}

// Quote makes an identifier safe to put in a statement whatever it is,
// keywords and backquotes included: `kafka_offset`, `a\`b`.
func Quote(ident string) string {
	return "`" + strings.ReplaceAll(ident, "`", "\\`") + "`"
}

// TableName returns the quoted, database-qualified name of a table, as
// statements about a stream's table name it.
func TableName(db, table string) string { return Quote(db) + "." + Quote(table) }

func (s *Sink) table(st *schemas.Stream) string { return TableName(s.db, st.Table) }

// CreateTableSQL returns the CREATE TABLE statement of st's table.
//
// PARTITION BY kafka_partition is what makes a Write atomic: MergeTree
// splits an inserted block into one part per partition it touches and
// commits the parts one by one, so a block holding one Kafka partition's rows
// becomes exactly one part. It also lets Progress read one partition only.
func (s *Sink) CreateTableSQL(st *schemas.Stream) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (\n", s.table(st))
	defs := fieldDefs(st)
	for i, d := range defs {
		b.WriteString("    ")
		b.WriteString(d)
		if i < len(defs)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString(")\nENGINE = MergeTree()\nPARTITION BY " + Quote(ColKafkaPartition) + "\n")
	if len(st.OrderBy) == 0 {
		b.WriteString("ORDER BY tuple()")
	} else {
		keys := make([]string, len(st.OrderBy))
		for i, k := range st.OrderBy {
			keys[i] = Quote(k)
		}
		b.WriteString("ORDER BY (" + strings.Join(keys, ", ") + ")")
	}
	return b.String()
}

// EnsureTables creates the database and each stream's table if missing. A
// table that exists is checked instead: columns a newer schema added are
// added to it, and a column of another type, or a partitioning that would
// break the atomicity of inserts, is an error, since rows could not be
// stored as Sluice stores them. It is idempotent and safe to run from
// several processes at once.
func (s *Sink) EnsureTables(ctx context.Context, streams []*schemas.Stream) error {
	if err := s.conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+Quote(s.db)); err != nil {
		return fmt.Errorf("clickhouse: create database %s: %w", s.db, err)
	}
	for _, st := range streams {
		if err := s.conn.Exec(ctx, s.CreateTableSQL(st)); err != nil {
			return fmt.Errorf("clickhouse: create table %s.%s: %w", s.db, st.Table, err)
		}
		if err := s.checkTable(ctx, st); err != nil {
			return fmt.Errorf("clickhouse: table %s.%s of stream %s: %w", s.db, st.Table, st.Name, err)
		}
	}
	return nil
}

// checkTable reconciles an existing table with st.
func (s *Sink) checkTable(ctx context.Context, st *schemas.Stream) error {
	var engine, partitionKey string
	row := s.conn.QueryRow(ctx, "SELECT engine, partition_key FROM system.tables WHERE database = ? AND name = ?", s.db, st.Table)
	if err := row.Scan(&engine, &partitionKey); err != nil {
		return fmt.Errorf("read engine: %w", err)
	}
	if !strings.HasSuffix(engine, "MergeTree") || strings.TrimSpace(partitionKey) != ColKafkaPartition {
		return fmt.Errorf("engine %s partitioned by %q: want a MergeTree partitioned by %s, or inserts are not atomic; drop or rename the table", engine, partitionKey, ColKafkaPartition)
	}

	have, err := s.tableColumns(ctx, st)
	if err != nil {
		return err
	}
	want := columns(st)
	prev := ""
	for _, c := range want {
		typ, ok := have[c.name]
		switch {
		case ok && typ != c.typ:
			return fmt.Errorf("column %s is %s, the schema needs %s; alter or drop the table", c.name, typ, c.typ)
		case !ok:
			if err := s.addColumn(ctx, st, c, prev); err != nil {
				return err
			}
		}
		prev = c.name
	}
	return nil
}

func (s *Sink) tableColumns(ctx context.Context, st *schemas.Stream) (map[string]string, error) {
	rows, err := s.conn.Query(ctx, "SELECT name, type FROM system.columns WHERE database = ? AND table = ?", s.db, st.Table)
	if err != nil {
		return nil, fmt.Errorf("read columns: %w", err)
	}
	defer rows.Close()
	have := make(map[string]string)
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, fmt.Errorf("read columns: %w", err)
		}
		have[name] = typ
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read columns: %w", err)
	}
	return have, nil
}

// addColumn adds a column that a schema change introduced. Existing rows get
// the type's default, which is what Write writes for an absent field.
func (s *Sink) addColumn(ctx context.Context, st *schemas.Stream, c column, after string) error {
	q := fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", s.table(st), Quote(c.name), c.typ)
	if after != "" {
		q += " AFTER " + Quote(after)
	}
	err := s.conn.Exec(ctx, q)
	if err != nil {
		// 18.16 has no ADD COLUMN IF NOT EXISTS: another process may have
		// added it first.
		have, rerr := s.tableColumns(ctx, st)
		if rerr == nil && have[c.name] == c.typ {
			return nil
		}
		return fmt.Errorf("add column %s %s: %w", c.name, c.typ, err)
	}
	s.log.Info("added column", "table", s.db+"."+st.Table, "column", c.name, "type", c.typ)
	return nil
}
