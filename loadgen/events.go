package loadgen

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Names of the built-in streams loadgen produces.
const (
	// StreamIoT is the stream of device readings.
	StreamIoT = "iot_telemetry"
	// StreamLogs is the stream of application log records.
	StreamLogs = "app_logs"
)

// Streams lists the streams loadgen produces, in the order Summary reports them.
var Streams = []string{StreamIoT, StreamLogs}

// Stream indexes into per-stream arrays; keeping them as small integers keeps
// the hot path free of map lookups.
const (
	iotIdx  = 0
	logsIdx = 1
)

// timeLayout matches how Sluice itself writes timestamps.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// EventID returns the event_id loadgen gives the seq-th event (counting from
// 1) of a stream in a run. Tests use it to enumerate what a run produced.
func EventID(runID, stream string, seq int64) string {
	return string(appendEventID(nil, runID, stream, seq))
}

func appendEventID(b []byte, runID, stream string, seq int64) []byte {
	b = append(b, runID...)
	b = append(b, '-')
	b = append(b, stream...)
	b = append(b, '-')
	return strconv.AppendInt(b, seq, 10)
}

// batch is one request's worth of events: a contiguous run of sequence
// numbers of a single stream, because the collector takes one stream per
// request.
type batch struct {
	index  uint64 // position in the run; seeds the batch's payload
	stream int
	first  int64 // sequence number of the first event
	n      int
}

var sites = []string{"plant-a", "plant-b", "plant-c", "warehouse-north", "warehouse-south", "office-hq", "depot-east", "lab-1"}

var models = []string{"th-200", "th-210", "aq-50", "pm-3", "vb-9"}

// device holds what stays the same about one simulated device, so that its
// readings form a plausible series instead of white noise.
type device struct {
	id       []byte // JSON: "device_id":"sensor-0042"
	tags     []byte // JSON: ,"tags":{...}
	tempBase float64
	tempAmp  float64
	phase    float64
	humBase  float64
	batt0    float64 // battery level at the start of the run
	drain    float64 // battery percent lost per hour
	rssi     int
	epochTS  bool // some firmware reports epoch milliseconds, not RFC 3339
	pressure bool
	co2      bool
	vibr     bool
}

var serviceNames = []string{
	"checkout", "payments", "auth", "search", "inventory", "shipping", "cart",
	"catalog", "orders", "users", "notifications", "recommendations", "billing",
	"gateway", "reviews", "pricing", "fraud", "email", "media", "analytics",
}

// service holds one simulated service and the hosts it runs on.
type service struct {
	name  string
	field []byte   // JSON: "service":"checkout"
	hosts [][]byte // JSON: ,"host":"checkout-2"
}

// generator renders events. It is immutable after newGenerator and shared by
// all workers; per-batch randomness comes from the caller's RNG.
type generator struct {
	runID    string
	start    time.Time
	devices  []device
	services []service
}

func newGenerator(runID string, devices, services int, start time.Time) *generator {
	g := &generator{runID: runID, start: start}
	// Device and service traits derive from the run id so that two runs with
	// the same id describe the same fleet.
	h := fnv.New64a()
	h.Write([]byte(runID))
	rng := rand.New(rand.NewPCG(h.Sum64(), 0x5eed))

	width := max(4, len(strconv.Itoa(devices)))
	g.devices = make([]device, devices)
	for i := range g.devices {
		d := &g.devices[i]
		id := fmt.Sprintf("sensor-%0*d", width, i+1)
		d.id = appendKey(nil, "device_id")
		d.id = appendString(d.id, id)
		model := models[rng.IntN(len(models))]
		fw := fmt.Sprintf("%d.%d.%d", 1+rng.IntN(3), rng.IntN(10), rng.IntN(20))
		d.tags = append(d.tags, `,"tags":{`...)
		d.tags = appendKey(d.tags, "site")
		d.tags = appendString(d.tags, sites[rng.IntN(len(sites))])
		d.tags = append(d.tags, ',')
		d.tags = appendKey(d.tags, "model")
		d.tags = appendString(d.tags, model)
		d.tags = append(d.tags, ',')
		d.tags = appendKey(d.tags, "fw")
		d.tags = appendString(d.tags, fw)
		d.tags = append(d.tags, '}')
		d.tempBase = 16 + rng.Float64()*12
		d.tempAmp = 0.5 + rng.Float64()*3
		d.phase = rng.Float64() * 2 * math.Pi
		d.humBase = 30 + rng.Float64()*35
		d.batt0 = 40 + rng.Float64()*60
		d.drain = 0.05 + rng.Float64()*0.5
		d.rssi = -45 - rng.IntN(50)
		d.epochTS = rng.IntN(10) == 0
		d.pressure = strings.HasPrefix(model, "th-") && rng.IntN(2) == 0
		d.co2 = model == "aq-50"
		d.vibr = model == "vb-9"
	}

	g.services = make([]service, services)
	for i := range g.services {
		s := &g.services[i]
		if i < len(serviceNames) {
			s.name = serviceNames[i]
		} else {
			s.name = "api-" + strconv.Itoa(i+1)
		}
		s.field = appendKey(nil, "service")
		s.field = appendString(s.field, s.name)
		replicas := 1 + rng.IntN(6)
		for r := range replicas {
			host := append([]byte(nil), `,"host":`...)
			host = appendString(host, s.name+"-"+strconv.Itoa(r+1))
			s.hosts = append(s.hosts, host)
		}
	}
	return g
}

// appendBatch renders b's events as a JSON array (or NDJSON) onto buf. now is
// when the batch is built; events get timestamps slightly before it, as a
// device or log shipper that buffers briefly would send them.
func (g *generator) appendBatch(buf []byte, b batch, rng *rand.Rand, now time.Time, ndjson bool) []byte {
	if !ndjson {
		buf = append(buf, '[')
	}
	for i := range b.n {
		if i > 0 && !ndjson {
			buf = append(buf, ',')
		}
		ts := now.Add(-time.Duration(rng.IntN(250)) * time.Millisecond)
		seq := b.first + int64(i)
		if b.stream == iotIdx {
			buf = g.appendIoT(buf, seq, ts, rng)
		} else {
			buf = g.appendLog(buf, seq, ts, rng)
		}
		if ndjson {
			buf = append(buf, '\n')
		}
	}
	if !ndjson {
		buf = append(buf, ']')
	}
	return buf
}

func (g *generator) appendIoT(buf []byte, seq int64, ts time.Time, rng *rand.Rand) []byte {
	d := &g.devices[rng.IntN(len(g.devices))]
	buf = append(buf, `{"event_id":"`...)
	buf = appendEventID(buf, g.runID, StreamIoT, seq)
	buf = append(buf, `",`...)
	buf = append(buf, d.id...)
	buf = append(buf, `,"ts":`...)
	if d.epochTS {
		buf = strconv.AppendInt(buf, ts.UnixMilli(), 10)
	} else {
		buf = append(buf, '"')
		buf = ts.UTC().AppendFormat(buf, timeLayout)
		buf = append(buf, '"')
	}

	// A daily cycle plus sensor noise; humidity moves against temperature
	// the way it does in a room that warms up.
	hours := ts.Sub(g.start).Hours()
	day := math.Sin(2*math.Pi*float64(ts.UnixMilli()%86_400_000)/86_400_000 + d.phase)
	temp := d.tempBase + d.tempAmp*day + rng.NormFloat64()*0.15
	hum := clamp(d.humBase-2*d.tempAmp*day+rng.NormFloat64()*0.8, 5, 99)
	batt := clamp(d.batt0-d.drain*hours, 3, 100)

	buf = append(buf, `,"metrics":{"temperature":`...)
	buf = strconv.AppendFloat(buf, temp, 'f', 2, 64)
	buf = append(buf, `,"humidity":`...)
	buf = strconv.AppendFloat(buf, hum, 'f', 1, 64)
	buf = append(buf, `,"battery":`...)
	buf = strconv.AppendFloat(buf, batt, 'f', 1, 64)
	buf = append(buf, `,"rssi":`...)
	buf = strconv.AppendInt(buf, int64(d.rssi+rng.IntN(7)-3), 10)
	if d.pressure {
		buf = append(buf, `,"pressure":`...)
		buf = strconv.AppendFloat(buf, 1013.25+rng.NormFloat64()*4, 'f', 1, 64)
	}
	if d.co2 {
		buf = append(buf, `,"co2":`...)
		buf = strconv.AppendInt(buf, int64(420+200*(day+1)+rng.NormFloat64()*25), 10)
	}
	if d.vibr {
		buf = append(buf, `,"vibration":`...)
		buf = strconv.AppendFloat(buf, math.Abs(2+rng.NormFloat64()*0.6), 'f', 3, 64)
	}
	buf = append(buf, '}')
	buf = append(buf, d.tags...)
	return append(buf, '}')
}

// Levels of app_logs and how often loadgen emits each, in percent: mostly
// info, some warn, a few error and fatal, as a healthy production service.
var levels = []struct {
	name   string
	weight float64
	msgs   []template
}{
	{"trace", 1, parseTemplates(
		"entering {h}",
		"span {x} finished in {ms}ms",
	)},
	{"debug", 8, parseTemplates(
		"cache hit key=user:{u}",
		"cache miss key=order:{o}",
		"db query on {t} took {ms}ms",
		"feature flag {f} evaluated to true",
	)},
	{"info", 74.5, parseTemplates(
		"GET /api/v1/orders/{o} 200 in {ms}ms",
		"POST /api/v1/{t} 201 in {ms}ms",
		"GET /healthz 200 in 1ms",
		"order {o} created for user u-{u}",
		"user u-{u} logged in",
		"processed batch of {n} items in {ms}ms",
		"job {j} completed in {ms}ms",
		"cache refreshed: {n} keys",
	)},
	{"warn", 12, parseTemplates(
		"slow query on {t}: {ms}ms",
		"retrying call to {s} (attempt {a})",
		"connection pool near capacity: {n}/512",
		"deprecated endpoint /v1/{t} called by client c-{u}",
		"request body truncated at {n} bytes",
	)},
	{"error", 4, parseTemplates(
		"payment declined for order {o}: insufficient funds",
		"upstream {s} returned 503 after {ms}ms",
		"timeout after {ms}ms calling {s}",
		"failed to publish to broker: connection reset by peer",
		"unexpected \"null\" in field {t}.id",
	)},
	{"fatal", 0.5, parseTemplates(
		"out of memory: cannot allocate {n} bytes",
		"configuration invalid: missing DATABASE_URL",
		"panic: runtime error: index out of range [{a}] with length {a}",
	)},
}

var levelsCum = func() []float64 {
	var sum float64
	for _, l := range levels {
		sum += l.weight
	}
	cum := make([]float64, len(levels))
	var acc float64
	for i, l := range levels {
		acc += l.weight / sum
		cum[i] = acc
	}
	cum[len(cum)-1] = 1
	return cum
}()

var (
	tables   = []string{"orders", "users", "payments", "sessions", "products", "carts"}
	jobs     = []string{"reindex", "nightly-export", "cleanup-sessions", "sync-prices", "send-digest"}
	flags    = []string{"new-checkout", "fast-search", "dark-mode", "beta-pricing"}
	handlers = []string{"handleOrder", "handleLogin", "handleSearch", "handleWebhook"}
	regions  = []string{"eu-west-1", "eu-central-1", "us-east-1", "ap-south-1"}
)

func pickLevel(rng *rand.Rand) int {
	x := rng.Float64()
	for i, c := range levelsCum {
		if x < c {
			return i
		}
	}
	return len(levelsCum) - 1
}

func (g *generator) appendLog(buf []byte, seq int64, ts time.Time, rng *rand.Rand) []byte {
	s := &g.services[rng.IntN(len(g.services))]
	lvl := &levels[pickLevel(rng)]
	buf = append(buf, `{"event_id":"`...)
	buf = appendEventID(buf, g.runID, StreamLogs, seq)
	buf = append(buf, `","ts":"`...)
	buf = ts.UTC().AppendFormat(buf, timeLayout)
	buf = append(buf, `",`...)
	buf = append(buf, s.field...)
	buf = append(buf, `,"level":"`...)
	buf = append(buf, lvl.name...)
	buf = append(buf, `","message":"`...)
	buf = g.appendMessage(buf, lvl.msgs[rng.IntN(len(lvl.msgs))], s, rng)
	buf = append(buf, '"')
	buf = append(buf, s.hosts[rng.IntN(len(s.hosts))]...)
	// Traced requests are a minority; error paths are more often traced
	// because that is where people turn sampling up.
	if rng.IntN(100) < 25 || (lvl.name == "error" && rng.IntN(2) == 0) {
		buf = append(buf, `,"trace_id":"`...)
		buf = appendHex(buf, rng.Uint64())
		buf = appendHex(buf, rng.Uint64())
		buf = append(buf, '"')
	}
	if n := rng.IntN(5); n >= 2 {
		buf = append(buf, `,"attrs":{"region":"`...)
		buf = append(buf, regions[rng.IntN(len(regions))]...)
		buf = append(buf, '"')
		if n >= 3 {
			buf = append(buf, `,"user_id":"u-`...)
			buf = strconv.AppendInt(buf, int64(rng.IntN(100000)), 10)
			buf = append(buf, '"')
		}
		if n >= 4 {
			buf = append(buf, `,"version":"v2.`...)
			buf = strconv.AppendInt(buf, int64(rng.IntN(40)), 10)
			buf = append(buf, '"')
		}
		buf = append(buf, '}')
	}
	return append(buf, '}')
}

// template is a log message with placeholders, split once at start-up so
// that rendering is appends only.
type template []segment

type segment struct {
	lit []byte // JSON-escaped literal text before the placeholder
	ph  string // placeholder name, "" at the end
}

func parseTemplates(srcs ...string) []template {
	out := make([]template, len(srcs))
	for i, src := range srcs {
		var t template
		for {
			open := strings.IndexByte(src, '{')
			if open < 0 {
				t = append(t, segment{lit: escape(src)})
				break
			}
			end := strings.IndexByte(src[open:], '}')
			if end < 0 {
				panic("loadgen: unterminated placeholder in " + srcs[i])
			}
			t = append(t, segment{lit: escape(src[:open]), ph: src[open+1 : open+end]})
			src = src[open+end+1:]
		}
		out[i] = t
	}
	return out
}

func (g *generator) appendMessage(buf []byte, t template, s *service, rng *rand.Rand) []byte {
	for _, seg := range t {
		buf = append(buf, seg.lit...)
		switch seg.ph {
		case "":
		case "ms":
			// Latencies are long-tailed: most fast, a few very slow.
			buf = strconv.AppendInt(buf, int64(math.Exp(2+rng.NormFloat64()*0.9)), 10)
		case "n":
			buf = strconv.AppendInt(buf, int64(1+rng.IntN(5000)), 10)
		case "a":
			buf = strconv.AppendInt(buf, int64(1+rng.IntN(5)), 10)
		case "u":
			buf = strconv.AppendInt(buf, int64(rng.IntN(100000)), 10)
		case "o":
			buf = append(buf, 'A', '-')
			buf = strconv.AppendInt(buf, int64(rng.IntN(1000000)), 10)
		case "x":
			buf = appendHex(buf, rng.Uint64())
		case "s":
			other := &g.services[rng.IntN(len(g.services))]
			buf = append(buf, other.name...)
		case "t":
			buf = append(buf, tables[rng.IntN(len(tables))]...)
		case "j":
			buf = append(buf, jobs[rng.IntN(len(jobs))]...)
		case "f":
			buf = append(buf, flags[rng.IntN(len(flags))]...)
		case "h":
			buf = append(buf, handlers[rng.IntN(len(handlers))]...)
		default:
			panic("loadgen: unknown placeholder {" + seg.ph + "}")
		}
	}
	return buf
}

func appendHex(b []byte, v uint64) []byte {
	const digits = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		b = append(b, digits[(v>>uint(shift))&0xf])
	}
	return b
}

func appendKey(b []byte, k string) []byte {
	b = appendString(b, k)
	return append(b, ':')
}

// appendString appends s as a JSON string. Only names built at start-up go
// through here, so it favours obviously-correct over fast.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	b = append(b, escape(s)...)
	return append(b, '"')
}

// escape returns s JSON-escaped, without the quotes.
func escape(s string) []byte {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	q, err := json.Marshal(s)
	if err != nil {
		panic("loadgen: cannot encode string: " + err.Error()) // impossible for valid UTF-8
	}
	return q[1 : len(q)-1]
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }
