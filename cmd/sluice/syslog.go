package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/ingest/syslog"
	"github.com/sluicehq/sluice/membudget"
	"github.com/sluicehq/sluice/pipeline"
)

func init() {
	sourceFlagKinds = append(sourceFlagKinds, func() sourceFlags { return &syslogFlags{} })
}

// syslogFlags are the plain syslog listeners' flags (TCP and UDP).
// --syslog-derive-ids is defined here and read by the RELP collector too.
type syslogFlags struct {
	tcpAddr, udpAddr string
	deriveIDs        bool
	maxMessage       int
	maxConns         int
	readTimeout      time.Duration
	idleTimeout      time.Duration
	// bufferBytes and udpQueueBytes come from --memory-limit, longBytes
	// too unless given (zero: the collector's defaults).
	bufferBytes, udpQueueBytes, longBytes int
}

// useBudget takes the TCP batches, long messages and UDP queue held at
// once, and the connections, from the plan, which counts
// --syslog-max-connections and --syslog-max-long-message-bytes when they
// were given (memoryBudget).
func (s *syslogFlags) useBudget(b membudget.Budget, _ func(string) bool) {
	// The plan holds the flags' values when they were given, and its own
	// when they were not or were 0.
	s.bufferBytes, s.udpQueueBytes = b.SyslogBufferBytes, b.SyslogUDPQueueBytes
	s.longBytes, s.maxConns = b.SyslogLongMessageBytes, b.SyslogConnections
}

func (s *syslogFlags) register(f *pflag.FlagSet, dev bool) {
	def := ""
	if dev {
		def = "127.0.0.1:5514"
	}
	f.StringVar(&s.tcpAddr, "syslog-tcp-addr", def,
		"address of the syslog TCP listener (RFC 5424 or RFC 3164; octet-counted or newline-delimited frames, told apart per frame); empty turns it off")
	f.StringVar(&s.udpAddr, "syslog-udp-addr", def,
		"address of the syslog UDP listener (one datagram, one message; what cannot be queued is dropped and counted in sluice_syslog_dropped_total); empty turns it off")
	f.BoolVar(&s.deriveIDs, "syslog-derive-ids", true,
		"give each syslog and RELP message an event_id derived from its raw line, so a resent line counts once (two byte-identical lines within the dedupe window count once too); false assigns random ids")
	f.IntVar(&s.maxMessage, "syslog-max-message-bytes", syslog.DefaultMaxMessageBytes,
		"largest syslog message: a longer line is cut to it and dead-lettered; a longer octet count closes the TCP connection")
	f.IntVar(&s.maxConns, "syslog-max-connections", 0,
		"most syslog TCP connections open at once; more are closed as soon as they are accepted. 0 sizes it from --memory-limit (32 KiB each besides their batches; 102 at 512MiB in dev, at most 1024)")
	f.IntVar(&s.longBytes, "syslog-max-long-message-bytes", 0,
		"most bytes of TCP messages longer than a connection's 16 KiB read buffer being read at once, over all connections: such a message takes its length before it is allocated, and its connection waits, unread, for up to --syslog-read-timeout while others hold it. 0 sizes it from --memory-limit (1.6MiB at 512MiB in dev, at most 8MiB)")
	f.DurationVar(&s.readTimeout, "syslog-read-timeout", syslog.DefaultReadTimeout,
		"a syslog TCP connection that stops in the middle of a message for this long is closed")
	f.DurationVar(&s.idleTimeout, "syslog-idle-timeout", syslog.DefaultIdleTimeout,
		"a syslog TCP connection that sends nothing for this long is closed, freeing its slot (senders reconnect)")
}

func (s *syslogFlags) sources(bool) ([]pipeline.SourceFactory, error) {
	if s.tcpAddr == "" && s.udpAddr == "" {
		return nil, nil
	}
	if s.maxMessage <= 0 || s.maxConns < 0 || s.longBytes < 0 || s.readTimeout <= 0 || s.idleTimeout <= 0 {
		return nil, fmt.Errorf("--syslog-max-message-bytes, --syslog-read-timeout and --syslog-idle-timeout must be positive, --syslog-max-connections and --syslog-max-long-message-bytes not negative")
	}
	cfg := syslog.Config{
		TCPAddr:         s.tcpAddr,
		UDPAddr:         s.udpAddr,
		DeriveIDs:       s.deriveIDs,
		MaxMessageBytes: s.maxMessage,
		MaxConnections:  s.maxConns,
		ReadTimeout:     s.readTimeout,
		IdleTimeout:     s.idleTimeout,
		MaxBufferBytes:  s.bufferBytes,
		UDPQueueBytes:   s.udpQueueBytes,

		MaxLongMessageBytes: s.longBytes,
	}
	return []pipeline.SourceFactory{func(gate *ingest.Gate, reg prometheus.Registerer, log *slog.Logger) (ingest.Source, error) {
		c := cfg
		c.Registerer, c.Logger = reg, log
		return syslog.New(gate, c)
	}}, nil
}
