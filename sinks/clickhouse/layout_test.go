package clickhouse

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks"
)

// storedAts returns the distinct stored_at of the partition's rows, in
// offset order.
func storedAts(t *testing.T, s *Sink, st *schemas.Stream, partition int32) []time.Time {
	t.Helper()
	rows, err := s.conn.Query(context.Background(), "SELECT stored_at FROM "+s.table(st)+" WHERE kafka_partition = ? ORDER BY kafka_offset", partition)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []time.Time
	for rows.Next() {
		var at time.Time
		if err := rows.Scan(&at); err != nil {
			t.Fatal(err)
		}
		if len(out) == 0 || !out[len(out)-1].Equal(at) {
			out = append(out, at.UTC())
		}
	}
	return out
}

// TestStoredAtNeverGoesBack: each INSERT gets one stored_at, the Sink's
// clock, but never earlier than the partition's last one, whether this Sink
// gave it or another did (a worker whose clock is behind takes over).
func TestStoredAtNeverGoesBack(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	st := builtin(t, "iot_telemetry")
	ensure(t, s, st)
	stopMerges(t, s, st)
	march := time.Date(2026, 3, 31, 23, 59, 59, 900e6, time.UTC)
	april := time.Date(2026, 4, 1, 0, 0, 5, 0, time.UTC)
	recv := time.Date(2026, 3, 31, 23, 0, 0, 0, time.UTC)

	s.now = func() time.Time { return april }
	if err := s.Write(ctx, st, 0, iotRows(0, 3, recv)); err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return march } // the clock was set back
	if err := s.Write(ctx, st, 0, iotRows(3, 3, recv)); err != nil {
		t.Fatal(err)
	}
	// Another worker, whose clock is behind, takes the partition over.
	other := reopen(t, s)
	other.now = func() time.Time { return march }
	if off, ok, err := other.Progress(ctx, st, 0); err != nil || !ok || off != 5 {
		t.Fatalf("Progress = %d, %v, %v; want 5", off, ok, err)
	}
	if err := other.Write(ctx, st, 0, iotRows(6, 3, recv)); err != nil {
		t.Fatal(err)
	}
	// A third writes without asking Progress first.
	third := reopen(t, s)
	third.now = func() time.Time { return march }
	if err := third.Write(ctx, st, 0, iotRows(9, 3, recv)); err != nil {
		t.Fatal(err)
	}
	// Partition 1 is another matter: its clock is its own.
	if err := third.Write(ctx, st, 1, iotRows(0, 1, recv)); err != nil {
		t.Fatal(err)
	}
	if got := storedAts(t, s, st, 0); len(got) != 1 || !got[0].Equal(april) {
		t.Errorf("stored_at of partition 0: %v; want %v throughout", got, april)
	}
	if got := storedAts(t, s, st, 1); len(got) != 1 || !got[0].Equal(march.Truncate(time.Second)) {
		t.Errorf("stored_at of partition 1: %v; want %v", got, march.Truncate(time.Second))
	}
	// Four INSERTs of partition 0, one of partition 1: a part each.
	if got := partsPerPartition(t, s, st); got["202604"] != 4 || got["202603"] != 1 || len(got) != 2 {
		t.Errorf("parts per partition: %v; want 202604: 4, 202603: 1", got)
	}
}

// TestOrderStreamDay writes a stream with number, boolean and enum fields
// into a table partitioned by day, and queries it.
func TestOrderStreamDay(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	st := orderStream()
	s.opts.Partition = PartitionDay
	ensure(t, s, st)
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	for i, day := range []int{0, 1, 1, 3} {
		s.now = func() time.Time { return t0.AddDate(0, 0, day) }
		rows := make([]sinks.Row, 10)
		for j := range rows {
			rows[j] = sinks.Row{Offset: int64(i*10 + j), Event: schemas.Event{ID: "o" + string(rune('a'+i)) + string(rune('a'+j)), Key: "shop-1", ReceivedAt: t0,
				Fields: map[string]any{"ts": t0, "shop": "shop-1", "status": []string{"new", "paid"}[j%2], "amount": float64(j), "paid": j%2 == 1}}}
		}
		if err := s.Write(ctx, st, 0, rows); err != nil {
			t.Fatal(err)
		}
	}
	var paid, count uint64
	var amount float64
	q := "SELECT countIf(paid = 1), count(), sum(amount) FROM " + s.table(st) + " WHERE status = 'paid'"
	if err := s.conn.QueryRow(ctx, q).Scan(&paid, &count, &amount); err != nil {
		t.Fatal(err)
	}
	if paid != 20 || count != 20 || amount != 100 {
		t.Errorf("paid %d of %d, amount %v; want 20 of 20, 100", paid, count, amount)
	}
	if got := partsPerPartition(t, s, st); len(got) != 3 || got["20261124"] != 1 || got["20261127"] != 1 {
		t.Errorf("parts per partition: %v; want days 24, 25 and 27", got)
	}
	if off, ok, err := reopen(t, s).Progress(ctx, st, 0); err != nil || !ok || off != 39 {
		t.Errorf("Progress = %d, %v, %v; want 39", off, ok, err)
	}
}

// TestPreviousLayout: a table an older Sluice created (PARTITION BY
// kafka_partition, no stored_at) is reported with the statements that
// migrate it, written as it is meanwhile, and, once the statements have
// run, written in the new layout with progress intact.
func TestPreviousLayout(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	st := builtin(t, "iot_telemetry")
	createLayout(t, s, st, "kafka_partition")
	recv := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	if err := s.Write(ctx, st, 0, iotRows(0, 5, recv)); err != nil {
		t.Fatal(err)
	}
	migs := s.Migrations()
	if len(migs) != 1 || !strings.Contains(migs[0].Problem, "previous layout") || len(migs[0].Statements) != 3 {
		t.Fatalf("Migrations = %+v; want one rebuild of the previous layout", migs)
	}
	if got := partsPerPartition(t, s, st); got["0"] != 1 {
		t.Errorf("parts: %v; want the write in partition 0", got)
	}

	for _, q := range migs[0].Statements {
		if err := s.conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s2 := reopen(t, s)
	s2.now = func() time.Time { return recv.Add(time.Hour) }
	ensure(t, s2, st)
	if m := s2.Migrations(); len(m) != 0 {
		t.Errorf("Migrations after migrating: %+v", m)
	}
	if off, ok, err := s2.Progress(ctx, st, 0); err != nil || !ok || off != 4 {
		t.Fatalf("Progress after migrating = %d, %v, %v; want 4", off, ok, err)
	}
	if err := s2.Write(ctx, st, 0, iotRows(5, 5, recv)); err != nil {
		t.Fatal(err)
	}
	var n, old uint64
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM "+s.table(st)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM "+TableName(s.db, st.Table+oldSuffix)).Scan(&old); err != nil {
		t.Fatal(err)
	}
	if n != 10 || old != 5 {
		t.Errorf("%d rows after migrating and writing, %d in the old table; want 10, 5", n, old)
	}
	// A Sink that had the old layout cached finds its write refused by
	// nobody: the column it does not send takes its default, now().
	if err := s.Write(ctx, st, 0, iotRows(10, 1, recv)); err != nil {
		t.Fatal(err)
	}
	if off, ok, err := reopen(t, s).Progress(ctx, st, 0); err != nil || !ok || off != 10 {
		t.Errorf("Progress = %d, %v, %v; want 10", off, ok, err)
	}
}

// TestTableDiffers: differences Sluice could write through are reported
// with their statements, and the table is written as it is.
func TestTableDiffers(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	st := builtin(t, "app_logs")
	s.opts.Partition = PartitionDay
	ensure(t, s, st)
	s.opts.Partition = PartitionMonth // the operator changed the option

	sorted := *st
	sorted.Table = "app_logs_by_ts"
	sorted.OrderBy = []string{"ts"}
	if err := s.conn.Exec(ctx, createTable(s.table(&sorted), &sorted, legacyTypes, TableOptions{})); err != nil {
		t.Fatal(err)
	}
	sorted.OrderBy = st.OrderBy
	ensure(t, s, st, &sorted)

	// The table, its rollup (partitioned like it), and the other table.
	migs := s.Migrations()
	if len(migs) != 3 {
		t.Fatalf("Migrations = %+v; want 3", migs)
	}
	for _, m := range migs[:2] {
		if !strings.Contains(m.Problem, "toYYYYMMDD(stored_at)") || !strings.Contains(m.Statements[0], "PARTITION BY toYYYYMM(`stored_at`)") {
			t.Errorf("partitioning: %+v", m)
		}
	}
	if !strings.HasSuffix(migs[1].Table, ".app_logs_1m") {
		t.Errorf("second migration of %s, want the rollup's", migs[1].Table)
	}
	if !strings.Contains(migs[2].Problem, "sorted by (ts)") || !strings.Contains(migs[2].Statements[0], "ORDER BY (`service`, `ts`)") {
		t.Errorf("sort key: %+v", migs[2])
	}
	ev := schemas.Event{ID: "l", Key: "checkout", ReceivedAt: time.Now(), Fields: map[string]any{"ts": time.Now(), "service": "checkout", "level": "info", "message": "m"}}
	for _, x := range []*schemas.Stream{st, &sorted} {
		if err := s.Write(ctx, x, 0, []sinks.Row{{Offset: 0, Event: ev}}); err != nil {
			t.Error(err)
		}
	}
	// Running the statements makes the difference go.
	for _, m := range migs {
		for _, q := range m.Statements {
			if err := s.conn.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	ensure(t, s, st, &sorted)
	if m := s.Migrations(); len(m) != 0 {
		t.Errorf("Migrations after migrating: %+v", m)
	}
}

// TestMergingEnginesRefused: engines that merge rows away would lose or
// change events after they were stored.
func TestMergingEnginesRefused(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	st := builtin(t, "iot_telemetry")
	if err := s.conn.Exec(ctx, "CREATE DATABASE "+Quote(s.db)); err != nil {
		t.Fatal(err)
	}
	engines := []string{"ReplacingMergeTree()", "SummingMergeTree()", "AggregatingMergeTree()",
		"CollapsingMergeTree(sign)", "VersionedCollapsingMergeTree(sign, kafka_offset)"}
	for i, engine := range engines {
		alt := *st
		alt.Table = "merging_" + string(rune('a'+i))
		ddl := strings.Replace(s.CreateTableSQL(&alt), "ENGINE = MergeTree()", "ENGINE = "+engine, 1)
		ddl = strings.Replace(ddl, "`event_id` String,", "`event_id` String, `sign` Int8,", 1)
		if err := s.conn.Exec(ctx, ddl); err != nil {
			t.Fatalf("%s: %v", engine, err)
		}
		err := s.EnsureTables(ctx, []*schemas.Stream{&alt})
		if err == nil || !strings.Contains(err.Error(), "merges rows with equal sort keys away") {
			t.Errorf("%s: EnsureTables = %v", engine, err)
		}
	}
}

func TestCompressionOnlyAcrossANetwork(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9000":        false,
		"localhost:9000":        false,
		"[::1]:9440":            false,
		"127.0.0.2:9000":        false,
		"clickhouse:9000":       true,
		"10.0.0.5:9000":         true,
		"ch.example.com:9440":   true,
		"not an address at all": true,
	} {
		if got := compression(addr) != nil; got != want {
			t.Errorf("compression(%q): got %v, want %v", addr, got, want)
		}
	}
}
