package e2e

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// rollupTotals are a stream's totals, read from its base table or from its
// rollup: the events (or metric values) counted, and the metric values'
// min, max and sum.
type rollupTotals struct {
	count         uint64
	min, max, sum float64
}

func (a rollupTotals) equal(b rollupTotals) bool {
	// Sums are added up in different orders: equal to 1e-9 of their size.
	return a.count == b.count && a.min == b.min && a.max == b.max &&
		math.Abs(a.sum-b.sum) <= 1e-9*math.Max(1, math.Abs(b.sum))
}

// rollupQueries returns, for each built-in stream whose table exists, the
// query of its base table's totals and of its rollup's. A metrics column
// is 18.16's Nested arrays or the LTS's Map. The rollup's rows with a
// count of 0 only mark progress over ranges with nothing to sum up.
func rollupQueries(t *testing.T, db *testDB) map[string][2]string {
	t.Helper()
	ctx := context.Background()
	rows, err := db.conn.Query(ctx, "SELECT table, name FROM system.columns WHERE database = ? AND table IN ('iot_telemetry', 'app_logs')", db.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols := map[string]bool{}
	for rows.Next() {
		var table, name string
		if err := rows.Scan(&table, &name); err != nil {
			t.Fatal(err)
		}
		cols[table+"."+name] = true
	}
	out := map[string][2]string{}
	if cols["iot_telemetry.device_id"] {
		values := "`metrics.value`"
		if cols["iot_telemetry.metrics"] {
			values = "mapValues(metrics)"
		}
		out["iot_telemetry"] = [2]string{
			fmt.Sprintf("SELECT count(), min(v), max(v), sum(v) FROM %s.iot_telemetry ARRAY JOIN %s AS v", db.Name, values),
			fmt.Sprintf("SELECT sum(count), min(min), max(max), sum(sum) FROM %s.iot_telemetry_1m WHERE count > 0", db.Name),
		}
	}
	if cols["app_logs.service"] {
		out["app_logs"] = [2]string{
			fmt.Sprintf("SELECT count(), toFloat64(0), toFloat64(0), toFloat64(0) FROM %s.app_logs", db.Name),
			fmt.Sprintf("SELECT sum(count), toFloat64(0), toFloat64(0), toFloat64(0) FROM %s.app_logs_1m", db.Name),
		}
	}
	return out
}

// readTotals runs a totals query; an empty table reads as zeros.
func readTotals(t *testing.T, db *testDB, q string) rollupTotals {
	t.Helper()
	var (
		tot   rollupTotals
		count uint64
		err   error
	)
	for range 5 { // a pooled connection may be to a ClickHouse restarted since
		if err = db.conn.QueryRow(context.Background(), q).Scan(&count, &tot.min, &tot.max, &tot.sum); err == nil {
			tot.count = count
			return tot
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s: %v", q, err)
	return tot
}

// checkRollups checks that each built-in stream's rollup (iot_telemetry_1m,
// app_logs_1m) holds exactly what its base table holds: as many metric
// values (log lines), with the same min, max and sum. A rollup left behind
// by a last write is repaired by the worker's next Progress, so it waits a
// while for them to agree.
func checkRollups(t *testing.T, db *testDB) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var diffs, same []string
		for stream, q := range rollupQueries(t, db) {
			base, roll := readTotals(t, db, q[0]), readTotals(t, db, q[1])
			if !base.equal(roll) {
				diffs = append(diffs, fmt.Sprintf("%s: base %+v, rollup %+v", stream, base, roll))
			} else {
				same = append(same, fmt.Sprintf("%s: %d counted, sum %.6g", stream, base.count, base.sum))
			}
		}
		if len(diffs) == 0 {
			t.Logf("rollups equal their base tables: %s", strings.Join(same, "; "))
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("rollups differ from their base tables: %s", strings.Join(diffs, "; "))
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// refuseRollups makes both rollup tables refuse every INSERT (refuse =
// true), as a rollup on a full disk would, or takes that back.
func refuseRollups(t *testing.T, db *testDB, refuse bool) {
	t.Helper()
	for _, table := range []string{"iot_telemetry_1m", "app_logs_1m"} {
		q := fmt.Sprintf("ALTER TABLE %s.%s DROP COLUMN refuse", db.Name, table)
		if refuse {
			q = fmt.Sprintf("ALTER TABLE %s.%s ADD COLUMN refuse UInt8 MATERIALIZED throwIf(count >= 0)", db.Name, table)
		}
		db.alter(t, q)
	}
}

// TestRollupsThroughKillsAndRefusals runs load while the rollup tables
// refuse INSERTs for a few seconds at a time (the base INSERTs succeed,
// the rollup falls behind) and the worker is SIGKILLed, sometimes while
// they refuse, sometimes just after: every rollup ends equal to its base
// table (landExactlyOnce checks it), repaired by the Progress the worker
// asks before a retry or when it takes a partition.
func TestRollupsThroughKillsAndRefusals(t *testing.T) {
	r := chaosRand(t)
	s := newSplitStack(t, newTestDB(t))
	s.startIngest()
	w := s.startWorker()
	load := startLoad(t, s.ingestURL, 2000)
	rounds := max(3, chaosKills()/2)
	for i := range rounds {
		waitMetric(t, s, "sluice_worker_generations_total", 1)
		time.Sleep(randomPause(r, time.Second, 3*time.Second))
		refuseRollups(t, s.db, true)
		time.Sleep(randomPause(r, 500*time.Millisecond, 2*time.Second))
		killWhileRefused := i%2 == 0
		if killWhileRefused {
			w.kill()
		}
		refuseRollups(t, s.db, false)
		if !killWhileRefused {
			time.Sleep(randomPause(r, 0, time.Second))
			w.kill()
		}
		t.Logf("round %d/%d: rollups refused, worker SIGKILLed %s", i+1, rounds, map[bool]string{true: "while they refused", false: "after"}[killWhileRefused])
		w = s.startWorker()
	}
	time.Sleep(2 * time.Second)
	sum := load.stop(t)
	t.Logf("%d events acknowledged", sum.AckedTotal)
	s.landExactlyOnce(t, load)
}
