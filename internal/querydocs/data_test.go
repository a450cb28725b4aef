package querydocs

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// The events the queries are run on, and the answers each query must give
// on them, computed here rather than read back from ClickHouse.

// plantedTrace is the trace the document's examples use (trace_log_lines),
// made the longest of the data.
const plantedTrace = "4bf92f3577b34da6a3ce929d0e0e4736"

type reading struct {
	device   string
	ts, recv time.Time // millisecond precision
	names    []string
	values   []float64
	tags     [][2]string
}

type logLine struct {
	ts, recv                               time.Time
	service, level, message, host, traceID string
	attrs                                  [][2]string
}

type dataset struct {
	// now is the server's clock when the data was made; every event of the
	// last hour lies between now-50m and now-10s, far from the queries'
	// window edges, so that the answers hold for minutes after.
	now      time.Time
	readings []reading
	lines    []logLine
}

var (
	activeDevices = []string{"sensor-0040", "sensor-0041", "sensor-0042", "sensor-0043", "sensor-0044", "sensor-0045",
		"sensor-0046", "sensor-0047", "sensor-0048", "sensor-0049", "sensor-0050", "sensor-0051"}
	// Devices that stopped reporting 31, 36 and 41 minutes ago.
	silentDevices = map[string]time.Duration{"sensor-0060": 31 * time.Minute, "sensor-0061": 36 * time.Minute, "sensor-0062": 41 * time.Minute}
	// Active devices that also sent a heartbeat without metrics two hours
	// ago.
	heartbeatDevices = []string{"sensor-0043", "sensor-0048"}
	// A device last heard from two days ago: outside every window.
	goneDevice = "sensor-0099"
	services   = []string{"checkout", "payments", "auth", "search", "inventory", "shipping"}
	sites      = []string{"plant-a", "plant-b", "warehouse-north"}
	regions    = []string{"eu-west-1", "us-east-1"}
)

func makeDataset(now time.Time) *dataset {
	rng := rand.New(rand.NewPCG(8, 6))
	d := &dataset{now: now}
	ms := func(max int) time.Duration { return time.Duration(rng.IntN(max)) * time.Millisecond }

	addReading := func(dev string, ts time.Time, i int) {
		r := reading{device: dev, ts: ts, recv: ts.Add(50*time.Millisecond + ms(850))}
		num := int(dev[len(dev)-2]-'0')*10 + int(dev[len(dev)-1]-'0')
		// sensor-0042's firmware leaves temperature out of every third
		// reading: averages must not count those as 0.
		if !(dev == "sensor-0042" && i%3 == 2) {
			r.names = append(r.names, "temperature")
			r.values = append(r.values, math.Round((18+float64(num%7)+2*math.Sin(float64(i)/7)+rng.NormFloat64()*0.2)*100)/100)
		}
		r.names = append(r.names, "humidity", "battery", "rssi")
		r.values = append(r.values, math.Round((40+rng.Float64()*20)*10)/10, math.Round((90-float64(i)*0.05)*10)/10, float64(-60-rng.IntN(20)))
		if num == 45 || num == 46 {
			r.names = append(r.names, "co2")
			r.values = append(r.values, float64(420+rng.IntN(400)))
		}
		r.tags = [][2]string{{"site", sites[num%len(sites)]}, {"fw", fmt.Sprintf("1.%d.0", num%4)}}
		d.readings = append(d.readings, r)
	}

	start := now.Add(-50 * time.Minute)
	for _, dev := range activeDevices {
		for i := range 50 {
			ts := start.Add(time.Duration(i)*time.Minute + time.Duration(rng.IntN(40))*time.Second + ms(1000))
			addReading(dev, ts, i)
			if dev == "sensor-0042" { // a second reading in most minutes
				addReading(dev, ts.Add(15*time.Second+ms(1000)), i+100)
			}
		}
		// Three hours ago: outside the last hour, inside the last day.
		addReading(dev, now.Add(-3*time.Hour+ms(1000)), 7)
	}
	for dev, silentFor := range silentDevices {
		last := now.Add(-silentFor)
		for ts, i := last, 0; ts.After(start); ts, i = ts.Add(-2*time.Minute), i+1 {
			addReading(dev, ts.Add(-ms(1000)), i)
		}
	}
	// Two hours ago, two devices sent a heartbeat with no metric at all,
	// alone in their Kafka partitions at that time: the sink writes each
	// batch of them to iot_telemetry_1m as a marker row (count 0, minute
	// 1970-01-01), which the rollup queries must leave out.
	for i, dev := range heartbeatDevices {
		ts := now.Add(-2*time.Hour + time.Duration(i)*time.Second + ms(1000))
		d.readings = append(d.readings, reading{device: dev, ts: ts, recv: ts.Add(50*time.Millisecond + ms(850)),
			tags: [][2]string{{"site", sites[0]}}})
	}
	old := now.Add(-48 * time.Hour)
	d.readings = append(d.readings, reading{device: goneDevice, ts: old, recv: old.Add(time.Second),
		names: []string{"pressure"}, values: []float64{1013.2}, tags: [][2]string{{"site", "lab-1"}}})

	// Logs: ordinary lines, short traces, the planted long trace, and lines
	// three hours old.
	level := func(svc string) string {
		x := rng.IntN(100)
		errPct := 8
		if svc == "payments" {
			errPct = 25
		}
		switch {
		case x < 2:
			return "fatal"
		case x < 2+errPct:
			return "error"
		case x < 12+errPct:
			return "warn"
		case x < 20+errPct:
			return "debug"
		}
		return "info"
	}
	addLine := func(ts time.Time, svc, lvl, msg, trace string) {
		l := logLine{ts: ts, recv: ts.Add(20*time.Millisecond + ms(500)), service: svc, level: lvl, message: msg,
			host: fmt.Sprintf("%s-%d", svc, 1+rng.IntN(3)), traceID: trace}
		if rng.IntN(2) == 0 {
			l.attrs = [][2]string{{"region", regions[rng.IntN(len(regions))]}}
		}
		d.lines = append(d.lines, l)
	}
	for _, svc := range services {
		for i := range 55 {
			ts := start.Add(time.Duration(rng.Int64N(int64(50*time.Minute-10*time.Second))) + ms(1000)).Truncate(time.Millisecond)
			lvl := level(svc)
			addLine(ts, svc, lvl, fmt.Sprintf("%s %s line %d", svc, lvl, i), "")
		}
		addLine(now.Add(-3*time.Hour+ms(60000)), svc, "error", svc+" old error", "")
	}
	for i := range 30 {
		trace := fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64())
		ts := start.Add(time.Duration(rng.Int64N(int64(40 * time.Minute)))).Truncate(time.Millisecond)
		for j := range 2 + rng.IntN(4) {
			svc := services[rng.IntN(len(services))]
			lvl := "info"
			if rng.IntN(6) == 0 {
				lvl = "error"
			}
			addLine(ts, svc, lvl, fmt.Sprintf("trace %d step %d", i, j), trace)
			ts = ts.Add(time.Millisecond + ms(4000))
		}
	}
	t0 := now.Add(-20*time.Minute + 123*time.Millisecond)
	for i, step := range []struct {
		after      time.Duration
		svc, level string
		msg        string
	}{
		{0, "checkout", "info", "POST /api/v1/orders: order A-17 received"},
		{1200 * time.Millisecond, "payments", "info", "charging card for order A-17"},
		{20500 * time.Millisecond, "payments", "warn", "retrying call to bank (attempt 2)"},
		{45 * time.Second, "payments", "error", "payment declined for order A-17: insufficient funds"},
		{80*time.Second + 7*time.Millisecond, "checkout", "info", "order A-17 put on hold"},
		{95*time.Second + 432*time.Millisecond, "shipping", "info", "shipment for order A-17 cancelled"},
	} {
		addLine(t0.Add(step.after), step.svc, step.level, fmt.Sprintf("%d %s", i, step.msg), plantedTrace)
	}
	addLine(now.Add(-3*time.Hour), "checkout", "info", "an older line of the same trace id", plantedTrace)
	return d
}

// The queries' windows, as the document writes them.
func (d *dataset) inLastHour(ts time.Time) bool {
	return !ts.Before(d.now.Add(-time.Hour)) && !ts.After(d.now)
}

func (d *dataset) inLastDay(ts time.Time) bool { return !ts.Before(d.now.Add(-24 * time.Hour)) }

// minuteOf is the start of ts's minute in Unix seconds, as the rollups
// hold it.
func minuteOf(ts time.Time) int64 { return ts.Unix() / 60 * 60 }

// minuteInLastHour is the rollup queries' window: the minutes that start
// within the last hour, minute >= now() - INTERVAL 1 HOUR AND minute <= now().
func (d *dataset) minuteInLastHour(minute int64) bool {
	return minute >= d.now.Add(-time.Hour).Unix() && minute <= d.now.Unix()
}

// valueAgg is what a rollup holds of a group of metric values.
type valueAgg struct {
	n             int
	min, max, sum float64
}

func (a *valueAgg) add(v float64) {
	if a.n == 0 || v < a.min {
		a.min = v
	}
	if a.n == 0 || v > a.max {
		a.max = v
	}
	a.n++
	a.sum += v
}

// checkAgg compares a row of rollup_metrics_per_minute with the values it
// sums up: the count, minimum and maximum exactly, the sum and the average
// up to the rounding of adding them in another order.
func checkAgg(t *testing.T, what string, r row, w *valueAgg) {
	t.Helper()
	if got := num(t, r, "value_count"); int(got) != w.n {
		t.Errorf("%s: value_count %v, want %d", what, got, w.n)
	}
	if got := num(t, r, "value_min"); got != w.min {
		t.Errorf("%s: value_min %v, want %v", what, got, w.min)
	}
	if got := num(t, r, "value_max"); got != w.max {
		t.Errorf("%s: value_max %v, want %v", what, got, w.max)
	}
	if got := num(t, r, "value_sum"); !near(got, w.sum) {
		t.Errorf("%s: value_sum %v, want %v", what, got, w.sum)
	}
	if got := num(t, r, "value_avg"); !near(got, w.sum/float64(w.n)) {
		t.Errorf("%s: value_avg %v, want %v", what, got, w.sum/float64(w.n))
	}
}

// near compares sums of the same float64 values added in another order.
func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// row is one result row, by column name.
type row map[string]any

// check tests a query's rows against the data.
type check func(t *testing.T, d *dataset, rows []row)

// answerChecks hold, per query name, the answer each documented query must
// give on the dataset, whatever the layout. A query without one must only
// return rows.
var answerChecks = map[string]check{
	"latest_value_per_device": func(t *testing.T, d *dataset, rows []row) {
		type key struct{ device, metric string }
		type latest struct {
			ts    time.Time
			value float64
		}
		want := map[key]latest{}
		for _, r := range d.readings {
			if !d.inLastHour(r.ts) {
				continue
			}
			for i, n := range r.names {
				k := key{r.device, n}
				if cur, ok := want[k]; !ok || r.ts.After(cur.ts) {
					want[k] = latest{r.ts, r.values[i]}
				}
			}
		}
		if len(rows) != len(want) {
			t.Errorf("%d rows, want %d (one per device and metric of the last hour)", len(rows), len(want))
		}
		for _, r := range rows {
			k := key{str(t, r, "device_id"), str(t, r, "metric")}
			w, ok := want[k]
			if !ok {
				t.Errorf("row for %v, which sent no %s in the last hour", k.device, k.metric)
				continue
			}
			if got := num(t, r, "latest_value"); got != w.value {
				t.Errorf("%s %s: latest_value %v, want %v (of %s)", k.device, k.metric, got, w.value, w.ts.Format(time.StampMilli))
			}
			if got := tm(t, r, "latest_ts"); got.Unix() != w.ts.Unix() {
				t.Errorf("%s %s: latest_ts %s, want %s", k.device, k.metric, got, w.ts)
			}
		}
	},
	"metric_per_minute": func(t *testing.T, d *dataset, rows []row) {
		sum, n := map[int64]float64{}, map[int64]int{}
		for _, r := range d.readings {
			if r.device != "sensor-0042" || !d.inLastHour(r.ts) {
				continue
			}
			if i := slices.Index(r.names, "temperature"); i >= 0 {
				m := r.ts.Unix() / 60 * 60
				sum[m] += r.values[i]
				n[m]++
			}
		}
		if len(rows) != len(n) {
			t.Errorf("%d rows, want %d minutes", len(rows), len(n))
		}
		var prev int64
		for _, r := range rows {
			m := tm(t, r, "minute").Unix()
			if m <= prev {
				t.Errorf("minutes out of order at %d", m)
			}
			prev = m
			if n[m] == 0 {
				t.Errorf("minute %s: no temperature was sent then", time.Unix(m, 0))
				continue
			}
			if got, want := num(t, r, "avg_value"), sum[m]/float64(n[m]); math.Abs(got-want) > 1e-9*math.Abs(want) {
				t.Errorf("minute %s: avg_value %v, want %v (of %d readings)", time.Unix(m, 0), got, want, n[m])
			}
		}
	},
	"silent_devices": func(t *testing.T, d *dataset, rows []row) {
		// Longest silent first.
		var want []string
		for dev := range silentDevices {
			want = append(want, dev)
		}
		sort.Slice(want, func(i, j int) bool { return silentDevices[want[i]] > silentDevices[want[j]] })
		var got []string
		for _, r := range rows {
			got = append(got, str(t, r, "device_id"))
			if s := num(t, r, "silent_seconds"); s < 600 {
				t.Errorf("%s: silent_seconds %v, under 10 minutes", got[len(got)-1], s)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("silent devices %v, want %v", got, want)
		}
	},
	"error_rate_per_service": func(t *testing.T, d *dataset, rows []row) {
		type key struct {
			minute  int64
			service string
		}
		errs, all := map[key]int{}, map[key]int{}
		for _, l := range d.lines {
			if !d.inLastHour(l.ts) {
				continue
			}
			k := key{l.ts.Unix() / 60 * 60, l.service}
			all[k]++
			if l.level == "error" || l.level == "fatal" {
				errs[k]++
			}
		}
		if len(rows) != len(all) {
			t.Errorf("%d rows, want %d (minute, service) pairs", len(rows), len(all))
		}
		for _, r := range rows {
			k := key{tm(t, r, "minute").Unix(), str(t, r, "service")}
			if all[k] == 0 {
				t.Errorf("%v: no lines then", k)
				continue
			}
			if got, want := num(t, r, "error_rate"), float64(errs[k])/float64(all[k]); math.Abs(got-want) > 1e-12 {
				t.Errorf("%v: error_rate %v, want %v (%d of %d)", k, got, want, errs[k], all[k])
			}
		}
	},
	"slowest_traces": func(t *testing.T, d *dataset, rows []row) {
		first, last, lines := map[string]time.Time{}, map[string]time.Time{}, map[string]int{}
		for _, l := range d.lines {
			if l.traceID == "" || !d.inLastHour(l.ts) {
				continue
			}
			if f, ok := first[l.traceID]; !ok || l.ts.Before(f) {
				first[l.traceID] = l.ts
			}
			if l.ts.After(last[l.traceID]) {
				last[l.traceID] = l.ts
			}
			lines[l.traceID]++
		}
		var spans []int64
		for id := range first {
			spans = append(spans, last[id].Sub(first[id]).Milliseconds())
		}
		slices.Sort(spans)
		slices.Reverse(spans)
		spans = spans[:min(20, len(spans))]
		var got []int64
		for _, r := range rows {
			got = append(got, int64(num(t, r, "span_ms")))
		}
		if !slices.Equal(got, spans) {
			t.Errorf("spans %v, want %v", got, spans)
		}
		if len(rows) > 0 {
			top := rows[0]
			if id := str(t, top, "trace_id"); id != plantedTrace {
				t.Errorf("slowest trace %s, want %s", id, plantedTrace)
			} else if n := num(t, top, "lines"); int(n) != lines[plantedTrace] {
				t.Errorf("trace %s: %v lines, want %d", id, n, lines[plantedTrace])
			}
			if s := str(t, top, "services"); s != "checkout, payments, shipping" {
				t.Errorf("services %q, want \"checkout, payments, shipping\"", s)
			}
		}
	},
	"trace_log_lines": func(t *testing.T, d *dataset, rows []row) {
		var want []string
		for _, l := range d.lines {
			if l.traceID == plantedTrace && d.inLastHour(l.ts) {
				want = append(want, l.message)
			}
		}
		slices.Sort(want) // the messages start with their step number
		var got []string
		for _, r := range rows {
			got = append(got, str(t, r, "message"))
		}
		if !slices.Equal(got, want) {
			t.Errorf("lines %q, want %q", got, want)
		}
	},
	"rollup_metrics_per_minute": func(t *testing.T, d *dataset, rows []row) {
		type key struct {
			device, metric string
			minute         int64
		}
		want := map[key]*valueAgg{}
		for _, r := range d.readings {
			m := minuteOf(r.ts)
			if !d.minuteInLastHour(m) {
				continue
			}
			for i, n := range r.names {
				k := key{r.device, n, m}
				if want[k] == nil {
					want[k] = &valueAgg{}
				}
				want[k].add(r.values[i])
			}
		}
		if len(rows) != len(want) {
			t.Errorf("%d rows, want %d (device, metric, minute) groups", len(rows), len(want))
		}
		var prev key
		for i, r := range rows {
			k := key{str(t, r, "device_id"), str(t, r, "metric"), tm(t, r, "minute").Unix()}
			if i > 0 && (k.device < prev.device || k.device == prev.device && (k.metric < prev.metric || k.metric == prev.metric && k.minute <= prev.minute)) {
				t.Errorf("row %v after %v: not in order", k, prev)
			}
			prev = k
			w := want[k]
			if w == nil {
				t.Errorf("row %v: no such values sent then", k)
				continue
			}
			checkAgg(t, fmt.Sprintf("%s %s %s", k.device, k.metric, time.Unix(k.minute, 0).UTC().Format(time.TimeOnly)), r, w)
		}
	},
	"rollup_metric_per_hour": func(t *testing.T, d *dataset, rows []row) {
		// The hours are the server's time zone's: check the totals of the
		// window, and baseChecks each hour. The window starts at the start
		// of the hour 23 hours ago, between 24 and 23 hours ago, where the
		// dataset has no reading: inLastDay tells the same.
		var want valueAgg
		for _, r := range d.readings {
			if r.device != "sensor-0042" || r.ts.After(d.now) || !d.inLastDay(r.ts) {
				continue
			}
			if i := slices.Index(r.names, "temperature"); i >= 0 {
				want.add(r.values[i])
			}
		}
		if len(rows) < 2 {
			t.Errorf("%d rows, want at least 2 (readings of the last hour, and of three hours ago)", len(rows))
		}
		var got valueAgg
		var prev time.Time
		for i, r := range rows {
			h := tm(t, r, "hour")
			if i > 0 && !h.After(prev) {
				t.Errorf("hour %s after %s: not in order", h, prev)
			}
			prev = h
			n := int(num(t, r, "value_count"))
			if n == 0 {
				t.Errorf("hour %s: no values", h)
				continue
			}
			lo, hi := num(t, r, "value_min"), num(t, r, "value_max")
			if got.n == 0 || lo < got.min {
				got.min = lo
			}
			if got.n == 0 || hi > got.max {
				got.max = hi
			}
			got.n += n
			got.sum += num(t, r, "value_avg") * float64(n)
		}
		if got.n != want.n || got.min != want.min || got.max != want.max || math.Abs(got.sum-want.sum) > 1e-6*math.Abs(want.sum) {
			t.Errorf("the day's temperatures of sensor-0042: %d values from %v to %v summing to %v, want %d from %v to %v summing to %v",
				got.n, got.min, got.max, got.sum, want.n, want.min, want.max, want.sum)
		}
	},
	"rollup_error_rate_per_service": func(t *testing.T, d *dataset, rows []row) {
		type key struct {
			minute  int64
			service string
		}
		errs, all := map[key]int{}, map[key]int{}
		for _, l := range d.lines {
			k := key{minuteOf(l.ts), l.service}
			if !d.minuteInLastHour(k.minute) {
				continue
			}
			all[k]++
			if l.level == "error" || l.level == "fatal" {
				errs[k]++
			}
		}
		if len(rows) != len(all) {
			t.Errorf("%d rows, want %d (minute, service) pairs", len(rows), len(all))
		}
		for _, r := range rows {
			k := key{tm(t, r, "minute").Unix(), str(t, r, "service")}
			if all[k] == 0 {
				t.Errorf("%v: no lines then", k)
				continue
			}
			if got := num(t, r, "lines"); int(got) != all[k] {
				t.Errorf("%v: %v lines, want %d", k, got, all[k])
			}
			if got, want := num(t, r, "error_rate"), float64(errs[k])/float64(all[k]); math.Abs(got-want) > 1e-12 {
				t.Errorf("%v: error_rate %v, want %v (%d of %d)", k, got, want, errs[k], all[k])
			}
		}
	},
	"device_ids": func(t *testing.T, d *dataset, rows []row) {
		set := map[string]bool{}
		for _, r := range d.readings {
			if d.inLastDay(r.ts) {
				set[r.device] = true
			}
		}
		want := slices.Sorted(maps.Keys(set))
		var got []string
		for _, r := range rows {
			got = append(got, str(t, r, "device_id"))
		}
		if !slices.Equal(got, want) {
			t.Errorf("devices %v, want %v", got, want)
		}
	},
	"metric_names": func(t *testing.T, d *dataset, rows []row) {
		set := map[string]bool{}
		for _, r := range d.readings {
			if d.inLastDay(r.ts) {
				for _, n := range r.names {
					set[n] = true
				}
			}
		}
		want := slices.Sorted(maps.Keys(set))
		var got []string
		for _, r := range rows {
			got = append(got, str(t, r, "metric"))
		}
		if !slices.Equal(got, want) {
			t.Errorf("metrics %v, want %v", got, want)
		}
	},
}

// Column accessors: a missing column or an unexpected type fails the test,
// naming the column, so that a query that changes its output shows up.

func col(t *testing.T, r row, name string) any {
	t.Helper()
	v, ok := r[name]
	if !ok {
		cols := make([]string, 0, len(r))
		for c := range r {
			cols = append(cols, c)
		}
		slices.Sort(cols)
		t.Fatalf("no column %s in the result (columns: %s)", name, strings.Join(cols, ", "))
	}
	return v
}

func str(t *testing.T, r row, name string) string {
	t.Helper()
	switch v := col(t, r, name).(type) {
	case string:
		return v
	case *string:
		if v != nil {
			return *v
		}
	}
	t.Fatalf("column %s: %T is not a string", name, r[name])
	return ""
}

func num(t *testing.T, r row, name string) float64 {
	t.Helper()
	switch v := col(t, r, name).(type) {
	case float64:
		return v
	case float32:
		return float64(v)
	case int8:
		return float64(v)
	case int16:
		return float64(v)
	case int32:
		return float64(v)
	case int64:
		return float64(v)
	case uint8:
		return float64(v)
	case uint16:
		return float64(v)
	case uint32:
		return float64(v)
	case uint64:
		return float64(v)
	}
	t.Fatalf("column %s: %T is not a number", name, r[name])
	return 0
}

func tm(t *testing.T, r row, name string) time.Time {
	t.Helper()
	if v, ok := col(t, r, name).(time.Time); ok {
		return v
	}
	t.Fatalf("column %s: %T is not a time", name, r[name])
	return time.Time{}
}
