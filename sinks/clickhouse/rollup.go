package clickhouse

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks"
)

// Rollups: per-minute summaries of the built-in streams.
//
// iot_telemetry_1m holds, per device, metric and minute of ts, the count,
// min, max and sum of the metric's values; app_logs_1m, per service, level
// and minute of ts, the count of lines. They must stay equal to their base
// tables through crashes, kills and retries, which a materialized view
// cannot promise: when an INSERT fails after the base table committed its
// part, the view may have missed the block, and the worker, finding the
// rows stored, does not write them again. So the Sink writes the rollup
// itself. Right after a base INSERT succeeds, Write sends a second INSERT
// of partial aggregates, computed in Go from the same rows, all stored_at
// the same as the base rows and each carrying kafka_partition and, as
// kafka_offset, the batch's last offset. One INSERT is one part, so the
// rollup knows its own progress like the base does: its highest
// kafka_offset per Kafka partition marks the prefix of the partition it
// holds.
//
// If the rollup INSERT fails, or the process dies between the two, the
// rollup is behind the base for that Kafka partition. Progress, which the
// worker asks when it takes a partition and before any retry, repairs it
// before it answers: when the rollup's progress R is below the base's B, one
// INSERT ... SELECT on the server sums up the base rows of offsets R+1 to B
// into the rollup, again as one part with one stored_at (settled like any
// INSERT of unknown outcome), and checks again. Write does the same before
// its base INSERT while it does not know the rollup to be level. Base
// INSERTs of a partition are sequential, and every rollup INSERT covers a
// contiguous range of offsets ending at the end of a base INSERT, so R
// always marks a prefix: the repair is exact and never counted twice.
//
// A batch (or a repaired range) with no metric values at all still moves
// the rollup's progress: one row with count 0, empty names, minute
// 1970-01-01 00:00:00, min +inf and max -inf, which changes no sum, min or
// max and falls outside any time range an analyst asks for.

// rollupSuffix names a stream's rollup table after its base table.
const rollupSuffix = "_1m"

// Names of a rollup's own columns, besides the stream's dimensions and
// kafka_partition, kafka_offset and stored_at.
const (
	ColMetric = "metric"
	ColMinute = "minute"
	ColCount  = "count"
	ColMin    = "min"
	ColMax    = "max"
	ColSum    = "sum"
)

// rollupDef says how a stream is summed up per minute.
type rollupDef struct {
	// dims are the string or enum fields the rollup groups by.
	dims []string
	// values is the map(number) field whose entries are summed up per
	// name (the metric), or "" to count events only.
	values string
	// time is the timestamp field whose minute the rollup groups by.
	time string
}

// rollupDefs are the rollups, by stream name: the built-in streams have
// one each; user-defined streams have none.
var rollupDefs = map[string]rollupDef{
	"iot_telemetry": {dims: []string{"device_id"}, values: "metrics", time: "ts"},
	"app_logs":      {dims: []string{"service", "level"}, time: "ts"},
}

// rollup is a stream's rollup table.
type rollup struct {
	rollupDef
	// table is the rollup table's name, unquoted.
	table string
	// dimIdx, timeIdx and valuesIdx are the indexes in the stream's Fields
	// of dims, time and values (-1 for none).
	dimIdx             []int
	timeIdx, valuesIdx int
}

// rollupOf returns st's rollup, or nil when it has none: a stream not in
// rollupDefs, or one whose fields are not those the definition needs (a
// replaced built-in schema).
func rollupOf(st *schemas.Stream) *rollup {
	def, ok := rollupDefs[st.Name]
	if !ok || !hasField(st, def.time, schemas.TypeTimestamp) {
		return nil
	}
	for _, d := range def.dims {
		if !hasField(st, d, schemas.TypeString) && !hasField(st, d, schemas.TypeEnum) {
			return nil
		}
	}
	if def.values != "" && !hasField(st, def.values, schemas.TypeNumberMap) {
		return nil
	}
	r := &rollup{rollupDef: def, table: st.Table + rollupSuffix, timeIdx: st.FieldIndex(def.time), valuesIdx: -1}
	for _, d := range def.dims {
		r.dimIdx = append(r.dimIdx, st.FieldIndex(d))
	}
	if def.values != "" {
		r.valuesIdx = st.FieldIndex(def.values)
	}
	return r
}

func hasField(st *schemas.Stream, name string, typ schemas.FieldType) bool {
	for _, f := range st.Fields {
		if f.Name == name {
			return f.Type == typ
		}
	}
	return false
}

// RollupTable returns the name of st's rollup table, and ok=false when st
// has no rollup.
func RollupTable(st *schemas.Stream) (string, bool) {
	r := rollupOf(st)
	if r == nil {
		return "", false
	}
	return r.table, true
}

// rollupColumn is one column of a rollup table, typed for each flavor.
type rollupColumn struct {
	name, legacy, modern string
}

func (c rollupColumn) typ(fl flavor) string {
	if fl == modernTypes {
		return c.modern
	}
	return c.legacy
}

// columns returns the rollup's columns in table order. On a modern server
// the measures are SimpleAggregateFunction columns of an
// AggregatingMergeTree, and so are kafka_offset and stored_at (max): a
// merge keeps the highest of each, so the progress search still finds a
// partition's highest offset among its newest rows.
func (r *rollup) columns() []rollupColumn {
	const lowCard = "LowCardinality(String)"
	var out []rollupColumn
	for _, d := range r.dims {
		out = append(out, rollupColumn{d, "String", lowCard})
	}
	if r.values != "" {
		out = append(out, rollupColumn{ColMetric, "String", lowCard})
	}
	out = append(out, rollupColumn{ColMinute, "DateTime", "DateTime"},
		rollupColumn{ColCount, "UInt64", "SimpleAggregateFunction(sum, UInt64)"})
	if r.values != "" {
		out = append(out, rollupColumn{ColMin, "Float64", "SimpleAggregateFunction(min, Float64)"},
			rollupColumn{ColMax, "Float64", "SimpleAggregateFunction(max, Float64)"},
			rollupColumn{ColSum, "Float64", "SimpleAggregateFunction(sum, Float64)"})
	}
	return append(out, rollupColumn{ColKafkaPartition, "Int32", "Int32"},
		rollupColumn{ColKafkaOffset, "Int64", "SimpleAggregateFunction(max, Int64)"},
		rollupColumn{ColStoredAt, "DateTime", "SimpleAggregateFunction(max, DateTime)"})
}

// sortKey returns the rollup's ORDER BY columns. On a modern server
// kafka_partition ends it, so that a merge never folds rows of two Kafka
// partitions into one (whose kafka_offset would then belong to neither). It
// costs nothing: a device (a service) is the partition key of its stream,
// so all its rows are in one Kafka partition, and rows that share the
// dimensions and the minute share kafka_partition too.
func (r *rollup) sortKey(fl flavor) []string {
	key := append([]string(nil), r.dims...)
	if r.values != "" {
		key = append(key, ColMetric)
	}
	key = append(key, ColMinute)
	if fl == modernTypes {
		key = append(key, ColKafkaPartition)
	}
	return key
}

// rollupOptions are the rollup's table options: the base table's, with
// twice its TTL (in whole days) when it has one.
func rollupOptions(o TableOptions) TableOptions {
	o.TTL = time.Duration(2*o.ttlDays()) * 24 * time.Hour
	return o
}

// createRollup returns the CREATE TABLE statement of the rollup under the
// (quoted, qualified) name, for types of flavor fl and the base table's
// options o.
func createRollup(name string, r *rollup, fl flavor, o TableOptions) string {
	var defs []string
	for _, c := range r.columns() {
		defs = append(defs, Quote(c.name)+" "+c.typ(fl))
	}
	key := make([]string, 0, len(r.sortKey(fl)))
	for _, k := range r.sortKey(fl) {
		key = append(key, Quote(k))
	}
	engine := "MergeTree()"
	if fl == modernTypes {
		engine = "AggregatingMergeTree()"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (\n    %s\n)\n", name, strings.Join(defs, ",\n    "))
	fmt.Fprintf(&b, "ENGINE = %s\n", engine)
	fmt.Fprintf(&b, "PARTITION BY %s\n", strings.Replace(o.partitionKey(), ColStoredAt, Quote(ColStoredAt), 1))
	b.WriteString("ORDER BY (" + strings.Join(key, ", ") + ")")
	if ro := rollupOptions(o); fl == modernTypes && ro.TTL > 0 {
		fmt.Fprintf(&b, "\nTTL %s\nSETTINGS ttl_only_drop_parts = 1", ttlExpr(ro))
	}
	return b.String()
}

// rollupRow is one row of a rollup: the partial aggregate of one group of
// the rows of one INSERT.
type rollupRow struct {
	dims     []string
	metric   string
	minute   int64 // Unix seconds
	count    uint64
	min, max float64
	sum      float64
	// next links the rows of one aggregate key (dimensions and minute),
	// for aggregate only.
	next *rollupRow
}

// minuteOf is the start of t's minute in Unix seconds, as the repair's
// intDiv computes it on the server: independent of any time zone.
func minuteOf(t time.Time) int64 {
	return t.Truncate(time.Minute).Unix()
}

// aggregate sums up rows by the rollup's groups, in the order the groups
// first appear (MergeTree sorts an INSERT's rows by the table's key
// itself). It reads the rows' Records, which Write has made sure of.
//
// It runs for every batch the store writes, so it allocates per group, not
// per row. An event's dimensions and minute are written into one scratch
// key and looked up once; the event's metrics are then found among the
// rows already made for that key, a short list (a device reports a few
// metrics), by comparing names. Looking each metric up in the map with a
// key of its own took twice as long
// (BenchmarkAggregate). A key with more than maxLinearMetrics rows goes to
// a map for the rest, so that a device with thousands of metrics costs no
// more than a map would.
func (r *rollup) aggregate(rows []sinks.Row) []*rollupRow {
	var (
		heads    = make(map[string]*rollupRow) // the first row of each key
		overflow map[metricKey]*rollupRow
		out      []*rollupRow
		dims     = make([]string, len(r.dims))
		key      []byte
	)
	// add adds v to the row of metric among those of head's key (head nil
	// for a key not seen yet, which it files under key) and returns the
	// key's first row.
	add := func(head *rollupRow, metric string, minute int64, v float64) *rollupRow {
		g, n := head, 0
		for ; g != nil && g.metric != metric; g = g.next {
			n++
		}
		if g == nil && n >= maxLinearMetrics {
			g = overflow[metricKey{head, metric}]
		}
		if g == nil {
			g = &rollupRow{metric: metric, minute: minute, min: v, max: v}
			// The rows of one key share its dimensions.
			switch {
			case head == nil:
				g.dims, head = slices.Clone(dims), g
				heads[string(key)] = g
			case n < maxLinearMetrics:
				g.dims, g.next, head.next = head.dims, head.next, g
			default:
				g.dims = head.dims
				if overflow == nil {
					overflow = make(map[metricKey]*rollupRow)
				}
				overflow[metricKey{head, metric}] = g
			}
			out = append(out, g)
		}
		g.count++
		g.min, g.max, g.sum = math.Min(g.min, v), math.Max(g.max, v), g.sum+v
		return head
	}
	for _, row := range rows {
		rec := row.Record
		for i, d := range r.dimIdx {
			dims[i], _ = rec.Str(d)
		}
		ts, _ := rec.Time(r.timeIdx)
		minute := minuteOf(ts)
		key = appendGroupKey(key[:0], dims, minute)
		head := heads[string(key)] // no allocation for the lookup
		if r.valuesIdx < 0 {
			add(head, "", minute, 0)
			continue
		}
		names, vals := rec.NumberMap(r.valuesIdx)
		for j, name := range names {
			head = add(head, name, minute, vals[j])
		}
	}
	return out
}

// maxLinearMetrics is how many rows of one key aggregate compares names
// with one by one before it looks the rest up in a map.
const maxLinearMetrics = 16

// metricKey is a row of aggregate past maxLinearMetrics: the first row of
// its key, and its metric.
type metricKey struct {
	head   *rollupRow
	metric string
}

// appendGroupKey appends the minute and the dimension values to a group's
// key, each value prefixed by its length so that no two lists of values
// give the same key.
func appendGroupKey(b []byte, dims []string, minute int64) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(minute))
	for _, d := range dims {
		b = appendKeyPart(b, d)
	}
	return b
}

func appendKeyPart(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// marker is the row that moves the rollup's progress over a range with
// nothing to sum up: it changes no count, sum, min or max.
func (r *rollup) marker() *rollupRow {
	return &rollupRow{dims: make([]string, len(r.dims)), count: 0, min: math.Inf(1), max: math.Inf(-1)}
}

// insertColumns returns the rollup's column names and one slice per column
// for rows, all of the Kafka partition, marked with the offset and stored
// at storedAt.
func (r *rollup) insertColumns(rows []*rollupRow, partition int32, offset int64, storedAt time.Time) ([]string, []any) {
	n := len(rows)
	var names []string
	var data []any
	for i, d := range r.dims {
		col := make([]string, n)
		for j, g := range rows {
			col[j] = g.dims[i]
		}
		names, data = append(names, d), append(data, col)
	}
	if r.values != "" {
		col := make([]string, n)
		for j, g := range rows {
			col[j] = g.metric
		}
		names, data = append(names, ColMetric), append(data, col)
	}
	minutes, counts := make([]time.Time, n), make([]uint64, n)
	mins, maxs, sums := make([]float64, n), make([]float64, n), make([]float64, n)
	parts, offsets, stored := make([]int32, n), make([]int64, n), make([]time.Time, n)
	for j, g := range rows {
		minutes[j], counts[j] = time.Unix(g.minute, 0).UTC(), g.count
		mins[j], maxs[j], sums[j] = g.min, g.max, g.sum
		parts[j], offsets[j], stored[j] = partition, offset, storedAt
	}
	names, data = append(names, ColMinute, ColCount), append(data, minutes, counts)
	if r.values != "" {
		names, data = append(names, ColMin, ColMax, ColSum), append(data, mins, maxs, sums)
	}
	names = append(names, ColKafkaPartition, ColKafkaOffset, ColStoredAt)
	return names, append(data, parts, offsets, stored)
}
