package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks"
)

// These tests run against a real ClickHouse, by default the one
// scripts/clickhouse.sh starts; SLUICE_CLICKHOUSE_ADDR points them elsewhere
// (the compose stack's current LTS, for instance).

func testAddr() string { return testkit.ClickHouseAddr() }

// openTest opens a Sink on a database of its own, dropped when the test ends.
func openTest(t testing.TB) *Sink {
	t.Helper()
	if os.Getenv("SLUICE_SKIP_CLICKHOUSE") == "1" {
		t.Skip("SLUICE_SKIP_CLICKHOUSE=1")
	}
	db := fmt.Sprintf("sluice_test_%016x", rand.Uint64())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Open(ctx, Options{Addr: testAddr(), Database: db, DialTimeout: 3 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("ClickHouse is not reachable at %s: %v\n"+
			"Start it with scripts/clickhouse.sh (or set SLUICE_CLICKHOUSE_ADDR, or SLUICE_SKIP_CLICKHOUSE=1 to skip these tests).", testAddr(), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.conn.Exec(ctx, "DROP DATABASE IF EXISTS "+Quote(db)); err != nil {
			t.Errorf("drop test database %s: %v", db, err)
		}
		s.Close()
	})
	return s
}

func builtin(t testing.TB, name string) *schemas.Stream {
	t.Helper()
	return testkit.Stream(t, name)
}

func ensure(t testing.TB, s *Sink, streams ...*schemas.Stream) {
	t.Helper()
	if err := s.EnsureTables(context.Background(), streams); err != nil {
		t.Fatal(err)
	}
}

// legacyColumns are the physical columns of st's table on 18.16, as
// system.columns lists them.
func legacyColumns(st *schemas.Stream) []column {
	var out []column
	for _, sl := range wantSlots(st, legacyTypes) {
		for _, c := range sl.cols {
			out = append(out, column{name: c.name, typ: c.typ})
		}
	}
	return out
}

func TestEnsureTables(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	for _, st := range []*schemas.Stream{builtin(t, "iot_telemetry"), builtin(t, "app_logs"), orderStream()} {
		t.Run(st.Name, func(t *testing.T) {
			for range 2 { // idempotent
				ensure(t, s, st)
			}
			ti, err := s.describe(ctx, st.Table)
			if err != nil {
				t.Fatal(err)
			}
			var got []column
			for _, n := range ti.names {
				got = append(got, column{name: n, typ: ti.cols[n]})
			}
			if want := legacyColumns(st); !reflect.DeepEqual(got, want) {
				t.Errorf("columns:\n%v\nwant:\n%v", got, want)
			}
			if want := strings.Join(st.OrderBy, ", "); ti.partitionKey != "toYYYYMM(stored_at)" || ti.sortingKey != want {
				t.Errorf("partition key %q, sorting key %q; want %q, %q", ti.partitionKey, ti.sortingKey, "toYYYYMM(stored_at)", want)
			}
			if m := s.Migrations(); len(m) != 0 {
				t.Errorf("Migrations of a table Sluice created: %v", m)
			}
		})
	}
}

func TestEnsureTablesEvolves(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	st := builtin(t, "app_logs")

	// An older schema without host and attrs wrote rows already.
	old := *st
	old.Fields = nil
	for _, f := range st.Fields {
		if f.Name != "host" && f.Name != "attrs" {
			old.Fields = append(old.Fields, f)
		}
	}
	ensure(t, s, &old)
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	ev := schemas.Event{ID: "old-1", Key: "checkout", ReceivedAt: t0, Fields: map[string]any{
		"ts": t0, "service": "checkout", "level": "info", "message": "m",
	}}
	if err := s.Write(ctx, &old, 0, []sinks.Row{{Offset: 1, Event: ev}}); err != nil {
		t.Fatal(err)
	}

	ensure(t, s, st)
	var host string
	var attrs []string
	if err := s.conn.QueryRow(ctx, "SELECT host, `attrs.name` FROM "+s.table(st)).Scan(&host, &attrs); err != nil {
		t.Fatal(err)
	}
	if host != "" || len(attrs) != 0 {
		t.Errorf("old row: host %q, attrs.name %q; want defaults", host, attrs)
	}
	ev.ID, ev.Fields["host"], ev.Fields["attrs"] = "new-1", "web-3", map[string]string{"k": "v"}
	if err := s.Write(ctx, st, 0, []sinks.Row{{Offset: 2, Event: ev}}); err != nil {
		t.Fatal(err)
	}
	if m := s.Migrations(); len(m) != 0 {
		t.Errorf("Migrations after adding columns: %v", m)
	}

	// A column of a type Sluice cannot write cannot be fixed by Sluice.
	mistyped := *st
	mistyped.Table = "mistyped"
	ddl := strings.Replace(s.CreateTableSQL(&mistyped), "`message` String", "`message` UInt64", 1)
	if err := s.conn.Exec(ctx, ddl); err != nil {
		t.Fatal(err)
	}
	err := s.EnsureTables(ctx, []*schemas.Stream{&mistyped})
	if err == nil || !strings.Contains(err.Error(), "column message is UInt64, the schema needs String") {
		t.Errorf("EnsureTables with a mistyped column: %v", err)
	}

	// Nor can a table partitioned by something an INSERT could span.
	other := *st
	other.Table = "logs_by_month"
	if err := s.conn.Exec(ctx, "CREATE TABLE "+s.table(&other)+" (event_id String, ts DateTime) ENGINE = MergeTree() PARTITION BY toYYYYMM(ts) ORDER BY ts"); err != nil {
		t.Fatal(err)
	}
	err = s.EnsureTables(ctx, []*schemas.Stream{&other})
	if err == nil || !strings.Contains(err.Error(), "inserts are not atomic") || !strings.Contains(err.Error(), "RENAME TABLE") {
		t.Errorf("EnsureTables with a table partitioned by event time: %v", err)
	}
}

// selectAll reads every column of the table in table order, DateTimes as
// Unix seconds, ordered by kafka_offset.
func selectAll(t *testing.T, s *Sink, st *schemas.Stream) []map[string]any {
	t.Helper()
	ti, err := s.describe(context.Background(), st.Table)
	if err != nil {
		t.Fatal(err)
	}
	exprs := make([]string, len(ti.names))
	for i, n := range ti.names {
		exprs[i] = Quote(n)
		if ti.cols[n] == "DateTime" {
			exprs[i] = "toUnixTimestamp(" + Quote(n) + ")"
		}
	}
	rows, err := s.conn.Query(context.Background(), "SELECT "+strings.Join(exprs, ", ")+" FROM "+s.table(st)+" ORDER BY kafka_offset")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []map[string]any
	for rows.Next() {
		dest := make([]any, len(ti.names))
		for i, n := range ti.names {
			dest[i] = scanDest(t, ti.cols[n])
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		row := make(map[string]any, len(dest))
		for i, n := range ti.names {
			row[n] = reflect.ValueOf(dest[i]).Elem().Interface()
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func scanDest(t *testing.T, typ string) any {
	switch typ {
	case "String":
		return new(string)
	case "DateTime":
		return new(uint32)
	case "UInt8":
		return new(uint8)
	case "UInt16":
		return new(uint16)
	case "Int32":
		return new(int32)
	case "Int64":
		return new(int64)
	case "Float64":
		return new(float64)
	case "Array(String)":
		return new([]string)
	case "Array(Float64)":
		return new([]float64)
	}
	t.Fatalf("unexpected type %s", typ)
	return nil
}

// readBackCase is an event and the columns it must be read back as.
type readBackCase struct {
	stream string
	event  schemas.Event
	want   map[string]any
}

func readBackCases() []readBackCase {
	ts := time.Date(2026, 11, 24, 10, 0, 0, 123e6, time.UTC)
	recv := time.Date(2026, 11, 24, 10, 0, 1, 7e6, time.UTC)
	kolkata := time.FixedZone("IST", 5*3600+1800)
	return []readBackCase{
		{"iot_telemetry", schemas.Event{ID: "e1", Key: "sensor-1", ReceivedAt: recv, Fields: map[string]any{
			"device_id": "sensor-1", "ts": ts,
			"metrics": map[string]float64{"temperature": 21.5, "humidity": 40.2, "co2": -1e-3},
			"tags":    map[string]string{"site": "plant-a", "floor": "2"},
		}}, map[string]any{
			"event_id": "e1", "device_id": "sensor-1", "ts": uint32(ts.Unix()), "ts_ms": uint16(123),
			"metrics.name": []string{"co2", "humidity", "temperature"}, "metrics.value": []float64{-1e-3, 40.2, 21.5},
			"tags.name": []string{"floor", "site"}, "tags.value": []string{"2", "plant-a"},
			"received_at": uint32(recv.Unix()), "received_at_ms": uint16(7),
		}},
		{"iot_telemetry", schemas.Event{ID: "e2-no-tags", Key: "sensor-2", ReceivedAt: recv, Fields: map[string]any{
			// Not UTC: the instant must survive, not the wall clock.
			"device_id": "sensor-2", "ts": ts.In(kolkata), "metrics": map[string]float64{"v": 1},
		}}, map[string]any{
			"event_id": "e2-no-tags", "device_id": "sensor-2", "ts": uint32(ts.Unix()), "ts_ms": uint16(123),
			"metrics.name": []string{"v"}, "metrics.value": []float64{1},
			"tags.name": []string{}, "tags.value": []string{},
			"received_at": uint32(recv.Unix()), "received_at_ms": uint16(7),
		}},
		{"app_logs", schemas.Event{ID: "l1", Key: "checkout", ReceivedAt: recv, Fields: map[string]any{
			"ts": ts, "service": "checkout", "level": "error", "message": "payment declined\n\"quoted\" ünïcode",
			"host": "web-3", "trace_id": "abc123", "attrs": map[string]string{"order": "A-17", "amount": ""},
		}}, map[string]any{
			"event_id": "l1", "ts": uint32(ts.Unix()), "ts_ms": uint16(123), "service": "checkout", "level": "error",
			"message": "payment declined\n\"quoted\" ünïcode", "host": "web-3", "trace_id": "abc123",
			"attrs.name": []string{"amount", "order"}, "attrs.value": []string{"", "A-17"},
			"received_at": uint32(recv.Unix()), "received_at_ms": uint16(7),
		}},
		{"app_logs", schemas.Event{ID: "l2-minimal", Key: "checkout", ReceivedAt: ts, Fields: map[string]any{
			"ts": time.UnixMilli(999), "service": "checkout", "level": "info", "message": "",
		}}, map[string]any{
			"event_id": "l2-minimal", "ts": uint32(0), "ts_ms": uint16(999), "service": "checkout", "level": "info",
			"message": "", "host": "", "trace_id": "", "attrs.name": []string{}, "attrs.value": []string{},
			"received_at": uint32(ts.Unix()), "received_at_ms": uint16(123),
		}},
		{"orders", schemas.Event{ID: "o1", Key: "shop-1", ReceivedAt: recv, Fields: map[string]any{
			"ts": ts, "shop": "shop-1", "status": "paid", "amount": 12.5, "paid": true, "note": "gift",
			"delivered_at": recv, "prices": map[string]float64{"b": 2, "a": 1.25},
		}}, map[string]any{
			"event_id": "o1", "ts": uint32(ts.Unix()), "ts_ms": uint16(123), "shop": "shop-1", "status": "paid",
			"amount": 12.5, "paid": uint8(1), "note": "gift", "delivered_at": uint32(recv.Unix()), "delivered_at_ms": uint16(7),
			"prices.name": []string{"a", "b"}, "prices.value": []float64{1.25, 2},
			"received_at": uint32(recv.Unix()), "received_at_ms": uint16(7),
		}},
		{"orders", schemas.Event{ID: "o2-minimal", Key: "shop-1", ReceivedAt: recv, Fields: map[string]any{
			"ts": ts, "shop": "shop-1", "status": "new", "paid": false,
		}}, map[string]any{
			"event_id": "o2-minimal", "ts": uint32(ts.Unix()), "ts_ms": uint16(123), "shop": "shop-1", "status": "new",
			"amount": 0.0, "paid": uint8(0), "note": "", "delivered_at": uint32(0), "delivered_at_ms": uint16(0),
			"prices.name": []string{}, "prices.value": []float64{},
			"received_at": uint32(recv.Unix()), "received_at_ms": uint16(7),
		}},
	}
}

func TestWriteReadsBack(t *testing.T) {
	tests := readBackCases()
	s := openTest(t)
	storedAt := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return storedAt.Add(300 * time.Millisecond) }
	for _, st := range []*schemas.Stream{builtin(t, "iot_telemetry"), builtin(t, "app_logs"), orderStream()} {
		t.Run(st.Name, func(t *testing.T) {
			ensure(t, s, st)
			const partition = 3
			var rows []sinks.Row
			var want []map[string]any
			for _, tt := range tests {
				if tt.stream != st.Name {
					continue
				}
				off := int64(100 + len(rows))
				rows = append(rows, sinks.Row{Offset: off, Event: tt.event})
				w := map[string]any{"kafka_partition": int32(partition), "kafka_offset": off, "stored_at": uint32(storedAt.Unix())}
				for k, v := range tt.want {
					w[k] = v
				}
				want = append(want, w)
			}
			if err := s.Write(context.Background(), st, partition, rows); err != nil {
				t.Fatal(err)
			}
			got := selectAll(t, s, st)
			if len(got) != len(want) {
				t.Fatalf("read %d rows, want %d", len(got), len(want))
			}
			for i := range want {
				for _, c := range legacyColumns(st) {
					if !reflect.DeepEqual(got[i][c.name], want[i][c.name]) {
						t.Errorf("row %d (%s) column %s = %#v, want %#v", i, want[i]["event_id"], c.name, got[i][c.name], want[i][c.name])
					}
				}
			}
		})
	}
}

// TestDateTimeNotShifted reads a DateTime back as the driver hands it out,
// besides as Unix seconds: neither way may the server's or the client's time
// zone move the instant.
func TestDateTimeNotShifted(t *testing.T) {
	s := openTest(t)
	st := builtin(t, "iot_telemetry")
	ensure(t, s, st)
	ts := time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC) // a DST change in Europe
	ev := schemas.Event{ID: "tz", Key: "d", ReceivedAt: ts, Fields: map[string]any{
		"device_id": "d", "ts": ts, "metrics": map[string]float64{"x": 1},
	}}
	if err := s.Write(context.Background(), st, 0, []sinks.Row{{Offset: 0, Event: ev}}); err != nil {
		t.Fatal(err)
	}
	var got time.Time
	var unix uint32
	var text string
	if err := s.conn.QueryRow(context.Background(), "SELECT ts, toUnixTimestamp(ts), toString(ts, 'UTC') FROM "+s.table(st)).Scan(&got, &unix, &text); err != nil {
		t.Fatal(err)
	}
	if !got.Equal(ts) || int64(unix) != ts.Unix() || text != "2026-03-29 01:30:00" {
		t.Errorf("read back %v, %d, %q; want %v, %d, %q", got, unix, text, ts, ts.Unix(), "2026-03-29 01:30:00")
	}
}

func iotRows(first int64, n int, recv time.Time) []sinks.Row {
	rows := make([]sinks.Row, n)
	for i := range rows {
		id := fmt.Sprintf("ev-%d", first+int64(i))
		rows[i] = sinks.Row{Offset: first + int64(i), Event: schemas.Event{ID: id, Key: "d", ReceivedAt: recv, Fields: map[string]any{
			"device_id": "d", "ts": recv, "metrics": map[string]float64{"x": float64(i)},
		}}}
	}
	return rows
}

// layouts are the table layouts the Sink writes and reads: the previous
// one and the two time partitionings.
var layouts = []string{"kafka_partition", PartitionMonth, PartitionDay}

func TestProgress(t *testing.T) {
	for _, layout := range layouts {
		t.Run(layout, func(t *testing.T) { testProgress(t, layout) })
	}
}

func testProgress(t *testing.T, layout string) {
	s := openTest(t)
	ctx := context.Background()
	st := builtin(t, "iot_telemetry")
	createLayout(t, s, st, layout)
	stopMerges(t, s, st)
	recv := time.Now().UTC()
	day := func(m time.Month, d int) time.Time { return time.Date(2026, m, d, 12, 0, 0, 0, time.UTC) }

	type check struct {
		partition int32
		offset    int64
		ok        bool
	}
	steps := []struct {
		name   string
		at     time.Time // the Sink's clock: which time partition the rows go to
		insert map[int32][]sinks.Row
		checks []check
	}{
		{"empty table", day(1, 1), nil, []check{{0, 0, false}, {1, 0, false}}},
		{"one partition", day(1, 10), map[int32][]sinks.Row{0: iotRows(0, 3, recv)}, []check{{0, 2, true}, {1, 0, false}}},
		{"another partition", day(2, 10), map[int32][]sinks.Row{1: iotRows(10, 2, recv)}, []check{{0, 2, true}, {1, 11, true}}},
		// 18.16's max() of no rows is 0 too: only count() tells offset 0 apart.
		{"offset zero", day(3, 10), map[int32][]sinks.Row{2: iotRows(0, 1, recv)}, []check{{2, 0, true}, {3, 0, false}, {1, 11, true}}},
		{"later batch", day(3, 11), map[int32][]sinks.Row{0: iotRows(3, 5, recv)}, []check{{0, 7, true}, {1, 11, true}}},
	}
	for _, step := range steps {
		s.now = func() time.Time { return step.at }
		for p, rows := range step.insert {
			if err := s.Write(ctx, st, p, rows); err != nil {
				t.Fatalf("%s: %v", step.name, err)
			}
		}
		// The writer knows where its partitions' rows are; a fresh Sink
		// (another worker after a rebalance) searches.
		fresh := reopen(t, s)
		for _, c := range step.checks {
			for _, sink := range []*Sink{s, fresh} {
				off, ok, err := sink.Progress(ctx, st, c.partition)
				if err != nil {
					t.Fatalf("%s: %v", step.name, err)
				}
				if off != c.offset || ok != c.ok {
					t.Errorf("%s: Progress(partition %d) = %d, %v; want %d, %v", step.name, c.partition, off, ok, c.offset, c.ok)
				}
			}
		}
	}

	// Each insert of one Kafka partition made exactly one part.
	want := map[string]map[string]uint64{
		"kafka_partition": {"0": 2, "1": 1, "2": 1},
		PartitionMonth:    {"202601": 1, "202602": 1, "202603": 2},
		PartitionDay:      {"20260110": 1, "20260210": 1, "20260310": 1, "20260311": 1},
	}[layout]
	if got := partsPerPartition(t, s, st); !reflect.DeepEqual(got, want) {
		t.Errorf("parts per partition: %v; want %v", got, want)
	}
}

// Resume finds the highest offset and the ids within the window of the
// newest receive time, to the millisecond, in every layout.
func TestResume(t *testing.T) {
	for _, layout := range layouts {
		t.Run(layout, func(t *testing.T) { testResume(t, layout) })
	}
}

func testResume(t *testing.T, layout string) {
	s := openTest(t)
	ctx := context.Background()
	st := builtin(t, "iot_telemetry")
	createLayout(t, s, st, layout)

	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return t0.Add(time.Second) }
	at := func(recv ...sinks.Received) []sinks.Row {
		rows := iotRows(0, len(recv), t0)
		for i := range rows {
			rows[i].Event.ID = recv[i].ID
			rows[i].Event.ReceivedAt = recv[i].At
		}
		return rows
	}
	var (
		old        = sinks.Received{ID: "old", Offset: 0, At: t0.Add(-20 * time.Minute)}
		edgeBefore = sinks.Received{ID: "edge-before", Offset: 1, At: t0.Add(-5*time.Minute + 199*time.Millisecond)}
		edgeAt     = sinks.Received{ID: "edge-at", Offset: 2, At: t0.Add(-5*time.Minute + 200*time.Millisecond)}
		edgeAfter  = sinks.Received{ID: "edge-after", Offset: 3, At: t0.Add(-5*time.Minute + 201*time.Millisecond)}
		newest     = sinks.Received{ID: "new", Offset: 4, At: t0.Add(7 * time.Millisecond)}
		// A retry can sit at a higher offset with an older receive time:
		// the newest received_at is not the last row's.
		late  = sinks.Received{ID: "late", Offset: 5, At: t0.Add(-time.Minute)}
		other = sinks.Received{ID: "other-partition", Offset: 0, At: t0}
	)
	if err := s.Write(ctx, st, 0, at(old, edgeBefore, edgeAt, edgeAfter, newest, late)); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, st, 1, at(other)); err != nil {
		t.Fatal(err)
	}

	window := newest.At.Sub(edgeAt.At) // edge-at is received exactly window before the newest
	all := []sinks.Received{old, edgeBefore, edgeAt, edgeAfter, newest, late}
	tests := []struct {
		name      string
		partition int32
		window    time.Duration
		limit     int
		want      sinks.Resumed
	}{
		{"window, to the millisecond", 0, window, 100, sinks.Resumed{Offset: 5, OK: true, Newest: newest.At, IDs: all[2:]}},
		{"limit keeps the highest offsets", 0, window, 2, sinks.Resumed{Offset: 5, OK: true, Newest: newest.At, IDs: all[4:]}},
		{"a wide window", 0, time.Hour, 100, sinks.Resumed{Offset: 5, OK: true, Newest: newest.At, IDs: all}},
		{"no ids asked for", 0, window, 0, sinks.Resumed{Offset: 5, OK: true, Newest: newest.At}},
		{"other partition", 1, window, 100, sinks.Resumed{Offset: 0, OK: true, Newest: other.At, IDs: []sinks.Received{other}}},
		{"empty partition", 2, window, 100, sinks.Resumed{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The writer, and a fresh Sink that has to search.
			for _, sink := range []*Sink{s, reopen(t, s)} {
				got, err := sink.Resume(ctx, st, tt.partition, tt.window, tt.limit)
				if err != nil {
					t.Fatal(err)
				}
				if len(got.IDs) == 0 {
					got.IDs = nil
				}
				if !got.Newest.Equal(tt.want.Newest) {
					t.Errorf("Resume's newest = %v, want %v", got.Newest, tt.want.Newest)
				}
				got.Newest = tt.want.Newest
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("Resume = %+v, want %+v", got, tt.want)
				}
			}
		})
	}
}

func TestWriteRejectsBadRows(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	st := builtin(t, "iot_telemetry")
	ensure(t, s, st)
	good := iotRows(0, 2, time.Now())

	tests := []struct {
		name      string
		rows      func() []sinks.Row
		permanent bool
	}{
		{"offsets out of order", func() []sinks.Row { return []sinks.Row{good[1], good[0]} }, false},
		{"no event_id", func() []sinks.Row {
			r := iotRows(0, 1, time.Now())
			r[0].Event.ID = ""
			return r
		}, true},
		{"field of the wrong type", func() []sinks.Row {
			r := iotRows(0, 1, time.Now())
			r[0].Event.Fields["ts"] = "2026-11-24T10:00:00Z"
			return r
		}, true},
		{"received_at unset", func() []sinks.Row {
			r := iotRows(0, 1, time.Now())
			r[0].Event.ReceivedAt = time.Time{}
			return r
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Write(ctx, st, 0, tt.rows())
			if err == nil {
				t.Fatal("Write succeeded")
			}
			if sinks.IsPermanent(err) != tt.permanent {
				t.Errorf("sinks.IsPermanent(%v) = %v, want %v", err, !tt.permanent, tt.permanent)
			}
		})
	}
	if err := s.Write(ctx, st, 0, nil); err != nil {
		t.Errorf("Write of no rows: %v", err)
	}
	if _, ok, _ := s.Progress(ctx, st, 0); ok {
		t.Error("a rejected insert stored rows")
	}
}

// TestIsPermanentRealErrors provokes errors with a real server and checks how
// they are classified.
func TestIsPermanentRealErrors(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	st := builtin(t, "iot_telemetry")
	if err := s.conn.Exec(ctx, "CREATE DATABASE "+Quote(s.db)); err != nil {
		t.Fatal(err)
	}
	rows := iotRows(0, 3, time.Now())

	// createAs creates st's table from its DDL with one edit applied, as an
	// operator or an older version might have left it.
	createAs := func(t *testing.T, table, from, to string) *schemas.Stream {
		t.Helper()
		alt := *st
		alt.Table = table
		ddl := s.CreateTableSQL(&alt)
		if !strings.Contains(ddl, from) {
			t.Fatalf("%q not in DDL %s", from, ddl)
		}
		if err := s.conn.Exec(ctx, strings.Replace(ddl, from, to, 1)); err != nil {
			t.Fatal(err)
		}
		return &alt
	}

	permanent := []struct {
		name, from, to string
		want           string
	}{
		// The driver refuses to convert before anything is sent.
		{"string into a number column", "`device_id` String", "`device_id` UInt64", "converting []string to UInt64 is unsupported"},
		{"string too long for the column", "`event_id` String", "`event_id` FixedString(3)", "exceeds FixedString(3) capacity"},
		{"value not in an enum", "`device_id` String", "`device_id` Enum8('sensor-1' = 1)", "unknown element"},
		// The server refuses the INSERT.
		{"column missing from the table", "    `tags` Nested(name String, value String),\n", "", "code: 16"},
	}
	for i, tt := range permanent {
		t.Run(tt.name, func(t *testing.T) {
			alt := createAs(t, fmt.Sprintf("drifted_%d", i), tt.from, tt.to)
			err := s.Write(ctx, alt, 0, rows)
			if err == nil {
				t.Fatal("Write succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if !sinks.IsPermanent(err) {
				t.Errorf("sinks.IsPermanent(%v) = false", err)
			}
		})
	}
}

// TestIsPermanentServerErrors classifies errors of a real server that are
// not about the table's columns.
func TestIsPermanentServerErrors(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	st := builtin(t, "iot_telemetry")
	rows := iotRows(0, 3, time.Now())
	ensure(t, s, st)

	t.Run("server rejects the block", func(t *testing.T) {
		// Nested arrays of different lengths: only the server checks that.
		batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.table(st)+" (event_id, `tags.name`, `tags.value`)")
		if err != nil {
			t.Fatal(err)
		}
		if err := batch.Append("x", []string{"a", "b"}, []string{"only-one"}); err != nil {
			t.Fatal(err)
		}
		err = batch.Send()
		var exc *ch.Exception
		if !errors.As(err, &exc) || exc.Code != 190 {
			t.Fatalf("Send = %v, want exception 190 (SIZES_OF_ARRAYS_DOESNT_MATCH)", err)
		}
		if !isPermanent(fmt.Errorf("wrapped: %w", err)) {
			t.Errorf("isPermanent(%v) = false", err)
		}
	})

	t.Run("table missing", func(t *testing.T) {
		gone := *st
		gone.Table = "never_created"
		err := s.Write(ctx, &gone, 0, rows)
		if err == nil {
			t.Fatal("Write succeeded")
		}
		// An operator or EnsureTables can fix it: the rows must wait.
		if sinks.IsPermanent(err) {
			t.Errorf("sinks.IsPermanent(%v) = true", err)
		}
	})

	t.Run("context cancelled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		err := s.Write(cctx, st, 0, rows)
		if err == nil {
			t.Fatal("Write succeeded")
		}
		if sinks.IsPermanent(err) {
			t.Errorf("sinks.IsPermanent(%v) = true", err)
		}
	})
}

func TestIsPermanentUnreachable(t *testing.T) {
	if os.Getenv("SLUICE_SKIP_CLICKHOUSE") == "1" {
		t.Skip("SLUICE_SKIP_CLICKHOUSE=1")
	}
	ctx := context.Background()

	t.Run("closed port", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		_, err = Open(ctx, Options{Addr: addr, DialTimeout: time.Second})
		if err == nil {
			t.Fatal("Open succeeded on a closed port")
		}
		if isPermanent(err) {
			t.Errorf("isPermanent(%v) = true", err)
		}
	})

	t.Run("server goes away", func(t *testing.T) {
		s := openTest(t) // for the database and its cleanup
		st := builtin(t, "iot_telemetry")
		ensure(t, s, st)
		p := startProxy(t, testAddr())
		via, err := Open(ctx, Options{Addr: p.addr, Database: s.db, DialTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer via.Close()
		if err := via.Write(ctx, st, 0, iotRows(0, 1, time.Now())); err != nil {
			t.Fatal(err)
		}
		p.stop()
		err = via.Write(ctx, st, 0, iotRows(1, 1, time.Now()))
		if err == nil {
			t.Fatal("Write succeeded with the server gone")
		}
		if sinks.IsPermanent(err) {
			t.Errorf("sinks.IsPermanent(%v) = true", err)
		}
		t.Logf("transient: %v", err)
		if _, _, err := via.Progress(ctx, st, 0); err == nil {
			t.Error("Progress succeeded with the server gone")
		}
	})
}

func TestIsPermanentClassifies(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"type mismatch", &ch.Exception{Code: 53}, true},
		{"cannot parse datetime, wrapped", fmt.Errorf("insert: %w", &ch.Exception{Code: 41}), true},
		{"too many parts", &ch.Exception{Code: 252}, false},
		{"memory limit", &ch.Exception{Code: 241}, false},
		{"network error", &ch.Exception{Code: 210}, false},
		{"read-only table", &ch.Exception{Code: 242}, false},
		{"unknown table", &ch.Exception{Code: 60}, false},
		{"invalid batch", fmt.Errorf("x: %w", ch.ErrBatchInvalid), true},
		{"acquire timeout", ch.ErrAcquireConnTimeout, false},
		{"deadline", context.DeadlineExceeded, false},
		{"eof", io.ErrUnexpectedEOF, false},
		{"invalid row", &invalidRowError{problem: "x"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isPermanent(tt.err); got != tt.want {
				t.Errorf("isPermanent(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// proxy forwards TCP connections to ClickHouse until stopped, to take the
// server away from a connected Sink; cut takes it away for a while.
type proxy struct {
	addr string
	l    net.Listener
	mu   sync.Mutex
	conn []net.Conn
	down bool // cut: connections are dropped, new ones refused
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{addr: l.Addr().String(), l: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			down := p.down
			p.mu.Unlock()
			if down {
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conn = append(p.conn, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(p.stop)
	return p
}

// cut drops every connection and refuses new ones until restore.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	p.closeAll()
}

func (p *proxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

func (p *proxy) stop() {
	p.l.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeAll()
}

func (p *proxy) closeAll() {
	for _, c := range p.conn {
		c.Close()
	}
	p.conn = nil
}

// The pool keeps every connection it opened for the next query: INSERTs
// from more lanes at once than the driver's default of 5 idle connections
// closed the extra ones after each round and opened them again.
func TestPoolKeepsItsConnections(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	for round := range 2 {
		var wg sync.WaitGroup
		for range maxConns {
			wg.Go(func() {
				// Each holds its connection long enough for all to be
				// open at once.
				if err := s.conn.Exec(ctx, "SELECT sleep(0.3)"); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if st := s.conn.Stats(); st.Idle != maxConns {
			t.Fatalf("round %d: %d connections idle after %d queries at once, want %d (open %d)", round, st.Idle, maxConns, maxConns, st.Open)
		}
	}
}
