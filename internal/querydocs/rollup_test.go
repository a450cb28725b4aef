package querydocs

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// The rollup tables (iot_telemetry_1m, app_logs_1m) hold partial
// aggregates, several rows per group, and marker rows that only record
// progress. These tests keep the documented rollup queries to the rules
// that make them right whatever the rows (aggregate every measure, bound
// the minutes or skip count 0), and check their answers against the same
// aggregate computed from the base table.

// rollupTableRE finds a rollup table in a query.
var rollupTableRE = regexp.MustCompile(`\b\w+_1m\b`)

// rollupMeasures are the rollup's measure columns, each with the
// aggregate functions that sum up its partial rows: the count and the sum
// are added, the minimum and maximum are taken again.
var rollupMeasures = map[string][]string{
	"count": {"sum", "sumIf"},
	"sum":   {"sum", "sumIf"},
	"min":   {"min"},
	"max":   {"max"},
}

var (
	// measureRE finds a measure column, or a function of the same name.
	measureRE = regexp.MustCompile(`\b(count|sum|min|max)\b(\s*\()?`)
	// aggregatedRE is what precedes a measure given to an aggregate
	// function as its first argument.
	aggregatedRE = regexp.MustCompile(`\b(\w+)\(\s*$`)
	// markerFilterRE is the filter that leaves the marker rows out.
	markerFilterRE = regexp.MustCompile(`^\s*>\s*0\b`)
	// minuteBoundRE is a lower bound on the minute, which leaves the
	// marker rows (minute 1970-01-01) out.
	minuteBoundRE = regexp.MustCompile(`\bminute\s*>=?\s*\S`)
	// rowAggregateRE are aggregates that count or weigh the rollup's rows,
	// which are partial and may be merged at any time.
	rowAggregateRE = regexp.MustCompile(`\b(count|countIf|avg|avgIf)\s*\(`)
)

// rollupProblems lists what is wrong with a query of a rollup table.
func rollupProblems(q Query) []string {
	text := stripQuoted(q.SQL)
	var out []string
	if q.Server != ServerAny {
		out = append(out, "the rollups have the same columns on both layouts: give one form, server: any")
	}
	if !regexp.MustCompile(`(?i)\bGROUP\s+BY\b`).MatchString(text) {
		out = append(out, "no GROUP BY: a group is spread over several partial rows")
	}
	if !minuteBoundRE.MatchString(text) && !regexp.MustCompile(`\bcount\s*>\s*0\b`).MatchString(text) {
		out = append(out, "neither a lower bound on minute nor count > 0: the marker rows (count 0, minute 1970-01-01) would be read")
	}
	for _, m := range rowAggregateRE.FindAllStringSubmatch(text, -1) {
		out = append(out, m[1]+"() of a rollup's rows: they are partial, and merges fold them; sum up count (and sum) instead")
	}
	for _, m := range measureRE.FindAllStringSubmatchIndex(text, -1) {
		if m[4] >= 0 {
			continue // a function call, count() or sum(...)
		}
		col := text[m[2]:m[3]]
		if markerFilterRE.MatchString(text[m[1]:]) && col == "count" {
			continue
		}
		fn := aggregatedRE.FindStringSubmatch(text[:m[0]])
		if fn == nil || !slices.Contains(rollupMeasures[col], fn[1]) {
			out = append(out, fmt.Sprintf("column %s outside %s(): partial rows must be summed up", col, strings.Join(rollupMeasures[col], "() or ")))
		}
	}
	return out
}

// TestRollupQueries checks every documented query of a rollup table
// against the rules above.
func TestRollupQueries(t *testing.T) {
	n := 0
	for _, q := range loadDocQueries(t) {
		if !rollupTableRE.MatchString(stripQuoted(q.SQL)) {
			continue
		}
		n++
		for _, p := range rollupProblems(q) {
			t.Errorf("%s:%d: query %s: %s", docFile, q.Line, q.Name, p)
		}
	}
	if n < len(rollupQueryNames) {
		t.Errorf("%s: %d queries read a rollup table, want at least %d", docFile, n, len(rollupQueryNames))
	}
}

func TestRollupProblems(t *testing.T) {
	good := Query{Server: ServerAny, SQL: "SELECT minute, sum(count) AS n, min(min), max(max), sum(sum) / sum(count), sumIf(count, level = 'error')\n" +
		"FROM iot_telemetry_1m WHERE minute >= now() - INTERVAL 1 HOUR GROUP BY minute"}
	if p := rollupProblems(good); len(p) != 0 {
		t.Errorf("a good query: %v", p)
	}
	if p := rollupProblems(Query{Server: ServerAny, SQL: "SELECT device_id, sum(count) FROM iot_telemetry_1m WHERE count > 0 GROUP BY device_id"}); len(p) != 0 {
		t.Errorf("count > 0 instead of a time bound: %v", p)
	}
	for _, tc := range []struct{ sql, want string }{
		{"SELECT minute, count FROM iot_telemetry_1m WHERE minute >= now() - INTERVAL 1 HOUR GROUP BY minute, count", "column count outside"},
		{"SELECT minute, max(min) FROM iot_telemetry_1m WHERE minute >= now() - INTERVAL 1 HOUR GROUP BY minute", "column min outside min()"},
		{"SELECT minute, avg(sum / count) FROM iot_telemetry_1m WHERE minute >= now() - INTERVAL 1 HOUR GROUP BY minute", "column sum outside"},
		{"SELECT sum(count) FROM app_logs_1m WHERE minute >= now() - INTERVAL 1 HOUR", "no GROUP BY"},
		{"SELECT service, count() FROM app_logs_1m WHERE minute >= now() - INTERVAL 1 HOUR GROUP BY service", "count() of a rollup's rows"},
		{"SELECT metric, avg(sum) FROM iot_telemetry_1m WHERE minute >= now() - INTERVAL 1 HOUR GROUP BY metric", "avg() of a rollup's rows"},
		{"SELECT service, sum(count) FROM app_logs_1m GROUP BY service", "marker rows"},
		{"SELECT service, sum(count) FROM app_logs_1m WHERE minute <= now() GROUP BY service", "marker rows"},
	} {
		p := rollupProblems(Query{Server: ServerAny, SQL: tc.sql})
		if !strings.Contains(strings.Join(p, "; "), tc.want) {
			t.Errorf("%s: problems %q, want one containing %q", tc.sql, p, tc.want)
		}
	}
	if p := rollupProblems(Query{Server: ServerLTS, SQL: good.SQL}); len(p) != 1 || !strings.Contains(p[0], "server: any") {
		t.Errorf("an lts form of a rollup query: %v", p)
	}
}

// baseCheck is the aggregate a rollup query computes, computed from the
// base table instead: its rows must be the rollup query's, group for
// group.
type baseCheck struct {
	// sql is the base table's query, by layout, with the same result
	// columns as the rollup query.
	sql map[Server]string
	// keys are the columns that name a group; exact the measures that
	// must be equal; near those that may differ by the rounding of adding
	// the same values in another order.
	keys, exact, near []string
}

const (
	baseMetricsPerMinute = `SELECT
    device_id,
    metric,
    toStartOfMinute(ts) AS minute,
    count() AS value_count,
    min(value) AS value_min,
    max(value) AS value_max,
    sum(value) AS value_sum,
    avg(value) AS value_avg
FROM iot_telemetry
ARRAY JOIN %s
WHERE toStartOfMinute(ts) >= now() - INTERVAL 1 HOUR AND toStartOfMinute(ts) <= now()
GROUP BY device_id, metric, minute`

	baseMetricPerHour = `SELECT
    toStartOfHour(ts) AS hour,
    count() AS value_count,
    min(value) AS value_min,
    max(value) AS value_max,
    avg(value) AS value_avg
FROM iot_telemetry
ARRAY JOIN %s
WHERE device_id = 'sensor-0042'
    AND metric = 'temperature'
    AND toStartOfMinute(ts) >= toStartOfHour(now()) - INTERVAL 23 HOUR AND toStartOfMinute(ts) <= now()
GROUP BY hour`

	baseErrorRate = `SELECT
    toStartOfMinute(ts) AS minute,
    service,
    count() AS lines,
    countIf(level IN ('error', 'fatal')) / count() AS error_rate
FROM app_logs
WHERE toStartOfMinute(ts) >= now() - INTERVAL 1 HOUR AND toStartOfMinute(ts) <= now()
GROUP BY minute, service`
)

// metricsJoin is each layout's ARRAY JOIN of every metric.
var metricsJoin = map[Server]string{
	Server1816: "metrics.name AS metric, metrics.value AS value",
	ServerLTS:  "mapKeys(metrics) AS metric, mapValues(metrics) AS value",
}

func byLayout(format string) map[Server]string {
	return map[Server]string{
		Server1816: fmt.Sprintf(format, metricsJoin[Server1816]),
		ServerLTS:  fmt.Sprintf(format, metricsJoin[ServerLTS]),
	}
}

// rollupQueryNames are the rollup queries docs/queries.md must have, and
// baseChecks their answers from the base tables.
var (
	rollupQueryNames = []string{"rollup_metrics_per_minute", "rollup_metric_per_hour", "rollup_error_rate_per_service"}
	baseChecks       = map[string]baseCheck{
		"rollup_metrics_per_minute": {
			sql:   byLayout(baseMetricsPerMinute),
			keys:  []string{"device_id", "metric", "minute"},
			exact: []string{"value_count", "value_min", "value_max"},
			near:  []string{"value_sum", "value_avg"},
		},
		"rollup_metric_per_hour": {
			sql:   byLayout(baseMetricPerHour),
			keys:  []string{"hour"},
			exact: []string{"value_count", "value_min", "value_max"},
			near:  []string{"value_avg"},
		},
		"rollup_error_rate_per_service": {
			sql:   map[Server]string{Server1816: baseErrorRate, ServerLTS: baseErrorRate},
			keys:  []string{"minute", "service"},
			exact: []string{"lines", "error_rate"},
		},
	}
)

// compare runs the base query and requires its groups and measures to be
// the rollup query's rows'.
func (c baseCheck) compare(ctx context.Context, t *testing.T, conn driver.Conn, layout Server, rows []row) {
	t.Helper()
	base, err := queryRows(ctx, conn, c.sql[layout])
	if err != nil {
		t.Fatalf("the base table's aggregate: %v\n%s", err, c.sql[layout])
	}
	key := func(r row) string {
		parts := make([]string, len(c.keys))
		for i, k := range c.keys {
			switch v := col(t, r, k).(type) {
			case time.Time:
				parts[i] = fmt.Sprint(v.Unix())
			default:
				parts[i] = fmt.Sprint(v)
			}
		}
		return strings.Join(parts, " ")
	}
	want := make(map[string]row, len(base))
	for _, r := range base {
		want[key(r)] = r
	}
	if len(rows) != len(base) {
		t.Errorf("%d groups from the rollup, %d from the base table", len(rows), len(base))
	}
	for _, r := range rows {
		k := key(r)
		b, ok := want[k]
		if !ok {
			t.Errorf("group %s: in the rollup, not in the base table", k)
			continue
		}
		for _, m := range c.exact {
			if got, w := num(t, r, m), num(t, b, m); got != w {
				t.Errorf("group %s: %s %v from the rollup, %v from the base table", k, m, got, w)
			}
		}
		for _, m := range c.near {
			if got, w := num(t, r, m), num(t, b, m); !near(got, w) {
				t.Errorf("group %s: %s %v from the rollup, %v from the base table", k, m, got, w)
			}
		}
	}
}

// checkRollupRows requires the rollups to hold what makes their queries'
// rules matter: in iot_telemetry_1m, groups spread over several partial
// rows (which count() or avg() would get wrong) and marker rows (the
// dataset's batches of heartbeats without metrics), which a query without
// a bound on minute would read. app_logs_1m has fewer split groups (most
// service, level and minute have one line), and no marker rows: those
// come only from repairs.
func checkRollupRows(ctx context.Context, t *testing.T, conn driver.Conn) {
	t.Helper()
	for _, c := range []struct {
		what, sql string
		required  bool
	}{
		{"marker rows in iot_telemetry_1m", "SELECT count() FROM iot_telemetry_1m WHERE count = 0 AND minute = toDateTime(0)", true},
		{"groups of several rows in iot_telemetry_1m",
			"SELECT count() FROM (SELECT device_id, metric, minute FROM iot_telemetry_1m WHERE count > 0 GROUP BY device_id, metric, minute HAVING count() > 1)", true},
		{"groups of several rows in app_logs_1m",
			"SELECT count() FROM (SELECT service, level, minute FROM app_logs_1m WHERE count > 0 GROUP BY service, level, minute HAVING count() > 1)", false},
	} {
		var n uint64
		if err := conn.QueryRow(ctx, c.sql).Scan(&n); err != nil {
			t.Fatalf("%v\n%s", err, c.sql)
		}
		if n == 0 && c.required {
			t.Errorf("no %s: the dataset's batches do not test what the rollup queries must handle", c.what)
		}
		t.Logf("%d %s", n, c.what)
	}
}
