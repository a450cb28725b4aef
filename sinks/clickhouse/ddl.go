package clickhouse

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/schemas"
)

// Names of the columns every table has besides the stream's own fields:
// the layout that readers of Sluice's tables (sluice verify) rely on.
const (
	// ColEventID holds the event's identity, the key of deduplication.
	ColEventID = schemas.FieldEventID
	// ColReceivedAt holds when a collector received the event: DateTime64(3)
	// on a modern server; on 18.16 DateTime in whole seconds, with the
	// milliseconds in ColReceivedAtMs.
	ColReceivedAt   = schemas.FieldReceivedAt
	ColReceivedAtMs = schemas.FieldReceivedAt + msSuffix
	// ColKafkaPartition holds the event's Kafka partition.
	ColKafkaPartition = "kafka_partition"
	// ColKafkaOffset holds the event's offset in its Kafka partition.
	ColKafkaOffset = "kafka_offset"
	// ColStoredAt holds when Sluice stored the row, in seconds: one value
	// for all the rows of one INSERT, never earlier than that of an earlier
	// INSERT of the same Kafka partition. Tables are partitioned by it.
	// Tables of the previous layout (partitioned by kafka_partition) lack it.
	ColStoredAt = "stored_at"

	// msSuffix names the column holding the milliseconds of a timestamp,
	// since 18.16's DateTime stops at seconds.
	msSuffix = "_ms"
)

// Partition granularities of TableOptions.
const (
	PartitionMonth = "month"
	PartitionDay   = "day"
)

// TableOptions choose the layout of the tables Sluice creates.
type TableOptions struct {
	// Partition is the time partition of the tables, by stored_at:
	// PartitionMonth (the default when empty) or PartitionDay. A partition
	// is the unit of retention and the unit Progress reads at most.
	Partition string
	// TTL drops rows stored longer ago than this, a whole part or partition
	// at a time; 0 keeps them for ever. It counts in whole days, rounded up.
	// A modern server does it by the table's TTL; on older servers Sluice
	// does it (Sink.DropExpired).
	TTL time.Duration
}

// Validate checks the options.
func (o TableOptions) Validate() error {
	switch o.Partition {
	case "", PartitionMonth, PartitionDay:
	default:
		return fmt.Errorf("clickhouse: partition %q: want %s or %s", o.Partition, PartitionMonth, PartitionDay)
	}
	if o.TTL < 0 {
		return fmt.Errorf("clickhouse: ttl %v: must not be negative", o.TTL)
	}
	return nil
}

// ParseTTL reads a retention as a flag gives it: "90d", or a Go duration
// such as "2160h"; "0" or "" means none.
func ParseTTL(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("clickhouse: ttl %q: want a number of days such as 90d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("clickhouse: ttl %q: want days (90d) or a duration (2160h)", s)
	}
	return d, nil
}

// ttlDays is the TTL in whole days, rounded up: what the DDL states and
// what DropExpired keeps.
func (o TableOptions) ttlDays() int {
	const day = 24 * time.Hour
	return int((o.TTL + day - 1) / day)
}

// partitionKey is the PARTITION BY expression, as system.tables shows it.
func (o TableOptions) partitionKey() string {
	if o.Partition == PartitionDay {
		return "toYYYYMMDD(" + ColStoredAt + ")"
	}
	return "toYYYYMM(" + ColStoredAt + ")"
}

// flavor is the family of column types of a table.
type flavor int

const (
	// legacyTypes are 18.16's: DateTime plus a _ms column, Nested arrays,
	// String, UInt8 for booleans, no codecs.
	legacyTypes flavor = iota
	// modernTypes are those of 22.8 and later: DateTime64(3), Map,
	// LowCardinality, Bool, codecs.
	modernTypes
)

func flavorOf(v Version) flavor {
	if v.Modern() {
		return modernTypes
	}
	return legacyTypes
}

// DDL returns the statements that create st's table in database db for a
// server of version v: CREATE TABLE IF NOT EXISTS statements. o should pass
// Validate; a Partition other than "day" means month.
//
// The table is partitioned by stored_at, the time Sluice stored the rows,
// which is one value per INSERT: so each INSERT lands in one partition,
// as one part, all or nothing (see Sink.Write), and whole partitions can be
// dropped when they age. It is ordered by the stream's order_by.
//
// A built-in stream also gets its rollup table (rollup.go), partitioned
// the same way and kept twice as long as the table: the second statement.
func DDL(db string, st *schemas.Stream, v Version, o TableOptions) []string {
	out := []string{createTable(TableName(db, st.Table), st, flavorOf(v), o)}
	if r := rollupOf(st); r != nil {
		out = append(out, createRollup(TableName(db, r.table), r, flavorOf(v), o))
	}
	return out
}

// createTable returns the CREATE TABLE statement of st's table under the
// (quoted, qualified) name, with types of flavor fl.
func createTable(name string, st *schemas.Stream, fl flavor, o TableOptions) string {
	var defs []string
	for _, sl := range wantSlots(st, fl) {
		defs = append(defs, sl.ddl()...)
	}
	if fl == modernTypes {
		defs = append(defs, skipIndexes(st)...)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (\n    %s\n)\n", name, strings.Join(defs, ",\n    "))
	b.WriteString("ENGINE = MergeTree()\n")
	fmt.Fprintf(&b, "PARTITION BY %s\n", strings.Replace(o.partitionKey(), ColStoredAt, Quote(ColStoredAt), 1))
	b.WriteString("ORDER BY " + orderBy(st))
	if fl == modernTypes && o.TTL > 0 {
		// ttl_only_drop_parts: a part goes when all its rows have expired,
		// never by a merge rewriting it without some of its rows.
		fmt.Fprintf(&b, "\nTTL %s\nSETTINGS ttl_only_drop_parts = 1", ttlExpr(o))
	}
	return b.String()
}

func ttlExpr(o TableOptions) string {
	return fmt.Sprintf("%s + INTERVAL %d DAY", Quote(ColStoredAt), o.ttlDays())
}

func orderBy(st *schemas.Stream) string {
	if len(st.OrderBy) == 0 {
		return "tuple()"
	}
	keys := make([]string, len(st.OrderBy))
	for i, k := range st.OrderBy {
		keys[i] = Quote(k)
	}
	return "(" + strings.Join(keys, ", ") + ")"
}

// skipIndexes returns the data-skipping indexes of a modern table: a minmax
// of the event time, which the sort key (device first) cannot prune by, and
// a bloom filter on trace_id, which is looked up by value.
func skipIndexes(st *schemas.Stream) []string {
	var out []string
	for _, f := range st.Fields {
		switch {
		case f.Name == "ts" && f.Type == schemas.TypeTimestamp:
			out = append(out, "INDEX ts_minmax "+Quote(f.Name)+" TYPE minmax GRANULARITY 4")
		case f.Name == "trace_id" && f.Type == schemas.TypeString:
			out = append(out, "INDEX trace_id_bloom "+Quote(f.Name)+" TYPE bloom_filter GRANULARITY 4")
		}
	}
	return out
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

// CreateTableSQL returns the CREATE TABLE statement of st's table on the
// Sink's server, with the Sink's TableOptions: DDL's first statement.
func (s *Sink) CreateTableSQL(st *schemas.Stream) string {
	return DDL(s.db, st, s.ver, s.opts)[0]
}
