package clickhouse

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/sluicehq/sluice/schemas"
)

// readCounter counts the rows the server reads for the queries of a Sink
// (Sink.observe). Each query gets its own id and log_queries = 1, so that
// system.query_log has its read_rows (18.16 creates the log on the first
// such query); the driver's progress packets carry the same count, which
// the test checks against the log, and uses alone where a server keeps no
// query log.
type readCounter struct {
	mu     sync.Mutex
	prefix string
	ids    []string
	rows   map[string]uint64
}

func newReadCounter(name string) *readCounter {
	return &readCounter{prefix: fmt.Sprintf("sluice-test-%s-%d", name, time.Now().UnixNano()), rows: map[string]uint64{}}
}

func (c *readCounter) observe(ctx context.Context) context.Context {
	c.mu.Lock()
	id := fmt.Sprintf("%s-%d", c.prefix, len(c.ids))
	c.ids = append(c.ids, id)
	c.mu.Unlock()
	return ch.Context(ctx, ch.WithQueryID(id), ch.WithSettings(ch.Settings{"log_queries": 1}),
		ch.WithProgress(func(p *ch.Progress) {
			c.mu.Lock()
			c.rows[id] += p.Rows
			c.mu.Unlock()
		}))
}

// total returns the rows read by every query so far, and how many each read.
func (c *readCounter) total() (uint64, []uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var sum uint64
	per := make([]uint64, len(c.ids))
	for i, id := range c.ids {
		per[i] = c.rows[id]
		sum += c.rows[id]
	}
	return sum, per
}

// fromQueryLog sums read_rows of the counted queries in system.query_log
// (type 2 is QueryFinish; 18.16 has it as a UInt8), or returns ok=false
// where the server keeps no query log.
func (c *readCounter) fromQueryLog(t *testing.T, s *Sink) (uint64, bool) {
	t.Helper()
	ctx := context.Background()
	var n uint64
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = 'system' AND name = 'query_log'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		return 0, false
	}
	// The server logs a query's end after it has answered: SYSTEM FLUSH
	// LOGS right after may come first, and on a busy machine it did.
	// Wait until every counted query has ended in the log.
	c.mu.Lock()
	want := uint64(len(c.ids))
	c.mu.Unlock()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if err := s.conn.Exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
			t.Fatal(err)
		}
		if err := s.conn.QueryRow(ctx, "SELECT count() FROM system.query_log WHERE type != 1 AND startsWith(query_id, ?)", c.prefix+"-").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("system.query_log: %d of the %d queries ended after 10 s", n, want)
		}
	}
	var sum uint64
	q := "SELECT sum(read_rows) FROM system.query_log WHERE type = 2 AND startsWith(query_id, ?)"
	if err := s.conn.QueryRow(ctx, q, c.prefix+"-").Scan(&sum); err != nil {
		t.Fatal(err)
	}
	return sum, true
}

// resumeRows is how many rows TestResumeReadsLittle fills its tables with:
// 20 million (19,992,000: a multiple of 12 months and 1,000 devices) unless
// SLUICE_RESUME_ROWS says otherwise.
func resumeRows(t *testing.T) int {
	if v := os.Getenv("SLUICE_RESUME_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 12000 {
			t.Fatalf("SLUICE_RESUME_ROWS=%q: want a number of rows, at least 12000", v)
		}
		return n
	}
	return 20_000_000
}

// fillYear fills st's table with about n rows of 1,000 devices and eight
// Kafka partitions, stored over the first 27 days of each month of 2026:
// one server-side INSERT per month, of one block, so that each month's rows
// are one part (in the month layout) as merges leave an old month. Offsets
// grow with stored_at within each Kafka partition, as Write's would. It
// returns the rows per month.
func fillYear(t *testing.T, s *Sink, st *schemas.Stream, n int) int {
	t.Helper()
	perMonth := n / 12 / 1000 * 1000
	perDevice := perMonth / 1000
	ctx := ch.Context(context.Background(), ch.WithSettings(ch.Settings{
		"max_insert_block_size": perMonth + 1, "min_insert_block_size_rows": perMonth + 1, "min_insert_block_size_bytes": 0,
	}))
	for m := range 12 {
		start := time.Date(2026, time.Month(m+1), 1, 0, 0, 0, 0, time.UTC).Unix()
		// Device-major, so that rows arrive sorted by (device_id, ts) and
		// the server's sort is cheap; j is the row's place in time.
		q := fmt.Sprintf(`INSERT INTO %[1]s (event_id, device_id, ts, received_at, kafka_partition, kafka_offset, stored_at)
SELECT toString(g), concat('sensor-', toString(1000 + intDiv(i, %[2]d))), toDateTime(%[3]d + intDiv(j * %[4]d, %[5]d)) AS at, at, toInt32(g %% 8), toInt64(intDiv(g, 8)), at
FROM (SELECT number AS i, (i %% %[2]d) * 1000 + intDiv(i, %[2]d) AS j, %[6]d + j AS g FROM system.numbers LIMIT %[5]d)`,
			s.table(st), perDevice, start, 27*86400, perMonth, m*perMonth)
		if err := s.conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	return perMonth
}

// resumeFigures is what a worker's start-up read in one scenario.
type resumeFigures struct {
	rows     uint64   // rows read, in all
	perQuery []uint64 // by query, in order
	queryLog string   // system.query_log's sum, where the server has it
}

// startUp does what a worker does when it is assigned a partition
// (StoreDeliverer.Open): one Resume with a 10-minute dedupe window. It
// counts the rows the server read, on a fresh Sink, and checks the answer.
func startUp(t *testing.T, s *Sink, st *schemas.Stream, name string, partition int32, wantOffset int64, wantIDs int) resumeFigures {
	t.Helper()
	ctx := context.Background()
	fresh := reopen(t, s)
	ensure(t, fresh, st)
	c := newReadCounter(name)
	fresh.observe = c.observe
	res, err := fresh.Resume(ctx, st, partition, 10*time.Minute, 1_000_000)
	if err != nil || !res.OK || res.Offset != wantOffset {
		t.Fatalf("%s: Resume = %d, %v, %v; want %d", name, res.Offset, res.OK, err, wantOffset)
	}
	if len(res.IDs) != wantIDs {
		t.Fatalf("%s: Resume = %d ids; want %d", name, len(res.IDs), wantIDs)
	}
	f := resumeFigures{queryLog: "not kept by this server"}
	f.rows, f.perQuery = c.total()
	if sum, ok := c.fromQueryLog(t, s); ok {
		f.queryLog = strconv.FormatUint(sum, 10)
		if sum != f.rows {
			t.Errorf("%s: system.query_log says %d rows read, the progress packets %d", name, sum, f.rows)
		}
	}
	return f
}

// writeAt writes n rows of the Kafka partition through the Sink, stored at
// the given time and received a minute earlier, after the fill's offsets.
func writeAt(t *testing.T, s *Sink, st *schemas.Stream, partition int32, first int64, n int, at time.Time) {
	t.Helper()
	s.now = func() time.Time { return at }
	rows := iotRows(first, n, at.Add(-time.Minute))
	for i := range rows {
		rows[i].Event.ID = fmt.Sprintf("w-%d-%d", partition, rows[i].Offset)
	}
	if err := s.Write(context.Background(), st, partition, rows); err != nil {
		t.Fatal(err)
	}
}

// TestResumeReadsLittle measures what a worker's start-up (Progress and
// Recent of one Kafka partition) reads of a table of 20 million rows over
// twelve months, by month and by day partitions, counting read rows as the
// server reports them (progress packets, and system.query_log where the
// server keeps it). Two cases, since part pruning reads whole parts:
//
//   - fresh: the partition's newest rows are in the parts of recent
//     INSERTs, as on a running system, where merges fold them into big
//     parts only later: only those are read;
//   - merged: its newest rows were merged into one part with the rest of
//     their time partition (the worst case: a big merge just happened).
//     Resume then reads that time partition once, for the progress and the
//     dedupe window together: a twelfth of a year by month, 1/365 by day.
func TestResumeReadsLittle(t *testing.T) {
	n := resumeRows(t)
	for _, layout := range []string{PartitionMonth, PartitionDay} {
		t.Run(layout, func(t *testing.T) { testResumeReads(t, layout, n) })
	}
}

func testResumeReads(t *testing.T, layout string, n int) {
	s := openTest(t)
	ctx := context.Background()
	st := builtin(t, "iot_telemetry")
	s.opts.Partition = layout
	ensure(t, s, st)
	stopMerges(t, s, st)
	began := time.Now()
	perMonth := fillYear(t, s, st, n)
	filled := time.Since(began)
	t.Logf("filled in %v", filled)
	total := uint64(12 * perMonth)
	last := int64(12*perMonth/8 - 1) // each Kafka partition's last offset

	// Kafka partition 3 goes on: three batches at noon on December 28, the
	// day after the fill's last rows. Partition 5's last batch lands in the
	// fill's last second, in the time partition of the fill's last rows.
	noon := time.Date(2026, 12, 28, 12, 0, 0, 0, time.UTC)
	for b := range 3 {
		writeAt(t, s, st, 3, last+1+int64(b*1000), 1000, noon.Add(time.Duration(b)*time.Second))
	}
	end := time.Date(2026, 12, 27, 23, 59, 59, 0, time.UTC)
	writeAt(t, s, st, 5, last+1, 1000, end)
	var wantB uint64 // partition 5's rows within 10 minutes of its newest
	q := fmt.Sprintf("SELECT count() FROM %[1]s WHERE kafka_partition = 5 AND received_at >= (SELECT max(received_at) FROM %[1]s WHERE kafka_partition = 5) - 600", s.table(st))
	if err := s.conn.QueryRow(ctx, q).Scan(&wantB); err != nil {
		t.Fatal(err)
	}

	fresh := startUp(t, s, st, layout+"-fresh", 3, last+3000, 3000)

	id := map[string]string{PartitionMonth: "202612", PartitionDay: "20261227"}[layout]
	if err := s.conn.Exec(ctx, "SYSTEM START MERGES "+s.table(st)); err != nil {
		t.Fatal(err)
	}
	if err := s.conn.Exec(ctx, "OPTIMIZE TABLE "+s.table(st)+" PARTITION ID '"+id+"' FINAL"); err != nil {
		t.Fatal(err)
	}
	var partRows, parts uint64
	if err := s.conn.QueryRow(ctx, "SELECT sum(rows), count() FROM system.parts WHERE database = ? AND table = ? AND active AND partition_id = ?", s.db, st.Table, id).Scan(&partRows, &parts); err != nil {
		t.Fatal(err)
	}
	merged := startUp(t, s, st, layout+"-merged", 5, last+1000, int(wantB))

	pct := func(r uint64) string { return fmt.Sprintf("%.3f%%", 100*float64(r)/float64(total)) }
	t.Logf("%s partitions: %d rows over 12 months, filled in %v", layout, total, filled.Round(100*time.Millisecond))
	t.Logf("  fresh:  start-up read %d rows (%s of the table; 1/12 is 8.333%%), per query %v, system.query_log: %s",
		fresh.rows, pct(fresh.rows), fresh.perQuery, fresh.queryLog)
	t.Logf("  merged: start-up read %d rows (%s), per query %v, system.query_log: %s; the newest rows' partition %s holds %d rows in %d part(s)",
		merged.rows, pct(merged.rows), merged.perQuery, merged.queryLog, id, partRows, parts)

	margin := total / 200 // half a percent: system tables, the last batches
	if fresh.rows > total/12+margin {
		t.Errorf("fresh: read %d rows, more than a twelfth of %d", fresh.rows, total)
	}
	if merged.rows > partRows+margin || merged.rows > total/12+margin {
		t.Errorf("merged: read %d rows, more than the %d of the newest rows' time partition or a twelfth of %d", merged.rows, partRows, total)
	}
	if layout == PartitionDay && (fresh.rows > total/365 || merged.rows > total/300) {
		t.Errorf("day partitions: read %d and %d rows, want far less than by month", fresh.rows, merged.rows)
	}
}

// TestReadCounterCounts checks the measurement itself: a query that must
// read every row of a table is counted as reading them all.
func TestReadCounterCounts(t *testing.T) {
	s := openTest(t)
	st := builtin(t, "iot_telemetry")
	ensure(t, s, st)
	if err := s.conn.Exec(context.Background(), "INSERT INTO "+s.table(st)+" (kafka_partition, kafka_offset) SELECT toInt32(number % 8), toInt64(number) FROM system.numbers LIMIT 100000"); err != nil {
		t.Fatal(err)
	}
	c := newReadCounter("calibrate")
	var n uint64
	if err := s.conn.QueryRow(c.observe(context.Background()), "SELECT count() FROM "+s.table(st)+" WHERE kafka_partition = 3").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if read, _ := c.total(); n != 12500 || read != 100000 {
		t.Errorf("counted %d rows read for a scan of 100000 (matched %d)", read, n)
	}
	if sum, ok := c.fromQueryLog(t, s); ok && sum != 100000 {
		t.Errorf("system.query_log: %d rows read, want 100000", sum)
	}
}
