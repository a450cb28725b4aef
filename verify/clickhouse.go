package verify

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/sluicehq/sluice/sinks/clickhouse"
)

// chReader reads what the workers wrote. It only runs SELECTs, so verify
// may use a read-only ClickHouse user.
type chReader struct {
	conn driver.Conn
	db   string
	addr string
}

func openClickHouse(ctx context.Context, o clickhouse.Options) (*chReader, error) {
	// A partition scan sends one block per 65k rows; a slow server under
	// load must not be cut off by the driver's default.
	o.ReadTimeout = 10 * time.Minute
	conn, o, err := clickhouse.Dial(ctx, o)
	if err != nil {
		return nil, err
	}
	return &chReader{conn: conn, db: o.Database, addr: o.Addr}, nil
}

func (c *chReader) Close() error { return c.conn.Close() }

func (c *chReader) table(name string) string { return clickhouse.TableName(c.db, name) }

// Columns of Sluice's tables that verify reads, quoted for statements.
var (
	colEventID        = clickhouse.Quote(clickhouse.ColEventID)
	colKafkaPartition = clickhouse.Quote(clickhouse.ColKafkaPartition)
	colKafkaOffset    = clickhouse.Quote(clickhouse.ColKafkaOffset)
)

// tableExists reports whether the stream's table exists; a missing
// database means a missing table.
func (c *chReader) tableExists(ctx context.Context, table string) (bool, error) {
	var n uint64
	err := c.conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = ?", c.db, table).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("clickhouse: look up table %s.%s: %w", c.db, table, err)
	}
	return n > 0, nil
}

// partitions lists the Kafka partitions the table holds rows of. Tables
// are partitioned by time (or, in the previous layout, by Kafka partition),
// so this reads the kafka_partition column: small next to the scans that
// follow.
func (c *chReader) partitions(ctx context.Context, table string) ([]int32, error) {
	rows, err := c.conn.Query(ctx, fmt.Sprintf("SELECT DISTINCT %s FROM %s", colKafkaPartition, c.table(table)))
	if err != nil {
		return nil, fmt.Errorf("clickhouse: partitions of %s.%s: %w", c.db, table, err)
	}
	defer rows.Close()
	var out []int32
	for rows.Next() {
		var p int32
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("clickhouse: partitions of %s.%s: %w", c.db, table, err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: partitions of %s.%s: %w", c.db, table, err)
	}
	return out, nil
}

// countRows counts a partition's rows below offset hw and at or above it.
func (c *chReader) countRows(ctx context.Context, table string, partition int32, hw int64) (below, above uint64, err error) {
	q := fmt.Sprintf("SELECT countIf(%[1]s < ?), countIf(%[1]s >= ?) FROM %[2]s WHERE %[3]s = ?", colKafkaOffset, c.table(table), colKafkaPartition)
	if err := c.conn.QueryRow(ctx, q, hw, hw, partition).Scan(&below, &above); err != nil {
		return 0, 0, fmt.Errorf("clickhouse: count rows of %s.%s partition %d: %w", c.db, table, partition, err)
	}
	return below, above, nil
}

// noUpperBound scans a partition whole.
const noUpperBound = math.MaxInt64

// scan calls fn with the event_id and offset of every row of the partition
// with lo <= offset < hi, in no particular order.
func (c *chReader) scan(ctx context.Context, table string, partition int32, lo, hi int64, fn func(id string, off int64)) error {
	q := fmt.Sprintf("SELECT %[1]s, %[2]s FROM %[3]s WHERE %[4]s = ? AND %[2]s >= ? AND %[2]s < ?", colEventID, colKafkaOffset, c.table(table), colKafkaPartition)
	rows, err := c.conn.Query(ctx, q, partition, lo, hi)
	if err != nil {
		return fmt.Errorf("clickhouse: scan %s.%s partition %d: %w", c.db, table, partition, err)
	}
	defer rows.Close()
	var (
		id  string
		off int64
	)
	for rows.Next() {
		if err := rows.Scan(&id, &off); err != nil {
			return fmt.Errorf("clickhouse: scan %s.%s partition %d: %w", c.db, table, partition, err)
		}
		fn(id, off)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("clickhouse: scan %s.%s partition %d: %w", c.db, table, partition, err)
	}
	return nil
}

// offsetsOf returns the offsets of the rows of each of ids in the
// partition below hi, sorted, for the examples of a report.
func (c *chReader) offsetsOf(ctx context.Context, table string, partition int32, hi int64, ids []string) (map[string][]int64, error) {
	out := make(map[string][]int64, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(ids)), ", ")
	q := fmt.Sprintf("SELECT %[1]s, arraySort(groupArray(%[2]s)) FROM %[3]s WHERE %[4]s = ? AND %[2]s < ? AND %[1]s IN (%[5]s) GROUP BY %[1]s",
		colEventID, colKafkaOffset, c.table(table), colKafkaPartition, marks)
	args := []any{partition, hi}
	for _, id := range ids {
		args = append(args, id)
	}
	rows, err := c.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: offsets of example rows in %s.%s partition %d: %w", c.db, table, partition, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var offs []int64
		if err := rows.Scan(&id, &offs); err != nil {
			return nil, fmt.Errorf("clickhouse: offsets of example rows in %s.%s partition %d: %w", c.db, table, partition, err)
		}
		out[id] = offs
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: offsets of example rows in %s.%s partition %d: %w", c.db, table, partition, err)
	}
	return out, nil
}
