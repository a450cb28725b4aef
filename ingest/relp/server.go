// Package relp is Sluice's RELP collector: a server for the Reliable Event
// Logging Protocol as rsyslog's omrelp (librelp) speaks it. Each syslog
// frame is answered "rsp 200 OK" only after Kafka acknowledged its event
// (or, for a line that cannot be parsed, its dead letter), so a sender
// keeps and resends what a crashed Sluice never answered.
package relp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/ingest/syslog"
)

// Defaults for Config.
const (
	DefaultMaxConnections  = 100
	DefaultMaxPendingBytes = 512 << 10
	DefaultMaxBufferBytes  = 16 << 20
	DefaultMaxBatch        = 512
	DefaultLinger          = time.Millisecond
	DefaultFrameTimeout    = 30 * time.Second
	// DefaultIdleTimeout is the syslog TCP listener's: an omrelp session
	// whose rsyslog has nothing to send for ten minutes gives its slot
	// back, and librelp reconnects when it has.
	DefaultIdleTimeout   = 10 * time.Minute
	DefaultWriteTimeout  = 30 * time.Second
	DefaultShutdownGrace = 5 * time.Second
	DefaultStream        = syslog.Stream
)

// Config configures a Server. Addr and Gate are required; zero
// values of the rest take the defaults.
type Config struct {
	// Addr is the TCP address to listen on, host:port.
	Addr string
	// Gate takes the events to Kafka.
	Gate *ingest.Gate
	// Stream receives the events, each line mapped by syslog.ToEvent;
	// default app_logs.
	Stream string
	// RandomIDs gives events random event_ids instead of ones derived from
	// the raw line (--syslog-derive-ids=false): a frame resent after a
	// crash is then counted twice.
	RandomIDs bool
	// MaxFrameBytes is the largest DATALEN taken; a bigger one closes the
	// connection. Default 128 KiB, librelp's own.
	MaxFrameBytes int
	// MaxConnections caps the connections open at once; more are closed
	// as soon as they are accepted.
	MaxConnections int
	// MaxPendingBytes bounds the frame data one connection holds read but
	// not yet answered; reading pauses beyond it. A larger frame takes all
	// of it.
	MaxPendingBytes int
	// MaxBufferBytes bounds the frame data all connections together hold
	// read but not yet answered, frames being read included: a connection
	// whose next frame does not fit pauses reading (its sender's window
	// fills and it waits) until others are answered. With it the server's
	// memory is MaxBufferBytes plus, per connection, its read buffer and
	// goroutines, however many senders there are or however slowly they
	// send. Half of it is for frames of up to 4 KiB, half for larger ones
	// (a larger frame than that half takes all of it), so that senders of
	// large frames never hold back those of ordinary lines; each half is
	// at least 4 KiB.
	MaxBufferBytes int
	// MaxBatch is the most frames committed to Kafka together. omrelp
	// sends up to its window (128 by default) before it waits.
	MaxBatch int
	// Linger is how long a batch waits for more frames once the ones
	// already read are taken.
	Linger time.Duration
	// FrameTimeout closes a connection that started a frame and did not
	// finish it within this time.
	FrameTimeout time.Duration
	// IdleTimeout closes, with a serverclose, a connection that sent
	// nothing between frames for this long, so that idle sessions cannot
	// hold every one of MaxConnections (default DefaultIdleTimeout).
	// Frames read before are answered first.
	IdleTimeout time.Duration
	// WriteTimeout closes a connection that does not take answers.
	WriteTimeout time.Duration
	// ShutdownGrace is how long, once Run's context ends, commits in flight
	// may still finish so that their frames are answered; frames not
	// answered by then are resent by the sender.
	ShutdownGrace time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics; nil means none are exported.
	Registerer prometheus.Registerer
}

// Server is the RELP collector, an ingest.Source. New binds the listener;
// Run serves until its context ends. Run owns every goroutine of the
// server: one accepting connections, and per connection one that reads
// frames and one that commits and answers them; all end before Run
// returns.
type Server struct {
	cfg      Config
	ln       net.Listener
	log      *slog.Logger
	m        *metrics
	maxBatch int
	slots    chan struct{} // one per open connection
	// buffer is Config.MaxBufferBytes, taken by every session's pending.
	buffer *buffer
}

// New validates cfg, registers the metrics and listens on cfg.Addr, so that
// a taken port fails at start-up. The listener is closed by Run.
func New(cfg Config) (*Server, error) {
	if cfg.Gate == nil {
		return nil, errors.New("relp: Gate is required")
	}
	setDefaults(&cfg)
	if cfg.Gate.Registry().Stream(cfg.Stream) == nil {
		return nil, fmt.Errorf("relp: unknown stream %q", cfg.Stream)
	}
	buffer := newBuffer(cfg.MaxBufferBytes)
	m, err := newMetrics(cfg.Registerer, buffer)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("relp: listen on %s: %w", cfg.Addr, err)
	}
	// A commit larger than the gate's admission capacity could never be
	// admitted; the gate refuses it for good.
	maxBatch := min(cfg.MaxBatch, cfg.Gate.MaxEvents(), int(min(cfg.Gate.AdmissionCapacity(), 1<<30)))
	return &Server{
		cfg: cfg, ln: ln, m: m, maxBatch: max(maxBatch, 1),
		log:    cfg.Logger.With("component", "relp"),
		slots:  make(chan struct{}, cfg.MaxConnections),
		buffer: buffer,
	}, nil
}

func setDefaults(cfg *Config) {
	if cfg.Stream == "" {
		cfg.Stream = DefaultStream
	}
	if cfg.MaxFrameBytes <= 0 {
		cfg.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = DefaultMaxConnections
	}
	if cfg.MaxPendingBytes <= 0 {
		cfg.MaxPendingBytes = DefaultMaxPendingBytes
	}
	if cfg.MaxBufferBytes <= 0 {
		cfg.MaxBufferBytes = DefaultMaxBufferBytes
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.Linger < 0 {
		cfg.Linger = 0
	} else if cfg.Linger == 0 {
		cfg.Linger = DefaultLinger
	}
	if cfg.FrameTimeout <= 0 {
		cfg.FrameTimeout = DefaultFrameTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = DefaultShutdownGrace
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
}

// Name implements ingest.Source.
func (s *Server) Name() string { return "relp" }

// Addr is the address the server listens on (with the port chosen when
// Config.Addr asked for port 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Run accepts connections until ctx ends, then stops accepting, lets
// commits in flight finish for up to ShutdownGrace, answers them, tells
// each sender "serverclose" and returns once every connection is closed.
func (s *Server) Run(ctx context.Context) error {
	s.log.Info("relp listening", "addr", s.ln.Addr().String(), "max_connections", s.cfg.MaxConnections,
		"max_frame_bytes", s.cfg.MaxFrameBytes, "max_buffer_bytes", s.cfg.MaxBufferBytes)
	// Sessions end with ctx, and Run ends it too on its way out, so that
	// an accept failure returns without waiting for the caller's shutdown.
	// Commits in flight then get ShutdownGrace to finish.
	var wg sync.WaitGroup
	commitCtx, stopCommits := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCommits()
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	context.AfterFunc(ctx, func() {
		time.AfterFunc(s.cfg.ShutdownGrace, stopCommits)
		_ = s.ln.Close()
	})
	var backoff time.Duration
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && !errors.Is(err, net.ErrClosed) {
				// Out of file descriptors and the like: wait, as
				// net/http does, rather than spin or give up.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("relp accept failed; retrying", "err", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			_ = s.ln.Close()
			return fmt.Errorf("relp: accept: %w", err)
		}
		backoff = 0
		select {
		case s.slots <- struct{}{}:
		default:
			s.m.refused.Inc()
			s.log.Warn("relp connection refused: too many open", "peer", conn.RemoteAddr().String(), "max_connections", s.cfg.MaxConnections)
			_ = conn.Close()
			continue
		}
		wg.Go(func() {
			defer func() { <-s.slots }()
			s.m.conns.Inc()
			defer s.m.conns.Dec()
			newSession(s, conn).serve(ctx, commitCtx)
		})
	}
}
