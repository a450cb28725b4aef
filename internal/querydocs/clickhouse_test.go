package querydocs

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks"
	"github.com/sluicehq/sluice/sinks/clickhouse"
)

// ltsMinMajor is the first server version taken to have the LTS layout's
// types (Map without the experimental setting, DateTime64, LowCardinality).
const ltsMinMajor = 23

// TestQueriesRunOnClickHouse runs every documented query on the test
// ClickHouse, on tables of the layout it is written for filled with the
// dataset of data_test.go (written through the sink, which fills the
// rollups too), and checks that it returns rows and the answer the dataset
// implies; a rollup query's answer must also be the base table's
// (baseChecks). The test server is 18.16, so the 18.16 forms run;
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
			write(t, db, d)
			checkRollupRows(ctx, t, conn)
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
					if c, ok := baseChecks[q.Name]; ok {
						c.compare(ctx, t, conn, layout, rows)
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

// numPartitions is the number of Kafka partitions of each stream's topic
// in the test: events are spread over them by their key as Kafka's default
// partitioner does.
const numPartitions = 4

// Batches as the workers write them: a Kafka partition's events in the
// order they arrived, one Write per batchSlot of received_at or per
// maxBatch events, whichever ends first. A worker's flush falls anywhere in
// a minute, so the slots end half-way through one (batchPhase): the
// (device, metric, minute) groups with readings on both sides are split
// over two INSERTs, and the rollups hold several partial rows for them, as
// they do in production.
const (
	batchSlot  = 5 * time.Minute
	batchPhase = 30 * time.Second
	maxBatch   = 40
)

// write stores the dataset as the workers would: through the ClickHouse
// sink, each Kafka partition's events in order at consecutive offsets, the
// partitions concurrently, so that the base tables and their rollups
// (iot_telemetry_1m, app_logs_1m) hold what production would. The tables
// exist already (tableDDL): EnsureTables finds them.
func write(t *testing.T, db string, d *dataset) {
	t.Helper()
	ctx := context.Background()
	sink, err := clickhouse.Open(ctx, clickhouse.Options{
		Addr:        testkit.ClickHouseAddr(),
		Database:    db,
		DialTimeout: 3 * time.Second,
		Logger:      testkit.QuietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	iot, logs := testkit.Stream(t, "iot_telemetry"), testkit.Stream(t, "app_logs")
	if err := sink.EnsureTables(ctx, []*schemas.Stream{iot, logs}); err != nil {
		t.Fatal(err)
	}

	var iotEvents, logEvents []schemas.Event
	for i, r := range d.readings {
		metrics := make(map[string]float64, len(r.names))
		for j, n := range r.names {
			metrics[n] = r.values[j]
		}
		fields := map[string]any{"device_id": r.device, "ts": r.ts, "metrics": metrics}
		if len(r.tags) > 0 {
			fields["tags"] = toMap(r.tags)
		}
		iotEvents = append(iotEvents, schemas.Event{ID: fmt.Sprintf("iot-%06d", i), Key: r.device, ReceivedAt: r.recv, Fields: fields})
	}
	for i, l := range d.lines {
		fields := map[string]any{"ts": l.ts, "service": l.service, "level": l.level, "message": l.message, "host": l.host}
		if l.traceID != "" {
			fields["trace_id"] = l.traceID
		}
		if len(l.attrs) > 0 {
			fields["attrs"] = toMap(l.attrs)
		}
		logEvents = append(logEvents, schemas.Event{ID: fmt.Sprintf("log-%06d", i), Key: l.service, ReceivedAt: l.recv, Fields: fields})
	}
	// Like the workers, one writer per Kafka partition, all at once.
	var (
		wg     sync.WaitGroup
		writes atomic.Int64
		errs   = make(chan error, 2*numPartitions)
	)
	for _, s := range []struct {
		st     *schemas.Stream
		events []schemas.Event
	}{{iot, iotEvents}, {logs, logEvents}} {
		for p, partBatches := range batches(s.events) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, rows := range partBatches {
					if err := sink.Write(ctx, s.st, int32(p), rows); err != nil {
						errs <- err
						return
					}
					writes.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	failed := false
	for err := range errs {
		t.Error(err)
		failed = true
	}
	if failed {
		t.FailNow()
	}
	t.Logf("wrote %d iot_telemetry and %d app_logs events through the sink, in %d batches", len(iotEvents), len(logEvents), writes.Load())
}

// batches spreads events over the Kafka partitions by key, orders each
// partition's by arrival, numbers them from offset 0, and cuts them into
// the batches a worker would write.
func batches(events []schemas.Event) [numPartitions][][]sinks.Row {
	var parts [numPartitions][]schemas.Event
	for _, ev := range events {
		p := testkit.JavaMurmur2Partition([]byte(ev.Key), numPartitions)
		parts[p] = append(parts[p], ev)
	}
	var out [numPartitions][][]sinks.Row
	for p, evs := range parts {
		sort.SliceStable(evs, func(i, j int) bool { return evs[i].ReceivedAt.Before(evs[j].ReceivedAt) })
		var batch []sinks.Row
		for off, ev := range evs {
			if len(batch) > 0 && (len(batch) == maxBatch || slotOf(batch[0].Event.ReceivedAt) != slotOf(ev.ReceivedAt)) {
				out[p] = append(out[p], batch)
				batch = nil
			}
			batch = append(batch, sinks.Row{Offset: int64(off), Event: ev})
		}
		if len(batch) > 0 {
			out[p] = append(out[p], batch)
		}
	}
	return out
}

// slotOf numbers the batchSlot that received_at at falls in.
func slotOf(at time.Time) int64 { return at.Add(batchPhase).UnixNano() / int64(batchSlot) }

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
