package loadgen

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/schemas"
)

// testRunner returns a runner that can allocate and render batches without
// any network.
func testRunner(t testing.TB, cfg Config) *runner {
	t.Helper()
	cfg, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	r := newRunner(cfg)
	r.start = time.Now()
	r.gen = newGenerator(cfg.RunID, cfg.Devices, cfg.Services, r.start)
	return r
}

// decodeBody splits a request body into its event objects.
func decodeBody(t testing.TB, body []byte, ndjson bool) []map[string]any {
	t.Helper()
	var objs []map[string]any
	if !ndjson {
		if err := json.Unmarshal(body, &objs); err != nil {
			t.Fatalf("body is not a JSON array of objects: %v\n%s", err, body)
		}
		return objs
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var o map[string]any
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			t.Fatalf("NDJSON line is not a JSON object: %v\n%s", err, sc.Bytes())
		}
		objs = append(objs, o)
	}
	return objs
}

func TestGeneratedEventsAreValid(t *testing.T) {
	reg := testkit.Registry(t)
	tests := []struct {
		name string
		cfg  Config
	}{
		{"defaults", Config{Mix: 0.5}},
		{"iot only, one device", Config{Mix: 1, Devices: 1}},
		{"iot, many devices", Config{Mix: 1, Devices: 12345}},
		{"logs only, one service", Config{Mix: 0, Services: 1}},
		{"logs, many services", Config{Mix: 0, Services: 60}},
		{"ndjson", Config{Mix: 0.3, NDJSON: true}},
		{"odd run id", Config{Mix: 0.5, RunID: "Run_1.a:b-c"}},
		{"batch of one", Config{Mix: 0.5, BatchSize: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.MaxEvents = 5000
			r := testRunner(t, tt.cfg)
			rng := rand.New(rand.NewPCG(1, 2))
			seen := map[string]bool{}
			nextSeq := [2]int64{1, 1}
			for {
				b, ok := r.alloc()
				if !ok {
					break
				}
				body := r.gen.appendBatch(nil, b, rng, time.Now(), r.cfg.NDJSON)
				objs := decodeBody(t, body, r.cfg.NDJSON)
				if len(objs) != b.n {
					t.Fatalf("batch %d: %d events in body, want %d", b.index, len(objs), b.n)
				}
				stream := reg.Stream(Streams[b.stream])
				for i, obj := range objs {
					if _, errs := stream.Validate(obj); errs != nil {
						t.Fatalf("%s event invalid: %v\n%v", stream.Name, errs, obj)
					}
					id, _ := obj["event_id"].(string)
					if want := EventID(r.cfg.RunID, stream.Name, b.first+int64(i)); id != want {
						t.Fatalf("event_id %q, want %q", id, want)
					}
					if len(id) > schemas.MaxEventIDLength {
						t.Fatalf("event_id %q longer than %d", id, schemas.MaxEventIDLength)
					}
					if seen[id] {
						t.Fatalf("duplicate event_id %q", id)
					}
					seen[id] = true
				}
				if b.first != nextSeq[b.stream] {
					t.Fatalf("batch %d starts at seq %d, want %d", b.index, b.first, nextSeq[b.stream])
				}
				nextSeq[b.stream] += int64(b.n)
			}
			if len(seen) != 5000 {
				t.Fatalf("%d distinct events, want 5000", len(seen))
			}
		})
	}
}

func TestEventContent(t *testing.T) {
	r := testRunner(t, Config{Mix: 1, Devices: 3, Services: 25, MaxEvents: 2000})
	rng := rand.New(rand.NewPCG(3, 4))
	iot := decodeBody(t, r.gen.appendBatch(nil, batch{stream: iotIdx, first: 1, n: 1000}, rng, time.Now(), false), false)
	logs := decodeBody(t, r.gen.appendBatch(nil, batch{stream: logsIdx, first: 1, n: 1000}, rng, time.Now(), false), false)

	devices := map[string][]float64{}
	for _, e := range iot {
		m := e["metrics"].(map[string]any)
		devices[e["device_id"].(string)] = append(devices[e["device_id"].(string)], m["temperature"].(float64))
		for _, k := range []string{"temperature", "humidity", "battery", "rssi"} {
			if _, ok := m[k]; !ok {
				t.Fatalf("metric %s missing: %v", k, e)
			}
		}
		if tags, _ := e["tags"].(map[string]any); tags["site"] == nil {
			t.Fatalf("tag site missing: %v", e)
		}
	}
	for _, id := range []string{"sensor-0001", "sensor-0002", "sensor-0003"} {
		temps := devices[id]
		if len(temps) < 100 {
			t.Fatalf("device %s: %d readings of 1000, want about a third", id, len(temps))
		}
		// A device's readings within a second hover around its baseline.
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, v := range temps {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
		if hi-lo > 3 || lo < -20 || hi > 60 {
			t.Errorf("device %s: temperatures %.2f..%.2f, want a plausible narrow band", id, lo, hi)
		}
	}

	services := map[string]bool{}
	var traced, attrs int
	for _, e := range logs {
		services[e["service"].(string)] = true
		if !strings.HasPrefix(e["host"].(string), e["service"].(string)+"-") {
			t.Errorf("host %q does not belong to service %q", e["host"], e["service"])
		}
		if e["message"].(string) == "" || strings.Contains(e["message"].(string), "{") {
			t.Errorf("bad message %q", e["message"])
		}
		if e["trace_id"] != nil {
			traced++
		}
		if e["attrs"] != nil {
			attrs++
		}
	}
	if !services["checkout"] || !services["api-25"] || len(services) < 20 {
		t.Errorf("services seen: %v", services)
	}
	if traced < 150 || traced > 500 || attrs < 450 || attrs > 750 {
		t.Errorf("%d of 1000 traced, %d with attrs: want an occasional trace_id and attrs on about 60%%", traced, attrs)
	}
}

func TestLevelDistribution(t *testing.T) {
	r := testRunner(t, Config{Mix: 0})
	rng := rand.New(rand.NewPCG(5, 6))
	const n = 50_000
	objs := decodeBody(t, r.gen.appendBatch(nil, batch{stream: logsIdx, first: 1, n: n}, rng, time.Now(), true), true)
	counts := map[string]int{}
	for _, o := range objs {
		counts[o["level"].(string)]++
	}
	tests := []struct {
		level  string
		lo, hi float64 // plausible share, in percent
	}{
		{"trace", 0.5, 2},
		{"debug", 6, 10},
		{"info", 70, 80},
		{"warn", 10, 14},
		{"error", 3, 5},
		{"fatal", 0.2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.level, func(t *testing.T) {
			pct := 100 * float64(counts[tt.level]) / n
			if pct < tt.lo || pct > tt.hi {
				t.Errorf("%s: %.2f%% of events, want %g..%g%%", tt.level, pct, tt.lo, tt.hi)
			}
		})
	}
}

func TestDeterministicAllocation(t *testing.T) {
	tests := []struct {
		mix       float64
		batch     int
		max       int64
		iot, logs int64
	}{
		{0, 100, 1000, 0, 1000},
		{1, 100, 1000, 1000, 0},
		{0.5, 100, 1000, 500, 500},
		{0.7, 100, 1000, 700, 300},
		{0.25, 10, 1000, 250, 750},
		{0.5, 300, 1000, 400, 600}, // last batch (logs) is short: 100 events
		{1.0 / 3, 7, 100, 30, 70},  // batches 2, 5, 8, 11 and the short 14th
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("mix=%g/batch=%d/max=%d", tt.mix, tt.batch, tt.max), func(t *testing.T) {
			cfg := Config{Mix: tt.mix, BatchSize: tt.batch, MaxEvents: tt.max, RunID: "det"}
			var runs [2][]batch
			for i := range runs {
				r := testRunner(t, cfg)
				for {
					b, ok := r.alloc()
					if !ok {
						break
					}
					runs[i] = append(runs[i], b)
				}
			}
			if fmt.Sprint(runs[0]) != fmt.Sprint(runs[1]) {
				t.Fatalf("allocations differ between runs:\n%v\n%v", runs[0], runs[1])
			}
			var got [2]int64
			for _, b := range runs[0] {
				got[b.stream] += int64(b.n)
			}
			if got[iotIdx] != tt.iot || got[logsIdx] != tt.logs {
				t.Errorf("iot=%d logs=%d, want %d and %d", got[iotIdx], got[logsIdx], tt.iot, tt.logs)
			}
		})
	}
}

func TestSameRunIDSamePayload(t *testing.T) {
	now := time.Now()
	render := func() []byte {
		r := testRunner(t, Config{Mix: 0.5, RunID: "same"})
		w := &worker{pcg: rand.NewPCG(0, 0)}
		w.rng = rand.New(w.pcg)
		var out []byte
		for range 4 {
			b, _ := r.alloc()
			w.pcg.Seed(fnvString(r.cfg.RunID), b.index)
			out = r.gen.appendBatch(out, b, w.rng, now, true)
		}
		return out
	}
	if a, b := render(), render(); !bytes.Equal(a, b) {
		t.Fatal("two renderings of the same run id and time differ")
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" for valid
	}{
		{"zero is valid", Config{}, ""},
		{"bad scheme", Config{URL: "ftp://x"}, "url"},
		{"no host", Config{URL: "http://"}, "url"},
		{"negative rate", Config{Rate: -1}, "rate"},
		{"mix above 1", Config{Mix: 1.5}, "mix"},
		{"run id with space", Config{RunID: "a b"}, "run id"},
		{"run id too long", Config{RunID: strings.Repeat("x", 65)}, "run id"},
		{"negative batch", Config{BatchSize: -1}, "batch size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.cfg.withDefaults()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"1", time.Second},
		{" 3 ", 3 * time.Second},
		{"0.5", 500 * time.Millisecond},
		{"-2", 0},
		{"junk", 0},
		{"99999", maxRetryAfter},
		{now.Add(7 * time.Second).Format(http.TimeFormat), 7 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func BenchmarkAppendBatch(b *testing.B) {
	for _, stream := range Streams {
		b.Run(stream, func(b *testing.B) {
			r := testRunner(b, Config{Mix: 0.5})
			rng := rand.New(rand.NewPCG(1, 1))
			idx := iotIdx
			if stream == StreamLogs {
				idx = logsIdx
			}
			const n = 100
			var buf []byte
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				buf = r.gen.appendBatch(buf[:0], batch{stream: idx, first: int64(i*n + 1), n: n}, rng, time.Now(), false)
			}
			b.SetBytes(int64(len(buf)))
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
