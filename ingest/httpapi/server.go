package httpapi

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for ServerConfig.
const (
	// DefaultMaxConnections bounds the connections served at once.
	DefaultMaxConnections = 4096
	// MaxHeaderBytes bounds a request's header block.
	MaxHeaderBytes = 64 << 10
	// ReadHeaderTimeout bounds the wait for a request's headers.
	ReadHeaderTimeout = 10 * time.Second
	// IdleTimeout closes a kept-alive connection with no request.
	IdleTimeout = 2 * time.Minute
	// answerTime is what a request may take after its body, to be
	// acknowledged by Kafka (the gate's produce timeout, 10 s by default)
	// and answered, before the server stops writing to it.
	answerTime = time.Minute
)

// ServerConfig configures the HTTP server in front of the collector (and
// the probes and metrics beside it). Zero values take the defaults.
type ServerConfig struct {
	Handler http.Handler
	// MaxBodyBytes, MinBodyRate and BodyGrace are the collector's: with
	// them the server sizes its own timeouts to let the slowest body the
	// collector accepts through, and no slower one.
	MaxBodyBytes int64
	MinBodyRate  int64
	BodyGrace    time.Duration
	// MaxConnections bounds the connections served at once
	// (DefaultMaxConnections; sluice sizes it from --memory-limit). Beyond
	// it the server closes the connection idle the longest to make room;
	// with none idle, further connections wait in the kernel's backlog.
	MaxConnections int
	// Registerer receives the server's metrics; nil means a private
	// registry.
	Registerer prometheus.Registerer
	// Logger receives the server's own errors: failed TLS handshakes at
	// debug level (a port scanner or a misconfigured client must not flood
	// the log), others (accept errors, say) as warnings. Nil means
	// slog.Default().
	Logger *slog.Logger
	// TLS, when set, serves HTTPS only, with its certificates (and client
	// certificate policy); nil serves plain HTTP.
	TLS *tls.Config
}

// Server is an http.Server with bounds against clients that hold
// connections without using them: a cap on connections, on the header's
// size and time, a whole-request read timeout sized for the slowest body
// the collector accepts, a write timeout, and an idle timeout. The
// collector enforces the body's minimum rate itself, per request.
type Server struct {
	srv   *http.Server
	limit *connLimit
	tls   bool
}

// NewServer builds a Server and registers its metrics.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MinBodyRate <= 0 {
		cfg.MinBodyRate = DefaultMinBodyRate
	}
	if cfg.BodyGrace <= 0 {
		cfg.BodyGrace = DefaultBodyGrace
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = DefaultMaxConnections
	}
	reg := cfg.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	open := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "sluice", Subsystem: "http", Name: "connections_open",
		Help: "Connections open to the HTTP server (--http-addr).",
	})
	limit := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "sluice", Subsystem: "http", Name: "max_connections",
		Help: "Most connections the HTTP server serves at once (--http-max-connections); beyond it, an idle kept-alive connection is closed to make room, or new ones wait to be accepted.",
	})
	limit.Set(float64(cfg.MaxConnections))
	evicted := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "sluice", Subsystem: "http", Name: "idle_connections_closed_total",
		Help: "Kept-alive connections closed while idle to make room for a new one, at --http-max-connections.",
	})
	for _, col := range []prometheus.Collector{open, limit, evicted} {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("http server: register metrics: %w", err)
		}
	}
	// The slowest body accepted: the grace, then the largest body at the
	// minimum rate. The collector's own deadline ends it sooner when the
	// rate is not kept; this bounds every other handler.
	slowestBody := cfg.BodyGrace + time.Duration(float64(cfg.MaxBodyBytes)/float64(cfg.MinBodyRate)*float64(time.Second))
	readTimeout := ReadHeaderTimeout + slowestBody
	conns := newConnLimit(cfg.MaxConnections, evicted)
	srv := &http.Server{
		Handler:           cfg.Handler,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      readTimeout + answerTime,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ConnState: func(c net.Conn, st http.ConnState) {
			conns.track(c, st)
			switch st {
			case http.StateNew:
				open.Inc()
			case http.StateClosed, http.StateHijacked:
				open.Dec()
			}
		},
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	srv.ErrorLog = log.New(serverErrorLog{cfg.Logger}, "", 0)
	if cfg.TLS != nil {
		srv.TLSConfig = cfg.TLS.Clone()
		// HTTP/1.1 only, as over plain HTTP: the bounds above (connections,
		// body rate, parsing slots) are sized for one request at a time per
		// connection, and HTTP/2 would multiplex many on one.
		srv.TLSConfig.NextProtos = []string{"http/1.1"}
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}
	return &Server{srv: srv, limit: conns, tls: cfg.TLS != nil}, nil
}

// serverErrorLog takes the http.Server's own messages, which it writes to a
// *log.Logger, into the structured log, each at its level.
type serverErrorLog struct{ log *slog.Logger }

func (w serverErrorLog) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelWarn
	if strings.HasPrefix(msg, "http: TLS handshake error") {
		level = slog.LevelDebug
	}
	w.log.Log(context.Background(), level, msg, "component", "http server")
	return len(p), nil
}

// Serve serves on ln, at most MaxConnections connections at once (see
// connLimit), until
// Shutdown; it then returns http.ErrServerClosed. With TLS configured it
// serves HTTPS only: a plain HTTP request is answered 400. The TLS
// handshake is bounded by the header timeout.
func (s *Server) Serve(ln net.Listener) error {
	ln = s.limit.wrap(ln)
	if s.tls {
		return s.srv.ServeTLS(ln, "", "")
	}
	return s.srv.Serve(ln)
}

// Shutdown stops accepting and waits, within ctx, for requests in flight.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// ReadTimeout is the server's whole-request read timeout, for logs and
// tests.
func (s *Server) ReadTimeout() time.Duration { return s.srv.ReadTimeout }
