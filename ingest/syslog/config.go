package syslog

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/backpressure"
	"github.com/sluicehq/sluice/internal/defaults"
)

// Defaults for Config.
const (
	DefaultMaxMessageBytes     = 64 << 10
	DefaultMaxConnections      = 1024
	DefaultReadTimeout         = 60 * time.Second
	DefaultIdleTimeout         = 10 * time.Minute
	DefaultMaxBatchLines       = 1000
	DefaultMaxBatchBytes       = 1 << 20
	DefaultMaxBufferBytes      = 64 << 20
	DefaultMaxLongMessageBytes = 8 << 20
	DefaultBatchLinger         = 2 * time.Millisecond
	DefaultUDPQueueLines       = 10_000
	DefaultUDPQueueBytes       = 16 << 20
	DefaultShutdownGrace       = 5 * time.Second
)

// Config configures a Collector. At least one of TCPAddr and UDPAddr must
// be set; zero values of the rest take the defaults.
type Config struct {
	// TCPAddr and UDPAddr are the listen addresses; empty turns the
	// listener off. Port 0 picks a free port (see Collector.TCPAddr).
	TCPAddr, UDPAddr string
	// DeriveIDs gives each event the event_id derived from its raw line,
	// so a resent line counts once; off, events get random ids.
	DeriveIDs bool
	// MaxMessageBytes bounds one message. A longer newline-delimited line
	// is cut to it and dead-lettered, and the rest of it up to the next LF
	// is skipped; a longer octet count closes the connection, since the
	// stream cannot be trusted to resynchronise after it; a longer UDP
	// datagram is cut and dead-lettered.
	MaxMessageBytes int
	// MaxConnections bounds the open TCP connections; more are accepted
	// and closed at once.
	MaxConnections int
	// ReadTimeout closes a TCP connection that sent part of a frame and
	// then nothing for this long (a stalled or hostile sender).
	ReadTimeout time.Duration
	// IdleTimeout closes a TCP connection that sent nothing between frames
	// for this long, so that idle connections do not hold the connection
	// slots forever. Senders such as rsyslog reconnect on their next line.
	IdleTimeout time.Duration
	// MaxBatchLines and MaxBatchBytes (of messages) bound what one
	// connection hands to the gate in one commit; BatchLinger is how long a
	// connection whose sender paused waits for more lines before it
	// commits what it has. A connection holds at most two batches: one
	// committing, one being read.
	MaxBatchLines int
	MaxBatchBytes int
	// MaxBufferBytes bounds the TCP batches held at once across all
	// connections, in units of MaxBatchBytes (at least two batches): a
	// connection that would begin a batch beyond it stops reading until
	// another commits. With it the collector's memory does not grow with
	// the number of busy connections.
	MaxBufferBytes int
	BatchLinger    time.Duration
	// MaxLongMessageBytes bounds the memory of the messages longer than a
	// connection's 16 KiB read buffer that TCP connections are reading at
	// once: such a message takes its length (a line of unknown length,
	// MaxMessageBytes) before it is allocated, and gives it back once it
	// is in a batch. A connection that finds it spent waits, its reads
	// paused, for up to ReadTimeout, and is then closed. Without it a
	// thousand connections announcing 64 KiB messages and stalling would
	// hold 64 MiB.
	MaxLongMessageBytes int
	// UDPQueueLines and UDPQueueBytes bound the datagrams received and not
	// yet committed; beyond either, datagrams are dropped and counted.
	UDPQueueLines int
	UDPQueueBytes int
	// ShutdownGrace bounds how long, once Run's context ends, lines
	// already read may take to reach Kafka before they are abandoned.
	ShutdownGrace time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the collector's metrics; nil means none are
	// exported.
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() error {
	if c.TCPAddr == "" && c.UDPAddr == "" {
		return fmt.Errorf("syslog: neither a TCP nor a UDP address")
	}
	defaults.Positive(&c.MaxMessageBytes, DefaultMaxMessageBytes)
	defaults.Positive(&c.MaxConnections, DefaultMaxConnections)
	defaults.Positive(&c.MaxBatchLines, DefaultMaxBatchLines)
	defaults.Positive(&c.MaxBatchBytes, DefaultMaxBatchBytes)
	defaults.Positive(&c.MaxBufferBytes, DefaultMaxBufferBytes)
	defaults.Positive(&c.MaxLongMessageBytes, DefaultMaxLongMessageBytes)
	defaults.Positive(&c.UDPQueueLines, DefaultUDPQueueLines)
	defaults.Positive(&c.UDPQueueBytes, DefaultUDPQueueBytes)
	defaults.Positive(&c.ReadTimeout, DefaultReadTimeout)
	defaults.Positive(&c.IdleTimeout, DefaultIdleTimeout)
	defaults.Positive(&c.BatchLinger, DefaultBatchLinger)
	defaults.Positive(&c.ShutdownGrace, DefaultShutdownGrace)
	defaults.Set(&c.Logger, slog.Default())
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	return nil
}

// metrics are the collector's own figures; the gate counts accepted,
// rejected and dead-lettered events per source.
type metrics struct {
	connsOpen    prometheus.Gauge
	conns        *prometheus.CounterVec // result: accepted, refused
	connErrors   *prometheus.CounterVec // reason
	lines        *prometheus.CounterVec // transport
	parseFailed  *prometheus.CounterVec // transport
	bytes        *prometheus.CounterVec // transport
	dropped      *prometheus.CounterVec // transport, reason
	udpQueueSize prometheus.Gauge
	longHeld     prometheus.GaugeFunc
	longWaiting  prometheus.GaugeFunc
}

func newMetrics(reg prometheus.Registerer, long *backpressure.Admission) (*metrics, error) {
	opts := func(name, help string) prometheus.CounterOpts {
		return prometheus.CounterOpts{Namespace: "sluice", Subsystem: "syslog", Name: name, Help: help}
	}
	m := &metrics{
		connsOpen: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "sluice", Subsystem: "syslog",
			Name: "connections_open", Help: "Open syslog TCP connections."}),
		conns: prometheus.NewCounterVec(opts("connections_total",
			"Syslog TCP connections, by result: accepted, or refused because --syslog-max-connections were open."), []string{"result"}),
		connErrors: prometheus.NewCounterVec(opts("connection_errors_total",
			"Syslog TCP connections closed by Sluice, by reason: read_timeout, idle_timeout, frame_too_large, long_message_memory, truncated_frame, read_error."), []string{"reason"}),
		lines: prometheus.NewCounterVec(opts("lines_total",
			"Syslog messages received, by transport (tcp, udp)."), []string{"transport"}),
		parseFailed: prometheus.NewCounterVec(opts("parse_failures_total",
			"Syslog messages that did not parse (dead-lettered), by transport."), []string{"transport"}),
		bytes: prometheus.NewCounterVec(opts("bytes_total",
			"Bytes of syslog messages received, framing excluded, by transport."), []string{"transport"}),
		dropped: prometheus.NewCounterVec(opts("dropped_total",
			"Syslog messages received and lost, by transport and reason: queue_full (UDP cannot be slowed), shutdown (not committed within the grace), refused (the gate refused them for good)."),
			[]string{"transport", "reason"}),
		udpQueueSize: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "sluice", Subsystem: "syslog",
			Name: "udp_queue_lines", Help: "UDP datagrams received and waiting to be committed."}),
		longHeld: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "sluice", Subsystem: "syslog",
			Name: "long_message_bytes", Help: "Bytes taken by TCP messages longer than the 16 KiB read buffer being read (at most --syslog-max-long-message-bytes)."},
			func() float64 { return float64(long.InFlight()) }),
		longWaiting: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "sluice", Subsystem: "syslog",
			Name: "long_message_waiting", Help: "TCP connections whose reading is paused until --syslog-max-long-message-bytes has room for their next message."},
			func() float64 { return float64(long.Waiting()) }),
	}
	for _, c := range []prometheus.Collector{m.connsOpen, m.conns, m.connErrors, m.lines, m.parseFailed, m.bytes, m.dropped, m.udpQueueSize, m.longHeld, m.longWaiting} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("syslog: register metrics: %w", err)
		}
	}
	return m, nil
}

// transportMetrics are the per-line counters of one transport, looked up
// once rather than per line.
type transportMetrics struct {
	lines, bytes, parseFailed prometheus.Counter
}

func (m *metrics) transport(name string) *transportMetrics {
	return &transportMetrics{
		lines:       m.lines.WithLabelValues(name),
		bytes:       m.bytes.WithLabelValues(name),
		parseFailed: m.parseFailed.WithLabelValues(name),
	}
}
