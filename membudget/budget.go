// Package membudget turns the process's memory ceiling (--memory-limit)
// into the bounds of every queue and buffer that grows with load: the
// ingest admission (events and bytes), the HTTP parsing slots, the Kafka
// producer's batches, the workers' fetch buffers and per-sink byte budgets,
// the dedupe window, the MQTT and syslog in-flight bounds, and in `sluice
// dev` the embedded broker and NATS server. Plan is a pure function, so the
// split can be tested and logged before anything starts.
package membudget

import (
	"errors"
	"fmt"
)

// DefaultLimit is --memory-limit's default (SPEC "Memory").
const DefaultLimit int64 = 512 << 20

// MinLimit is the smallest ceiling Plan accepts: below it the fixed base of
// the process and the smallest useful bounds (two HTTP parsing slots, one
// full fetch per reader) do not fit, and a ceiling that cannot hold is worse
// than a clear refusal at start-up.
const MinLimit int64 = 128 << 20

// Sizes that the rest of Sluice fixes and the plan must respect. They are
// repeated here, not imported, so that this package stays a leaf.
const (
	// kafkaMessageMax is Kafka's default message.max.bytes (1 MiB + 12):
	// no record batch is larger, so a producer batch may not be either.
	kafkaMessageMax = 1<<20 + 12
	// maxEventBytes is ingest.DefaultMaxEventBytes: a producer batch must
	// hold the largest event alone.
	maxEventBytes = 1_000_000
	// minFetchBytes is the smallest fetch that surely holds one whole
	// record batch: kafka-go cannot make progress past a batch that a
	// fetch cuts short.
	minFetchBytes = kafkaMessageMax + 64<<10
	// maxFetchBytes is what the lanes fetched before there was a budget;
	// more buys no throughput here (2 cores) and costs per reader.
	maxFetchBytes = 2 << 20
	// maxFetchShareBytes is workers.DefaultFetchShareBytes: a partition's
	// lanes are seldom more than a thousand messages apart.
	maxFetchShareBytes = 512 << 10
	// bytesPerDedupeID is what one remembered event_id costs: measured 104
	// bytes in a worker's heap profile (the key, its first offset, the
	// receive-time queue entry, and the map and queue growing by
	// doubling), with a little slack.
	bytesPerDedupeID = 112
	// bytesPerEventOverhead is what an admitted event costs besides its
	// key, value and headers: the ingest.Message (112 bytes) and kafka-go's
	// Message (about 200) structs.
	bytesPerEventOverhead = 320
	// readerQueueBytes is what a lane holds ahead of its batches, outside
	// the byte budgets: its queue of 256 fetched messages, at 1 KiB
	// (events are a few hundred bytes; larger ones make it more).
	readerQueueBytes = 256 << 10
	// readerBufferBytes is workers.fetchReadBuffer, a reader connection's
	// read buffer under kafka-go's.
	readerBufferBytes = 64 << 10
	// perReaderBytes is what a reader holds besides its fetch.
	perReaderBytes = readerQueueBytes + readerBufferBytes
	// maxEventsPerBatch is ingest.DefaultMaxEvents, the most events one
	// request may hold; envelopeBytes is about what Sluice adds to each
	// (event_id, received_at and the field names around them).
	maxEventsPerBatch = 100_000
	envelopeBytes     = 128
	// bytesPerHTTPConn is what one HTTP connection holds at worst: one
	// sending its header block (up to httpapi.MaxHeaderBytes, 64 KiB)
	// held 100 to 115 KiB of heap and stack each, measured with 800 such
	// connections; a kept-alive one between requests holds 8.5 KiB.
	bytesPerHTTPConn = 112 << 10
	// minHTTPConns and maxHTTPConns bound the HTTP connections: the
	// floor, and httpapi.DefaultMaxConnections, what the server served
	// before there was a budget.
	minHTTPConns, maxHTTPConns = 64, 4096
	// bytesPerSyslogConn is what one syslog TCP connection holds besides
	// its batches and a long message (their own bounds): its 16 KiB read
	// buffer and two goroutines (measured: 15 KiB resident each for 1,000
	// connections in the middle of a frame, before their buffers filled).
	bytesPerSyslogConn = 32 << 10
	// bytesPerRELPConn is one RELP connection's besides its frames (the
	// RELP buffer): its 32 KiB read buffer, its channel of 512 frames read
	// ahead (36 KiB), the answers' buffer and two goroutines.
	bytesPerRELPConn = 96 << 10
	// bytesPerMQTTConn is one connection of the embedded MQTT broker's
	// besides its packets (in the MQTT bounds): mochi's buffers and two
	// goroutines (measured: 29 KiB resident each for 1,000 connections).
	bytesPerMQTTConn = 32 << 10
	// The floors and ceilings of those connections: the ceilings are the
	// collectors' defaults before there was a budget.
	minSyslogConns, maxSyslogConns = 64, 1024
	minRELPConns, maxRELPConns     = 16, 100
	minMQTTConns, maxMQTTConns     = 64, 1024
	// maxSyslogLongBytes is syslog.DefaultMaxLongMessageBytes; maxRELPBuffer
	// relp.DefaultMaxBufferBytes.
	maxSyslogLongBytes = 8 << 20
	maxRELPBuffer      = 16 << 20
	// minRELPBuffer holds, in each half, two ordinary frames' worth of
	// lines and a frame of the largest size (128 KiB).
	minRELPBuffer = 512 << 10
)

// Shape is what the plan needs to know about the process besides the
// limit: how many readers, partitions and collectors share it.
type Shape struct {
	// Limit is the ceiling on the resident memory, in bytes.
	Limit int64
	// MaxBodyBytes is the largest HTTP body (--max-body-bytes), which
	// sizes each HTTP parsing slot.
	MaxBodyBytes int64
	// Streams and Partitions (per stream topic) count the producer's
	// partition batches and, with Sinks, the workers' readers: each sink
	// reads each partition on a reader of its own.
	Streams, Partitions, Sinks int
	// MQTTMaxPacketBytes is the largest MQTT publish one in-flight message
	// may hold (--mqtt-max-packet-bytes).
	MQTTMaxPacketBytes int
	// Dev says the embedded broker and NATS server share the process.
	Dev bool
	// NoIngest and NoWork say the process runs no collectors, or no
	// workers (`sluice run --role work`, `--role ingest`): the bounds of
	// the absent role get nothing, and the others share its memory.
	NoIngest, NoWork bool
	// Overrides are bounds set explicitly (flags): their non-zero fields
	// replace the planned ones, and count in Queues as they are.
	Overrides Budget
}

// Budget is the plan: the bound of every queue and buffer, the Go limit,
// and what the bounds add up to at worst (Queues, by the costs Plan
// divides by) beside the base the process needs anyway.
type Budget struct {
	// Limit is the ceiling; GoLimit is what debug.SetMemoryLimit gets.
	Limit, GoLimit int64
	// Base is kept for the process itself: the runtime, the libraries'
	// fixed buffers, goroutine stacks, metrics, the embedded servers' own
	// state. Queues is the worst case of all bounds below together;
	// GoLimit-Base-Queues is room for garbage between collections.
	Base, Queues int64

	// AdmissionEvents and AdmissionBytes bound the events accepted by the
	// ingest gate and not yet acknowledged by Kafka.
	AdmissionEvents, AdmissionBytes int64
	// HTTPParsing is how many request bodies are read and parsed at once.
	HTTPParsing int
	// HTTPConnections is how many connections the HTTP server serves at
	// once; past it the server closes an idle kept-alive connection to
	// make room, or the new one waits to be accepted.
	HTTPConnections int
	// ProducerBatchBytes is the Kafka producer's batch size in bytes.
	ProducerBatchBytes int64
	// FetchMaxBytes is one lane reader's fetch size (kafka-go MaxBytes);
	// Readers is how many readers the plan counted.
	FetchMaxBytes int
	Readers       int
	// FetchShareBytes is what each partition keeps of its lanes' latest
	// fetches for the lanes behind (workers.Config.FetchShareBytes), when
	// more than one sink reads it; 0 otherwise.
	FetchShareBytes int
	// LaneBytes is the workers' byte budget for batches queued or in work
	// (workers.Config.MaxInFlightBytes, split evenly between the sinks);
	// BatchMaxBytes caps one batch so that a sink's share holds two.
	LaneBytes     int64
	BatchMaxBytes int
	// DedupeMaxIDs bounds the event_ids the dedupe window remembers.
	DedupeMaxIDs int
	// MQTTInflight bounds the MQTT messages held unacknowledged, each
	// counted at the largest packet: the subscriber's Receive Maximum,
	// where the broker may send that many of any size.
	MQTTInflight int
	// MQTTInflightBytes bounds the payload bytes the embedded broker's
	// publishes hold while they are handled, each weighed by its own
	// size: the same memory as MQTTInflight, for many more small
	// messages.
	MQTTInflightBytes int64
	// MQTTReadBytes bounds the bytes of the larger packets the embedded
	// broker's connections are reading at once (mqtt.EmbeddedConfig's
	// MaxReadBytes); 0 without the embedded broker. In dev the MQTT share
	// is split between it and what is in flight.
	MQTTReadBytes int64
	// SyslogBufferBytes and SyslogUDPQueueBytes bound the syslog TCP
	// batches and the UDP datagrams held at once; SyslogLongMessageBytes
	// the TCP messages longer than a read buffer being read at once.
	SyslogBufferBytes, SyslogUDPQueueBytes, SyslogLongMessageBytes int
	// SyslogConnections, RELPConnections and MQTTConnections bound the
	// open connections of the syslog TCP listener, the RELP collector and
	// the embedded MQTT broker (0 without one), each counted at what it
	// holds besides the bounds above.
	SyslogConnections, RELPConnections, MQTTConnections int
	// RELPBufferBytes bounds the RELP frames read and not yet answered,
	// over all connections.
	RELPBufferBytes int
	// NATSMaxMemory bounds JetStream's memory storage and NATSMaxPending
	// what the server buffers for one slow client (dev only; 0 otherwise).
	NATSMaxMemory, NATSMaxPending int64
}

// Plan splits shape.Limit, with all the arithmetic in one place:
//
//   - GoLimit: the limit less 10% (at least 32 MiB). Go's limit counts only
//     memory the runtime maps; the resident set also holds the executable's
//     text and data pages (about 10 MiB of sluice's are resident) and pages
//     the runtime has freed but not yet returned, so the headroom is that.
//   - Base: 32 MiB plus 5% of the limit for what does not scale with load
//     (measured idle with every collector and the embedded servers up: 12
//     MiB of heap, 26 MiB mapped by Go, 36 MiB resident) and what grows
//     slowly (goroutines per connection, the embedded broker's index).
//   - Queues: three quarters of what GoLimit leaves above Base. The last
//     quarter is room for garbage, so that the collector does not run
//     without pause when every bound is full at once.
//
// Every bound first gets its floor (two HTTP slots, a whole record batch
// per reader, one largest body admitted, ...), then a share of what the
// floors leave of Queues (see flexShares). Each bound is its memory divided
// by what one unit of it costs; worstCase adds them up again, and Fits
// says when floors or overrides take that over.
func Plan(s Shape) (Budget, error) {
	if s.Limit < MinLimit {
		return Budget{}, fmt.Errorf("memory limit %s is below the minimum %s", FormatSize(s.Limit), FormatSize(MinLimit))
	}
	if s.MaxBodyBytes <= 0 || s.Streams <= 0 || s.Partitions <= 0 || s.Sinks <= 0 || s.MQTTMaxPacketBytes <= 0 {
		return Budget{}, errors.New("memory plan: body size, streams, partitions, sinks and MQTT packet size must be positive")
	}
	if s.NoIngest && s.NoWork {
		return Budget{}, errors.New("memory plan: a process runs collectors, workers or both")
	}
	b := Budget{Limit: s.Limit}
	if !s.NoWork {
		b.Readers = s.Sinks * s.Streams * s.Partitions
	}
	b.GoLimit = s.Limit - max(s.Limit/10, 32<<20)
	b.Base = 32<<20 + s.Limit/20
	queues := (b.GoLimit - b.Base) * 3 / 4
	f := floors(s, b.Readers, queues)
	sh := flexShares(max(0, queues-f.total()), s)

	// HTTP: a body as read plus the events it encodes into (the
	// collector's own estimate, CollectorConfig.MaxParsing).
	b.HTTPParsing = int(min((f.http+sh.http)/(2*s.MaxBodyBytes), 32))
	b.HTTPConnections = int(clamp((f.conns+sh.conns)/bytesPerHTTPConn, minHTTPConns, maxHTTPConns))
	// Readers: the fetch response (kafka-go streams it, the embedded
	// broker builds it whole), the reader's queue of messages ahead and
	// its connection's read buffer.
	// Shared fetches come out of the readers' flexible share only, half of
	// it at most, so that every reader keeps its floor.
	if b.Readers > 0 {
		pool := f.fetch + sh.fetch
		if parts := sharedPartitions(s); parts > 0 {
			b.FetchShareBytes = int(min(maxFetchShareBytes, sh.fetch/2/int64(parts)))
			pool -= int64(parts) * int64(b.FetchShareBytes)
		}
		b.FetchMaxBytes = int(min(pool/int64(b.Readers)-perReaderBytes, maxFetchBytes))
	}
	// Admitted events are held twice at worst: the gate's encoded copy,
	// and kafka-go's produce request or the embedded broker's decoded
	// copy of it.
	b.AdmissionBytes = (f.admission + sh.admission) / 2
	b.AdmissionEvents = clamp(b.AdmissionBytes/bytesPerEventOverhead, 100_000, 200_000)
	producerBatches := int64(s.Streams+1) * int64(s.Partitions) // and the dead-letter topic
	b.ProducerBatchBytes = clamp(b.AdmissionBytes/producerBatches, maxEventBytes+4096, 1<<20)
	// Batches decode into rows a few times their encoded size, and the
	// ClickHouse client compresses a copy: four times.
	b.LaneBytes = (f.lanes + sh.lanes) / 4
	b.BatchMaxBytes = int(clamp(b.LaneBytes/int64(s.Sinks)/2, 1<<20, 8<<20))
	b.DedupeMaxIDs = int(min((f.dedupe+sh.dedupe)/bytesPerDedupeID, 4_000_000))
	b.MQTTInflightBytes = f.mqtt + sh.mqtt
	if s.Dev && !s.NoIngest {
		// The embedded broker's packets being read, apart from those in
		// flight: a packet is read whole before it is handled.
		b.MQTTReadBytes = b.MQTTInflightBytes / 2
		b.MQTTInflightBytes -= b.MQTTReadBytes
	}
	b.MQTTInflight = int(min(b.MQTTInflightBytes/int64(s.MQTTMaxPacketBytes), 1000))
	if !s.NoIngest {
		b.planSyslog(f.syslog+sh.syslog, f.relp+sh.relp)
		b.planSockets(s, f.sockets+sh.sockets)
	}
	if s.Dev {
		// JetStream's memory store, and what the server buffers for each
		// of a few slow clients (Sluice's publisher, subscribers).
		b.NATSMaxMemory = min((f.nats+sh.nats)/2, 256<<20)
		b.NATSMaxPending = min((f.nats+sh.nats)/2/natsClients, 64<<20)
	}
	b.override(s.Overrides)
	b.Queues = b.worstCase(s)
	return b, nil
}

// planSyslog splits the syslog share, a fifth for long messages and the
// rest for the TCP batches and the UDP queue alike, and sizes the RELP
// buffer from its share.
func (b *Budget) planSyslog(syslog, relp int64) {
	b.SyslogLongMessageBytes = int(clamp(syslog/5, 512<<10, maxSyslogLongBytes))
	syslog -= int64(b.SyslogLongMessageBytes)
	b.SyslogBufferBytes = int(min(syslog/2, 64<<20))
	b.SyslogUDPQueueBytes = int(min(syslog/2, 16<<20))
	b.RELPBufferBytes = int(clamp(relp, minRELPBuffer, maxRELPBuffer))
}

// planSockets divides mem between the connections of the syslog, RELP
// and embedded MQTT collectors, in proportion to what each holds at its
// ceiling, and each gets at least its floor.
func (b *Budget) planSockets(s Shape, mem int64) {
	syslogMax, relpMax := int64(maxSyslogConns*bytesPerSyslogConn), int64(maxRELPConns*bytesPerRELPConn)
	var mqttMax int64
	if s.Dev {
		mqttMax = maxMQTTConns * bytesPerMQTTConn
	}
	total := syslogMax + relpMax + mqttMax
	conns := func(ceiling, cost, lo, hi int64) int {
		// In float64: mem*ceiling overflows an int64 at ceilings of some
		// TiB.
		return int(clamp(int64(float64(mem)*float64(ceiling)/float64(total)/float64(cost)), lo, hi))
	}
	b.SyslogConnections = conns(syslogMax, bytesPerSyslogConn, minSyslogConns, maxSyslogConns)
	b.RELPConnections = conns(relpMax, bytesPerRELPConn, minRELPConns, maxRELPConns)
	if s.Dev {
		b.MQTTConnections = conns(mqttMax, bytesPerMQTTConn, minMQTTConns, maxMQTTConns)
	}
}

// sharedPartitions is how many partitions keep shared fetches: all of
// them, when more than one sink reads each.
func sharedPartitions(s Shape) int {
	if s.NoWork || s.Sinks < 2 {
		return 0
	}
	return s.Streams * s.Partitions
}

// natsClients is how many slow clients the embedded NATS server's pending
// buffers are counted for.
const natsClients = 4

// shares are memory for each kind of bound.
type shares struct {
	http, conns, fetch, admission, lanes, dedupe, mqtt, syslog, nats int64
	// sockets is the other collectors' connections; relp the RELP buffer.
	sockets, relp int64
}

func (s shares) total() int64 {
	return s.http + s.conns + s.fetch + s.admission + s.lanes + s.dedupe + s.mqtt + s.syslog + s.nats + s.sockets + s.relp
}

// floors are the least memory each bound needs to work at all: two HTTP
// slots (one slow upload must not lock everyone out), 64 HTTP connections, a whole record batch
// per reader, one largest body admitted (see below), two 1 MiB batches per
// sink, 100,000 dedupe ids, 8 MQTT messages of the largest size (in dev
// half of them for the embedded broker's packets being read), two 1 MiB
// syslog batches, as much UDP queue and 1 MiB of long messages, the
// connection floors of the syslog, RELP and (in dev) embedded MQTT
// collectors, 512 KiB of RELP frames, and in dev 4 MiB of JetStream
// memory and 1 MiB per NATS client.
//
// The admission's floor is what the heaviest valid largest body weighs:
// its bytes plus, for each of up to 100,000 events (ingest's MaxEvents) of
// 40 bytes or more, the envelope Sluice adds and the per-message overhead.
// A lighter admission answers such a body 413 though it is within
// --max-body-bytes. Where that floor does not fit the queues (small
// ceilings), the floor is the body's bytes alone, and such bodies are
// refused: the ceiling decides, and docs/memory.md says so.
func floors(s Shape, readers int, queues int64) shares {
	heaviest := s.MaxBodyBytes + min(s.MaxBodyBytes/40, maxEventsPerBatch)*(bytesPerEventOverhead+envelopeBytes)
	f := shares{
		http:      2 * 2 * s.MaxBodyBytes,
		conns:     minHTTPConns * bytesPerHTTPConn,
		fetch:     int64(readers) * (minFetchBytes + perReaderBytes),
		admission: 2 * heaviest,
		lanes:     4 * int64(s.Sinks) * (2 << 20),
		dedupe:    100_000 * bytesPerDedupeID,
		mqtt:      8 * int64(s.MQTTMaxPacketBytes),
		syslog:    5 << 20,
		sockets:   minSyslogConns*bytesPerSyslogConn + minRELPConns*bytesPerRELPConn,
		relp:      minRELPBuffer,
	}
	if s.Dev {
		f.nats = 2 * (4 << 20)
		f.sockets += minMQTTConns * bytesPerMQTTConn
	}
	f = f.only(s)
	if f.total() > queues && !s.NoIngest {
		f.admission = 2 * s.MaxBodyBytes
	}
	return f
}

// flexShares divides what the floors leave, by weight among the bounds of
// the roles the process runs. The dedupe window has the largest share
// because it buys correctness (a retry within the window counts once); the
// others buy throughput, and past them producers are told to retry. In dev
// the embedded NATS server's share comes out of the dedupe window's.
func flexShares(q int64, sh Shape) shares {
	w := shares{http: 12, conns: 3, fetch: 10, admission: 10, lanes: 20, dedupe: 35, mqtt: 5, syslog: 5, sockets: 3, relp: 2}
	if sh.Dev {
		w.nats, w.dedupe = 5, 30
	}
	w = w.only(sh)
	total := w.total()
	part := func(weight int64) int64 { return q * weight / total }
	return shares{
		http: part(w.http), conns: part(w.conns), fetch: part(w.fetch), admission: part(w.admission), lanes: part(w.lanes),
		dedupe: part(w.dedupe), mqtt: part(w.mqtt), syslog: part(w.syslog), nats: part(w.nats),
		sockets: part(w.sockets), relp: part(w.relp),
	}
}

// only zeroes the shares of a role the process does not run.
func (s shares) only(sh Shape) shares {
	if sh.NoIngest {
		s.http, s.conns, s.admission, s.mqtt, s.syslog, s.sockets, s.relp = 0, 0, 0, 0, 0, 0, 0
	}
	if sh.NoWork {
		s.fetch, s.lanes, s.dedupe = 0, 0, 0
	}
	return s
}

// worstCase adds up what the bounds hold at most, by the same costs Plan
// divided them by; overrides can take it over the planned queues.
func (b Budget) worstCase(s Shape) int64 {
	return int64(b.HTTPParsing)*2*s.MaxBodyBytes +
		int64(b.HTTPConnections)*bytesPerHTTPConn +
		int64(b.Readers)*(int64(b.FetchMaxBytes)+perReaderBytes) +
		int64(sharedPartitions(s))*int64(b.FetchShareBytes) +
		2*b.AdmissionBytes +
		4*b.LaneBytes +
		int64(b.DedupeMaxIDs)*bytesPerDedupeID +
		int64(b.MQTTInflight)*int64(s.MQTTMaxPacketBytes) + b.MQTTReadBytes +
		int64(b.SyslogBufferBytes+b.SyslogUDPQueueBytes+b.SyslogLongMessageBytes) +
		int64(b.SyslogConnections)*bytesPerSyslogConn + int64(b.RELPConnections)*bytesPerRELPConn +
		int64(b.MQTTConnections)*bytesPerMQTTConn + int64(b.RELPBufferBytes) +
		b.NATSMaxMemory + natsClients*b.NATSMaxPending
}

// Fits reports whether the bounds' worst case, all full at once, and the
// base fit nine tenths of the Go limit; an error says by how much they do
// not (floors or overrides that took them over) and what to lower.
func (b Budget) Fits() error {
	if over := b.Base + b.Queues - b.GoLimit*9/10; over > 0 {
		return fmt.Errorf("the bounds' worst case (%s) and the base (%s) exceed nine tenths of the Go limit (%s) by %s: raise --memory-limit, or lower --max-body-bytes, --partitions or the overrides",
			FormatSize(b.Queues), FormatSize(b.Base), FormatSize(b.GoLimit), FormatSize(over))
	}
	return nil
}

// override replaces the planned bounds by the non-zero ones of o.
func (b *Budget) override(o Budget) {
	pick(&b.AdmissionEvents, o.AdmissionEvents)
	pick(&b.AdmissionBytes, o.AdmissionBytes)
	pick(&b.HTTPParsing, o.HTTPParsing)
	pick(&b.HTTPConnections, o.HTTPConnections)
	pick(&b.ProducerBatchBytes, o.ProducerBatchBytes)
	pick(&b.FetchMaxBytes, o.FetchMaxBytes)
	pick(&b.FetchShareBytes, o.FetchShareBytes)
	pick(&b.LaneBytes, o.LaneBytes)
	pick(&b.BatchMaxBytes, o.BatchMaxBytes)
	pick(&b.DedupeMaxIDs, o.DedupeMaxIDs)
	pick(&b.MQTTInflight, o.MQTTInflight)
	pick(&b.MQTTInflightBytes, o.MQTTInflightBytes)
	pick(&b.SyslogBufferBytes, o.SyslogBufferBytes)
	pick(&b.SyslogUDPQueueBytes, o.SyslogUDPQueueBytes)
	pick(&b.SyslogLongMessageBytes, o.SyslogLongMessageBytes)
	pick(&b.SyslogConnections, o.SyslogConnections)
	pick(&b.RELPConnections, o.RELPConnections)
	pick(&b.MQTTConnections, o.MQTTConnections)
	pick(&b.RELPBufferBytes, o.RELPBufferBytes)
	pick(&b.NATSMaxMemory, o.NATSMaxMemory)
	pick(&b.NATSMaxPending, o.NATSMaxPending)
}

// pick sets *dst to v when v is set (positive).
func pick[T int | int64](dst *T, v T) {
	if v > 0 {
		*dst = v
	}
}

// LogAttrs are the split as slog key-value pairs, for the one start-up line.
func (b Budget) LogAttrs() []any {
	return []any{
		"limit", FormatSize(b.Limit), "go_limit", FormatSize(b.GoLimit), "base", FormatSize(b.Base), "gc_floor", FormatSize(b.GCFloor()),
		"queues_worst_case", FormatSize(b.Queues),
		"admission_events", b.AdmissionEvents, "admission_bytes", FormatSize(b.AdmissionBytes),
		"http_parsing_slots", b.HTTPParsing, "http_connections", b.HTTPConnections, "producer_batch_bytes", FormatSize(b.ProducerBatchBytes),
		"fetch_max_bytes", FormatSize(int64(b.FetchMaxBytes)), "readers", b.Readers, "fetch_share_bytes", FormatSize(int64(b.FetchShareBytes)),
		"lane_bytes", FormatSize(b.LaneBytes), "batch_max_bytes", FormatSize(int64(b.BatchMaxBytes)),
		"dedupe_max_ids", b.DedupeMaxIDs, "mqtt_inflight", b.MQTTInflight, "mqtt_inflight_bytes", FormatSize(b.MQTTInflightBytes),
		"mqtt_read_bytes", FormatSize(b.MQTTReadBytes),
		"syslog_buffer_bytes", FormatSize(int64(b.SyslogBufferBytes)), "syslog_udp_queue_bytes", FormatSize(int64(b.SyslogUDPQueueBytes)),
		"syslog_long_message_bytes", FormatSize(int64(b.SyslogLongMessageBytes)), "syslog_connections", b.SyslogConnections,
		"relp_connections", b.RELPConnections, "relp_buffer_bytes", FormatSize(int64(b.RELPBufferBytes)), "mqtt_connections", b.MQTTConnections,
		"nats_max_memory", FormatSize(b.NATSMaxMemory), "nats_max_pending", FormatSize(b.NATSMaxPending),
	}
}

func clamp(v, lo, hi int64) int64 { return min(max(v, lo), hi) }
