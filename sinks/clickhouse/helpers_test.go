package clickhouse

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/schemas"
)

// orderStream is a user-defined stream with a field of every type, number,
// boolean and enum among them.
func orderStream() *schemas.Stream {
	return &schemas.Stream{
		Name: "orders", Table: "orders", PartitionKey: "shop", OrderBy: []string{"shop", "ts"},
		Fields: []schemas.Field{
			{Name: "ts", Type: schemas.TypeTimestamp, Required: true},
			{Name: "shop", Type: schemas.TypeString, Required: true},
			{Name: "status", Type: schemas.TypeEnum, Values: []string{"new", "paid", "shipped"}, Required: true},
			{Name: "amount", Type: schemas.TypeNumber},
			{Name: "paid", Type: schemas.TypeBoolean},
			{Name: "note", Type: schemas.TypeString},
			{Name: "delivered_at", Type: schemas.TypeTimestamp},
			{Name: "prices", Type: schemas.TypeNumberMap},
		},
	}
}

// oldLayoutDDL is the CREATE TABLE of the previous layout: 18.16's types,
// no stored_at, PARTITION BY kafka_partition.
func oldLayoutDDL(s *Sink, st *schemas.Stream) string {
	ddl := createTable(s.table(st), st, legacyTypes, TableOptions{})
	ddl = strings.Replace(ddl, ",\n    `stored_at` DateTime DEFAULT now()", "", 1)
	return strings.Replace(ddl, "PARTITION BY toYYYYMM(`stored_at`)", "PARTITION BY `kafka_partition`", 1)
}

// createLayout creates st's table in one of layouts: the previous one, as
// an older Sluice left it, or partitioned by month or day of stored_at,
// as EnsureTables creates it (the Sink's TableOptions are set to match).
func createLayout(t testing.TB, s *Sink, st *schemas.Stream, layout string) {
	t.Helper()
	ctx := context.Background()
	if layout == "kafka_partition" {
		if err := s.conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+Quote(s.db)); err != nil {
			t.Fatal(err)
		}
		if err := s.conn.Exec(ctx, oldLayoutDDL(s, st)); err != nil {
			t.Fatal(err)
		}
	} else {
		s.opts.Partition = layout
	}
	ensure(t, s, st)
}

// reopen opens another Sink on s's database: another worker, which knows
// nothing of the partitions yet.
func reopen(t testing.TB, s *Sink) *Sink {
	t.Helper()
	o, err := Open(context.Background(), Options{Addr: testAddr(), Database: s.db, Logger: slog.New(slog.DiscardHandler), Tables: s.opts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

// stopMerges keeps every part of the table as its INSERT made it, so that
// tests can count them.
func stopMerges(t testing.TB, s *Sink, st *schemas.Stream) {
	t.Helper()
	if err := s.conn.Exec(context.Background(), "SYSTEM STOP MERGES "+s.table(st)); err != nil {
		t.Fatal(err)
	}
}

// partsPerPartition counts the table's active parts by partition id.
func partsPerPartition(t testing.TB, s *Sink, st *schemas.Stream) map[string]uint64 {
	t.Helper()
	rows, err := s.conn.Query(context.Background(), "SELECT partition_id, count() FROM system.parts WHERE database = ? AND table = ? AND active GROUP BY partition_id", s.db, st.Table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]uint64{}
	for rows.Next() {
		var p string
		var n uint64
		if err := rows.Scan(&p, &n); err != nil {
			t.Fatal(err)
		}
		got[p] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}
