package querydocs

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/sluicehq/sluice/internal/testkit"
)

// ltsMinMajor is the first server version taken to have the LTS layout's
// types (Map without the experimental setting, DateTime64, LowCardinality).
const ltsMinMajor = 23

// TestQueriesRunOnClickHouse runs every documented query on the test
// ClickHouse, on tables of the layout it is written for filled with the
// dataset of data_test.go, and checks that it returns rows and the answer
// the dataset implies. The test server is 18.16, so the 18.16 forms run;
// pointed at a current server (SLUICE_CLICKHOUSE_ADDR=127.0.0.1:19000 with
// the compose stack up), the LTS forms run too.
func TestQueriesRunOnClickHouse(t *testing.T) {
	if os.Getenv("SLUICE_SKIP_CLICKHOUSE") == "1" {
		t.Skip("SLUICE_SKIP_CLICKHOUSE=1")
	}
	qs := loadDocQueries(t)
	admin := dial(t, "default")
	v, err := admin.ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	layouts := []Server{Server1816}
	if v.Version.Major >= ltsMinMajor {
		layouts = append(layouts, ServerLTS)
	} else {
		t.Logf("ClickHouse %s: the LTS forms are pinned in %s, not run", v.Version, goldenFile)
	}
	for _, layout := range layouts {
		t.Run(string(layout), func(t *testing.T) {
			conn := freshDatabase(t, admin)
			ctx := context.Background()
			var now time.Time
			if err := conn.QueryRow(ctx, "SELECT now()").Scan(&now); err != nil {
				t.Fatal(err)
			}
			d := makeDataset(now)
			var db string
			if err := conn.QueryRow(ctx, "SELECT currentDatabase()").Scan(&db); err != nil {
				t.Fatal(err)
			}
			for _, stmt := range tableDDL(t, db, layout) {
				if err := conn.Exec(ctx, stmt); err != nil {
					t.Fatalf("%v\n%s", err, stmt)
				}
			}
			insert(t, conn, layout, d)
			ran := 0
			for _, q := range qs {
				if !q.For(layout) {
					continue
				}
				ran++
				t.Run(q.Name, func(t *testing.T) {
					rows, err := queryRows(ctx, conn, q.SQL)
					if err != nil {
						t.Fatalf("%s:%d: %v\n%s", docFile, q.Line, err, q.SQL)
					}
					if len(rows) == 0 {
						t.Fatalf("%s:%d: no rows\n%s", docFile, q.Line, q.SQL)
					}
					if c := answerChecks[q.Name]; c != nil {
						c(t, d, rows)
					} else {
						t.Logf("%s: no answer check, only rows required (%d)", q.Name, len(rows))
					}
				})
			}
			if ran == 0 {
				t.Errorf("%s: no query for %s", docFile, layout)
			}
		})
	}
}

func dial(t *testing.T, db string) driver.Conn {
	t.Helper()
	addr := testkit.ClickHouseAddr()
	conn, err := ch.Open(&ch.Options{
		Addr:        []string{addr},
		Auth:        ch.Auth{Database: db, Username: "default"},
		DialTimeout: 3 * time.Second,
		ReadTimeout: 60 * time.Second,
	})
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = conn.Ping(ctx)
		cancel()
	}
	if err != nil {
		t.Fatalf("ClickHouse is not reachable at %s: %v\n"+
			"Start it with scripts/clickhouse.sh (or set SLUICE_CLICKHOUSE_ADDR, or SLUICE_SKIP_CLICKHOUSE=1 to skip this test).", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// freshDatabase creates a database of its own, dropped when t ends, and
// returns a connection using it: the documented queries name no database.
func freshDatabase(t *testing.T, admin driver.Conn) driver.Conn {
	t.Helper()
	db := fmt.Sprintf("sluice_querydocs_%016x", rand.Uint64())
	ctx := context.Background()
	if err := admin.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
			t.Errorf("drop test database %s: %v", db, err)
		}
	})
	return dial(t, db)
}

// insert writes the dataset with native INSERTs, one per table, naming
// the columns as Sluice does.
func insert(t *testing.T, conn driver.Conn, layout Server, d *dataset) {
	t.Helper()
	ctx := context.Background()
	stored := d.now
	var offset [4]int64
	next := func(key string) (int32, int64) {
		p := int(key[len(key)-1]) % len(offset)
		offset[p]++
		return int32(p), offset[p]
	}
	msOf := func(ts time.Time) uint16 { return uint16(ts.Nanosecond() / int(time.Millisecond)) }

	iotCols := "event_id, device_id, ts, ts_ms, `metrics.name`, `metrics.value`, `tags.name`, `tags.value`, received_at, received_at_ms, kafka_partition, kafka_offset, stored_at"
	logCols := "event_id, ts, ts_ms, service, level, message, host, trace_id, `attrs.name`, `attrs.value`, received_at, received_at_ms, kafka_partition, kafka_offset, stored_at"
	if layout == ServerLTS {
		iotCols = "event_id, device_id, ts, metrics, tags, received_at, kafka_partition, kafka_offset, stored_at"
		logCols = "event_id, ts, service, level, message, host, trace_id, attrs, received_at, kafka_partition, kafka_offset, stored_at"
	}

	b, err := conn.PrepareBatch(ctx, "INSERT INTO iot_telemetry ("+iotCols+")")
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range d.readings {
		id := fmt.Sprintf("iot-%06d", i)
		p, off := next(r.device)
		tagNames, tagValues := split(r.tags)
		if layout == ServerLTS {
			metrics := make(map[string]float64, len(r.names))
			for j, n := range r.names {
				metrics[n] = r.values[j]
			}
			err = b.Append(id, r.device, r.ts, metrics, toMap(r.tags), r.recv, p, off, stored)
		} else {
			err = b.Append(id, r.device, r.ts, msOf(r.ts), r.names, r.values, tagNames, tagValues, r.recv, msOf(r.recv), p, off, stored)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}

	b, err = conn.PrepareBatch(ctx, "INSERT INTO app_logs ("+logCols+")")
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range d.lines {
		id := fmt.Sprintf("log-%06d", i)
		p, off := next(l.service)
		if layout == ServerLTS {
			err = b.Append(id, l.ts, l.service, l.level, l.message, l.host, l.traceID, toMap(l.attrs), l.recv, p, off, stored)
		} else {
			names, values := split(l.attrs)
			err = b.Append(id, l.ts, msOf(l.ts), l.service, l.level, l.message, l.host, l.traceID, names, values, l.recv, msOf(l.recv), p, off, stored)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	t.Logf("inserted %d iot_telemetry and %d app_logs rows", len(d.readings), len(d.lines))
}

func split(kvs [][2]string) (names, values []string) {
	names, values = []string{}, []string{}
	for _, kv := range kvs {
		names = append(names, kv[0])
		values = append(values, kv[1])
	}
	return names, values
}

func toMap(kvs [][2]string) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv[0]] = kv[1]
	}
	return m
}

// queryRows runs sql and returns its rows by column name, each value of
// the Go type the driver scans the column's type into.
func queryRows(ctx context.Context, conn driver.Conn, sql string) ([]row, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	types := rows.ColumnTypes()
	var out []row
	for rows.Next() {
		ptrs := make([]any, len(types))
		for i, ct := range types {
			ptrs[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		r := row{}
		for i, ct := range types {
			r[ct.Name()] = reflect.ValueOf(ptrs[i]).Elem().Interface()
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) > 0 && len(out[0]) != len(types) {
		return nil, fmt.Errorf("two result columns share a name: %v", columnNames(types))
	}
	return out, nil
}

func columnNames(types []driver.ColumnType) string {
	names := make([]string, len(types))
	for i, ct := range types {
		names[i] = ct.Name()
	}
	return strings.Join(names, ", ")
}
