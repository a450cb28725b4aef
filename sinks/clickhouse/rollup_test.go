package clickhouse

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	chcol "github.com/ClickHouse/clickhouse-go/v2/lib/column"

	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks"
)

// telemetryRows are n readings of three devices from offset first, ts a
// few seconds apart from at (so they span minutes), with two metrics each
// but every fifth reading with none; empty, no reading has any metric.
func telemetryRows(first int64, n int, at time.Time, empty bool) []sinks.Row {
	rows := make([]sinks.Row, n)
	for i := range rows {
		off := first + int64(i)
		ts := at.Add(time.Duration(off*7) * time.Second).Add(time.Duration(off%1000) * time.Millisecond)
		m := map[string]float64{"temp": float64(off)*0.25 - 40, "hum": float64(off%17) / 3}
		if empty || off%5 == 0 {
			m = map[string]float64{}
		}
		dev := fmt.Sprintf("dev-%d", off%3)
		rows[i] = sinks.Row{Offset: off, Event: schemas.Event{ID: fmt.Sprintf("t-%d", off), Key: dev, ReceivedAt: at,
			Fields: map[string]any{"device_id": dev, "ts": ts, "metrics": m}}}
	}
	return rows
}

// logRows are n log lines of two services at three levels from offset
// first, ts a few seconds apart from at.
func logRows(first int64, n int, at time.Time) []sinks.Row {
	rows := make([]sinks.Row, n)
	levels := []string{"info", "warn", "error"}
	for i := range rows {
		off := first + int64(i)
		svc := fmt.Sprintf("svc-%d", off%2)
		rows[i] = sinks.Row{Offset: off, Event: schemas.Event{ID: fmt.Sprintf("l-%d", off), Key: svc, ReceivedAt: at,
			Fields: map[string]any{"service": svc, "ts": at.Add(time.Duration(off*5) * time.Second), "level": levels[off%3], "message": "m"}}}
	}
	return rows
}

// aggregates reads groups -> "count min max" (and the sum apart) from q.
func aggregates(t *testing.T, s *Sink, q string, values bool) (map[string]string, map[string]float64) {
	t.Helper()
	rows, err := s.conn.Query(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	out, sums := map[string]string{}, map[string]float64{}
	for rows.Next() {
		var (
			key           string
			count         uint64
			mn, mx, total float64
		)
		dest := []any{&key, &count}
		if values {
			dest = append(dest, &mn, &mx, &total)
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		out[key] = fmt.Sprintf("%d %v %v", count, mn, mx)
		sums[key] = total
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out, sums
}

// checkRollup compares the rollup of st, grouped, with the same grouping
// of the base table (18.16's layout): counts, min and max exactly, sums
// to 1e-9 of their size. The rollup's groups with a count of 0 are the
// markers of ranges with nothing to sum up.
func checkRollup(t *testing.T, s *Sink, st *schemas.Stream) {
	t.Helper()
	r := rollupOf(st)
	dims := make([]string, len(r.dims))
	for i, d := range r.dims {
		dims[i] = "toString(" + Quote(d) + ")"
	}
	key := "concat(" + strings.Join(dims, ", '|', ")
	minute := "toDateTime(intDiv(toUInt32(ts), 60) * 60)"
	var base, roll string
	values := r.values != ""
	if values {
		key += ", '|', metric"
		base = fmt.Sprintf("SELECT %s, '|', toString(%s)) AS k, count(), min(value), max(value), sum(value) FROM %s ARRAY JOIN `metrics.name` AS metric, `metrics.value` AS value GROUP BY k",
			key, minute, s.table(st))
		roll = fmt.Sprintf("SELECT %s, '|', toString(minute)) AS k, sum(count), min(min), max(max), sum(sum) FROM %s GROUP BY k HAVING sum(count) > 0",
			key, TableName(s.db, r.table))
	} else {
		base = fmt.Sprintf("SELECT %s, '|', toString(%s)) AS k, count() FROM %s GROUP BY k", key, minute, s.table(st))
		roll = fmt.Sprintf("SELECT %s, '|', toString(minute)) AS k, sum(count) FROM %s GROUP BY k HAVING sum(count) > 0", key, TableName(s.db, r.table))
	}
	want, wantSums := aggregates(t, s, base, values)
	got, gotSums := aggregates(t, s, roll, values)
	if len(want) == 0 {
		t.Fatalf("%s: the base table has nothing to sum up", st.Name)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: rollup (%d groups) differs from the base table (%d groups):\n%s", st.Name, len(got), len(want), diffMaps(got, want))
	}
	for k, w := range wantSums {
		if g := gotSums[k]; math.Abs(g-w) > 1e-9*math.Max(1, math.Abs(w)) {
			t.Errorf("%s: group %s: rollup sum %v, base sum %v", st.Name, k, g, w)
		}
	}
}

func diffMaps(got, want map[string]string) string {
	var lines []string
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			lines = append(lines, fmt.Sprintf("  %s: rollup %q, base %q", k, got[k], w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			lines = append(lines, fmt.Sprintf("  %s: rollup %q, not in the base", k, g))
		}
	}
	sort.Strings(lines)
	if len(lines) > 20 {
		lines = append(lines[:20], fmt.Sprintf("  ... and %d more", len(lines)-20))
	}
	return strings.Join(lines, "\n")
}

// maxOffsets returns max(kafka_offset) by kafka_partition of a table.
func maxOffsets(t *testing.T, s *Sink, table string) map[int32]int64 {
	t.Helper()
	rows, err := s.conn.Query(context.Background(), fmt.Sprintf("SELECT kafka_partition, max(kafka_offset) FROM %s GROUP BY kafka_partition", TableName(s.db, table)))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int32]int64{}
	for rows.Next() {
		var p int32
		var off int64
		if err := rows.Scan(&p, &off); err != nil {
			t.Fatal(err)
		}
		out[p] = off
	}
	return out
}

// checkLevel checks that the rollup's progress is the base's in every
// Kafka partition, and the sums equal.
func checkLevel(t *testing.T, s *Sink, st *schemas.Stream) {
	t.Helper()
	r := rollupOf(st)
	if got, want := maxOffsets(t, s, r.table), maxOffsets(t, s, st.Table); !reflect.DeepEqual(got, want) {
		t.Errorf("%s: rollup progress %v, base progress %v", st.Name, got, want)
	}
	checkRollup(t, s, st)
}

// rollupParts counts the rollup's active parts.
func rollupParts(t *testing.T, s *Sink, st *schemas.Stream) uint64 {
	t.Helper()
	var n uint64
	if err := s.conn.QueryRow(context.Background(), "SELECT count() FROM system.parts WHERE database = ? AND table = ? AND active", s.db, rollupOf(st).table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func stopRollupMerges(t *testing.T, s *Sink, st *schemas.Stream) {
	t.Helper()
	if err := s.conn.Exec(context.Background(), "SYSTEM STOP MERGES "+TableName(s.db, rollupOf(st).table)); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, s *Sink, st *schemas.Stream, partition int32, rows []sinks.Row) {
	t.Helper()
	if err := s.Write(context.Background(), st, partition, rows); err != nil {
		t.Fatal(err)
	}
}

// TestRollupEqualsBase writes both built-in streams in batches over
// Kafka partitions and time partitions, a batch without any metric among
// them: each rollup equals its base table, each rollup INSERT is one part.
func TestRollupEqualsBase(t *testing.T) {
	s := openTest(t)
	iot, logs := builtin(t, "iot_telemetry"), builtin(t, "app_logs")
	ensure(t, s, iot, logs)
	stopRollupMerges(t, s, iot)
	stopRollupMerges(t, s, logs)
	at := time.Date(2026, 1, 31, 23, 50, 0, 0, time.UTC)
	writes := 0
	for b := range 6 {
		s.now = func() time.Time { return at.Add(time.Duration(b) * 5 * time.Minute) } // crosses into February
		p := int32(b % 2)
		write(t, s, iot, p, telemetryRows(int64(b*100), 100, at, b == 3))
		write(t, s, logs, p, logRows(int64(b*100), 100, at))
		writes++
	}
	checkLevel(t, s, iot)
	checkLevel(t, s, logs)
	for _, st := range []*schemas.Stream{iot, logs} {
		if n := rollupParts(t, s, st); n != uint64(writes) {
			t.Errorf("%s: %d rollup parts after %d writes, want one each", st.Name, n, writes)
		}
	}
	// A user-defined stream has no rollup.
	if _, ok := RollupTable(orderStream()); ok || len(DDL("db", orderStream(), v1816, TableOptions{})) != 1 {
		t.Error("a user-defined stream has a rollup")
	}
}

// refuseRollup makes the rollup table refuse every INSERT, as a rollup
// whose disk is full or whose server fails mid-way would; allowRollup
// undoes it.
func refuseRollup(t *testing.T, s *Sink, st *schemas.Stream) {
	t.Helper()
	q := "ALTER TABLE " + TableName(s.db, rollupOf(st).table) + " ADD COLUMN refuse UInt8 MATERIALIZED throwIf(count >= 0)"
	if err := s.conn.Exec(context.Background(), q); err != nil {
		t.Fatal(err)
	}
}

func allowRollup(t *testing.T, s *Sink, st *schemas.Stream) {
	t.Helper()
	if err := s.conn.Exec(context.Background(), "ALTER TABLE "+TableName(s.db, rollupOf(st).table)+" DROP COLUMN refuse"); err != nil {
		t.Fatal(err)
	}
}

// baseOnly stores rows in st's table alone, as a Write whose process died
// between its two INSERTs would have.
func baseOnly(t *testing.T, s *Sink, st *schemas.Stream, partition int32, rows []sinks.Row) {
	t.Helper()
	ctx := context.Background()
	p, err := s.prepare(ctx, st, partition, rows)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.send(ctx, s.table(st), p.names, p.data); err != nil {
		t.Fatal(err)
	}
	s.stored(st, partition, p.lay)
}

// TestRollupRepair leaves the rollup behind its base table in the ways it
// can be: its INSERT fails after the base's, or the process dies between
// the two. Progress then repairs it exactly, once; a Write that knows it
// is behind repairs it before writing.
func TestRollupRepair(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	st := builtin(t, "iot_telemetry")
	ensure(t, s, st)
	stopRollupMerges(t, s, st)
	at := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return at }
	write(t, s, st, 0, telemetryRows(0, 50, at, false))

	refuseRollup(t, s, st)
	err := s.Write(ctx, st, 0, telemetryRows(50, 50, at, false))
	if err == nil || sinks.IsPermanent(err) || !strings.Contains(err.Error(), "are stored in") {
		t.Fatalf("Write with the rollup refusing = %v; want a transient error saying the rows are stored", err)
	}
	if got := maxOffsets(t, s, rollupOf(st).table)[0]; got != 49 {
		t.Fatalf("rollup progress %d after its INSERT failed, want 49", got)
	}
	if _, _, err := s.Progress(ctx, st, 0); err == nil {
		t.Fatal("Progress answered while the rollup could not be repaired")
	}
	allowRollup(t, s, st)
	parts := rollupParts(t, s, st)
	if off, ok, err := s.Progress(ctx, st, 0); err != nil || !ok || off != 99 {
		t.Fatalf("Progress = %d, %v, %v; want 99", off, ok, err)
	}
	checkLevel(t, s, st)
	if n := rollupParts(t, s, st); n != parts+1 {
		t.Errorf("the repair made %d parts, want one", n-parts)
	}

	t.Run("not twice", func(t *testing.T) {
		parts := rollupParts(t, s, st)
		for _, sink := range []*Sink{s, reopen(t, s), s} {
			if off, _, err := sink.Progress(ctx, st, 0); err != nil || off != 99 {
				t.Fatalf("Progress = %d, %v; want 99", off, err)
			}
		}
		if n := rollupParts(t, s, st); n != parts {
			t.Errorf("Progress of a level rollup wrote %d parts", n-parts)
		}
		checkLevel(t, s, st)
	})

	t.Run("died between the INSERTs", func(t *testing.T) {
		baseOnly(t, s, st, 0, telemetryRows(100, 50, at, false))
		// The next owner knows nothing of the partition: its first Write
		// checks, repairs, then writes.
		next := reopen(t, s)
		next.now = s.now
		write(t, next, st, 0, telemetryRows(150, 50, at, false))
		checkLevel(t, s, st)
		baseOnly(t, next, st, 0, telemetryRows(200, 50, at, true)) // nothing to sum up
		if off, _, err := reopen(t, s).Progress(ctx, st, 0); err != nil || off != 249 {
			t.Fatalf("Progress = %d, %v; want 249", off, err)
		}
		checkLevel(t, s, st)
	})

	t.Run("Write repairs first", func(t *testing.T) {
		refuseRollup(t, s, st)
		if err := s.Write(ctx, st, 0, telemetryRows(250, 50, at, false)); err == nil {
			t.Fatal("Write succeeded with the rollup refusing")
		}
		allowRollup(t, s, st)
		write(t, s, st, 0, telemetryRows(300, 50, at, false)) // no Progress between
		checkLevel(t, s, st)
	})
}

// TestRollupFillsAPartitionItNeverHad: a Kafka partition whose rows are in
// the base table but not in the rollup at all (a rollup added to a table
// with rows, or every rollup INSERT of the partition failed) is filled
// from the base by its first Progress, from every time partition; one with
// rows but no metric gets a marker row.
func TestRollupFillsAPartitionItNeverHad(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	iot, logs := builtin(t, "iot_telemetry"), builtin(t, "app_logs")
	ensure(t, s, iot, logs)
	for m, month := range []time.Month{4, 5, 6} {
		at := time.Date(2026, month, 3, 8, 0, 0, 0, time.UTC)
		s.now = func() time.Time { return at }
		baseOnly(t, s, iot, 2, telemetryRows(int64(m*40), 40, at, false))
		baseOnly(t, s, iot, 3, telemetryRows(int64(m*40), 40, at, true))
		baseOnly(t, s, logs, 2, logRows(int64(m*40), 40, at))
	}
	fresh := reopen(t, s)
	for _, c := range []struct {
		st        *schemas.Stream
		partition int32
	}{{iot, 2}, {iot, 3}, {logs, 2}} {
		if off, ok, err := fresh.Progress(ctx, c.st, c.partition); err != nil || !ok || off != 119 {
			t.Fatalf("%s/%d: Progress = %d, %v, %v; want 119", c.st.Name, c.partition, off, ok, err)
		}
	}
	checkLevel(t, s, iot)
	checkLevel(t, s, logs)
	var markers uint64
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM "+TableName(s.db, "iot_telemetry_1m")+" WHERE kafka_partition = 3 AND count = 0 AND minute = toDateTime(0) AND isInfinite(min)").Scan(&markers); err != nil {
		t.Fatal(err)
	}
	if markers != 1 {
		t.Errorf("partition 3, without any metric: %d marker rows, want 1", markers)
	}
}

// TestRollupDropExpired: on 18.16 the rollup keeps twice the base table's
// TTL, dropping whole time partitions as the base does.
func TestRollupDropExpired(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	st := builtin(t, "iot_telemetry")
	s.opts = TableOptions{TTL: 30 * 24 * time.Hour}
	ensure(t, s, st)
	for _, at := range []time.Time{
		time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 25, 0, 0, 0, 0, time.UTC), time.Date(2026, 6, 10, 0, 0, 0, 0, time.UTC),
	} {
		s.now = func() time.Time { return at }
		write(t, s, st, 0, telemetryRows(int64(at.Month())*100, 10, at, false))
	}
	s.now = func() time.Time { return time.Date(2026, 6, 20, 0, 0, 0, 0, time.UTC) } // base keeps May 21 on, rollup April 21 on
	if err := s.DropExpired(ctx, []*schemas.Stream{st}); err != nil {
		t.Fatal(err)
	}
	if got := partsPerPartition(t, s, st); !reflect.DeepEqual(got, map[string]uint64{"202606": 1}) {
		t.Errorf("base partitions left: %v", got)
	}
	rollupTable := &schemas.Stream{Table: rollupOf(st).table}
	if got := partsPerPartition(t, s, rollupTable); !reflect.DeepEqual(got, map[string]uint64{"202604": 1, "202606": 1}) {
		t.Errorf("rollup partitions left: %v, want April and June", got)
	}
	if off, _, err := reopen(t, s).Progress(ctx, st, 0); err != nil || off != 609 {
		t.Errorf("Progress after the drops = %d, %v; want 609", off, err)
	}
}

// TestRollupMigrationsGolden pins what EnsureTables reports for rollup
// tables that differ from what Sluice would create.
func TestRollupMigrationsGolden(t *testing.T) {
	iot := builtin(t, "iot_telemetry")
	r := rollupOf(iot)
	table := func(fl flavor, tail string) *tableInfo {
		ti := &tableInfo{engine: map[flavor]string{legacyTypes: "MergeTree", modernTypes: "AggregatingMergeTree"}[fl],
			partitionKey: "toYYYYMM(stored_at)", sortingKey: strings.Join(r.sortKey(fl), ", "), cols: map[string]string{}}
		for _, c := range r.columns() {
			ti.cols[c.name] = c.typ(fl)
			ti.names = append(ti.names, c.name)
		}
		ti.engineFull = ti.engine + " PARTITION BY toYYYYMM(stored_at) ORDER BY (" + ti.sortingKey + ") " + tail
		return ti
	}
	ttl90 := TableOptions{TTL: 90 * 24 * time.Hour}
	cases := []struct {
		name string
		v    Version
		o    TableOptions
		ti   *tableInfo
	}{
		{"18.16, as Sluice creates it", v1816, ttl90, table(legacyTypes, "")},
		{"25.3, created on 18.16 before an upgrade", v253, ttl90, table(legacyTypes, "")},
		{"25.3, TTL of the base table's 90 days, 180 wanted", v253, ttl90, table(modernTypes, "TTL stored_at + toIntervalDay(90) SETTINGS ttl_only_drop_parts = 1")},
		{"25.3, as Sluice creates it", v253, ttl90, table(modernTypes, "TTL stored_at + toIntervalDay(180) SETTINGS ttl_only_drop_parts = 1")},
	}
	var b strings.Builder
	for _, c := range cases {
		fmt.Fprintf(&b, "== %s\n", c.name)
		if p := rollupProblems(r, c.ti); len(p) > 0 {
			t.Errorf("%s: problems %v", c.name, p)
		}
		migs := rollupMigrations("sluice", iot, r, c.v, c.o, c.ti)
		if len(migs) == 0 {
			b.WriteString("(none)\n")
		}
		for _, m := range migs {
			fmt.Fprintf(&b, "-- %s: %s\n", m.Table, m.Problem)
			for _, q := range m.Statements {
				b.WriteString(q + ";\n")
			}
		}
		b.WriteString("\n")
	}
	golden(t, "rollup_migrations.golden", b.String())

	bad := table(legacyTypes, "")
	bad.engine, bad.cols["min"] = "SummingMergeTree", "SimpleAggregateFunction(sum, Float64)"
	delete(bad.cols, "sum")
	if got := rollupProblems(r, bad); len(got) != 3 {
		t.Errorf("problems of a rollup Sluice cannot write: %v; want the engine, min and sum", got)
	}
}

// TestEncodeModernRollup checks, without a server, that what Write sends
// to a rollup of the current LTS's types (LowCardinality, and the
// SimpleAggregateFunction columns of its AggregatingMergeTree) is what the
// driver accepts for those columns, markers included.
func TestEncodeModernRollup(t *testing.T) {
	sc := &chcol.ServerContext{VersionMajor: 25, VersionMinor: 3, Timezone: time.UTC}
	at := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		st   *schemas.Stream
		rows []sinks.Row
	}{{builtin(t, "iot_telemetry"), telemetryRows(0, 30, at, false)}, {builtin(t, "app_logs"), logRows(0, 30, at)}} {
		r := rollupOf(c.st)
		types := map[string]string{}
		for _, col := range r.columns() {
			types[col.name] = col.modern
		}
		rows, err := withRecords(c.st, c.rows)
		if err != nil {
			t.Fatal(err)
		}
		groups := append(r.aggregate(rows), r.marker())
		names, data := r.insertColumns(groups, 3, 29, at)
		if len(names) != len(types) {
			t.Fatalf("%s: %d columns sent, the table has %d", c.st.Name, len(names), len(types))
		}
		for i, name := range names {
			col, err := chcol.Type(types[name]).Column(name, sc)
			if err != nil {
				t.Fatalf("%s column %s %s: %v", c.st.Name, name, types[name], err)
			}
			if _, err := col.Append(data[i]); err != nil {
				t.Errorf("%s column %s %s: append %T: %v", c.st.Name, name, types[name], data[i], err)
			} else if col.Rows() != len(groups) {
				t.Errorf("%s column %s: %d rows, want %d", c.st.Name, name, col.Rows(), len(groups))
			}
		}
	}
}

// TestRollupInsertOfUnknownOutcome cancels a Write while the server is
// still busy with its rollup INSERT (the rows' INSERT is done): Write
// settles it before returning, and the next Progress finds the rollup
// level or repairs it, never counting a row twice.
func TestRollupInsertOfUnknownOutcome(t *testing.T) {
	s := openTest(t)
	st := builtin(t, "iot_telemetry")
	ensure(t, s, st)
	q := "ALTER TABLE " + TableName(s.db, rollupOf(st).table) + " ADD COLUMN slow UInt8 DEFAULT sleepEachRow(0.002)"
	if err := s.conn.Exec(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	ids := fixedQueryIDs(s)
	at := time.Now().UTC()
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	// 400 readings in 2 metrics, 7 s apart: about 600 groups, 1.2 s of
	// sleep on the server.
	err := s.Write(ctx, st, 0, telemetryRows(0, 400, at, false))
	if err == nil || sinks.IsPermanent(err) || !strings.Contains(err.Error(), ids(1)) {
		t.Fatalf("Write = %v; want a transient error naming the rollup INSERT %s", err, ids(1))
	}
	running, rerr := s.running(context.Background(), ids(1))
	if rerr != nil || running {
		t.Fatalf("the rollup INSERT still runs after Write returned (%v)", rerr)
	}
	if off, _, err := s.Progress(context.Background(), st, 0); err != nil || off != 399 {
		t.Fatalf("Progress = %d, %v; want 399", off, err)
	}
	checkLevel(t, s, st)
	t.Logf("Write: %v", err)
}

// TestRollupGroups checks, without a server, that aggregate puts rows in
// one group exactly when they share the dimensions, the metric and the
// minute, however the values' bytes run together.
func TestRollupGroups(t *testing.T) {
	st := builtin(t, "iot_telemetry")
	at := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	row := func(off int64, device string, ts time.Time, metrics map[string]float64) sinks.Row {
		return sinks.Row{Offset: off, Event: schemas.Event{ID: fmt.Sprint(off), Key: device, ReceivedAt: at,
			Fields: map[string]any{"device_id": device, "ts": ts, "metrics": metrics}}}
	}
	rows, err := withRecords(st, []sinks.Row{
		row(0, "ab", at, map[string]float64{"c": 1}),
		row(1, "a", at, map[string]float64{"bc": 2}),
		row(2, "ab", at.Add(30*time.Second), map[string]float64{"c": 3, "d": 4}),
		row(3, "ab", at.Add(time.Minute), map[string]float64{"c": 5}),
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range rollupOf(st).aggregate(rows) {
		got = append(got, fmt.Sprintf("%v/%s/%d: %d %g..%g sum %g", g.dims, g.metric, g.minute-at.Unix(), g.count, g.min, g.max, g.sum))
	}
	want := []string{
		"[ab]/c/0: 2 1..3 sum 4",
		"[a]/bc/0: 1 2..2 sum 2",
		"[ab]/d/0: 1 4..4 sum 4",
		"[ab]/c/60: 1 5..5 sum 5",
	}
	if !slices.Equal(got, want) {
		t.Errorf("groups:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestRollupGroupsManyMetrics checks aggregate's groups when a device
// reports more metrics than it compares one by one: each metric is one
// group, whichever way aggregate found it.
func TestRollupGroupsManyMetrics(t *testing.T) {
	st := builtin(t, "iot_telemetry")
	at := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	metrics := map[string]float64{}
	for i := range 3 * maxLinearMetrics {
		metrics[fmt.Sprintf("m%03d", i)] = float64(i)
	}
	var in []sinks.Row
	for off := range int64(3) {
		in = append(in, sinks.Row{Offset: off, Event: schemas.Event{ID: fmt.Sprint(off), Key: "d", ReceivedAt: at,
			Fields: map[string]any{"device_id": "d", "ts": at, "metrics": metrics}}})
	}
	rows, err := withRecords(st, in)
	if err != nil {
		t.Fatal(err)
	}
	groups := rollupOf(st).aggregate(rows)
	if len(groups) != len(metrics) {
		t.Fatalf("%d groups, want one per metric (%d)", len(groups), len(metrics))
	}
	for _, g := range groups {
		if want := metrics[g.metric]; g.count != 3 || g.sum != 3*want || g.dims[0] != "d" {
			t.Errorf("group %v/%s: count %d, sum %g; want 3, %g", g.dims, g.metric, g.count, g.sum, 3*want)
		}
	}
}
