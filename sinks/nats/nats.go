// Package nats is the NATS output (a sinks.Output): it publishes processed
// events to one subject per stream and partition key, <prefix><stream>.<key>.
//
// Where a JetStream stream captures a stream's subjects, events are published
// through JetStream with a Nats-Msg-Id derived from the event_id (see MsgID)
// and every acknowledgement is awaited, so a batch published again after a
// worker crash is deduplicated by the server within the stream's duplicate
// window; a batch that fails part-way says, in a *sinks.PartialError, how
// much of it is held. Elsewhere events go out on core NATS, confirmed by a
// flush round trip.
//
// Nothing is buffered while the connection is down: Publish fails at once
// and the caller retries, so a retry never adds a second copy to a batch
// still waiting in the client's reconnect buffer.
package nats

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/internal/tlsfiles"
	"github.com/sluicehq/sluice/sinks"
)

// Options configures a Publisher.
type Options struct {
	// URL is the server URL, or several separated by commas. It may carry
	// credentials (nats://user:pass@host, nats://token@host); they are
	// never logged. A tls:// URL asks for TLS, checked against the system
	// roots unless TLS is set.
	URL string
	// TLS, when set, requires TLS with this configuration (a private CA, a
	// client certificate).
	TLS *tls.Config
	// User and Password log in with a user name and password, instead of
	// credentials in the URL.
	User, Password string
	// CredsFile is a NATS credentials file (a user JWT and its nkey seed,
	// as `nsc` writes them), for servers in operator mode.
	CredsFile string
	// Prefix starts every subject (default "sluice.").
	Prefix string
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the connection and mode metrics
	// (sluice_nats_connected, sluice_nats_mode, sluice_nats_reconnects_total);
	// nil means none are exported.
	Registerer prometheus.Registerer
}

// flushTimeout bounds one wait for the server to confirm a batch, and one
// JetStream stream lookup.
const flushTimeout = 10 * time.Second

// modeRecheck is how long the choice between JetStream and core NATS for a
// stream holds before it is looked up again, so that a JetStream stream
// created while Sluice runs is picked up.
const modeRecheck = 30 * time.Second

// modeRetry is how soon a failed recheck is tried again: the known mode is
// kept meanwhile, and every Publish waiting on a lookup would be slow.
const modeRetry = 5 * time.Second

// Publisher publishes events on one NATS connection. It implements
// sinks.Output and is safe for concurrent use.
type Publisher struct {
	nc     *natsgo.Conn
	js     jetstream.JetStream
	prefix string
	log    *slog.Logger
	m      *metrics

	// closing is set by Close, so that the connection closing then is not
	// reported as the client giving up.
	closing atomic.Bool

	mu    sync.Mutex
	modes map[string]mode
}

// mode records whether a stream's subjects are captured by JetStream.
type mode struct {
	jsStream string    // empty: core NATS
	next     time.Time // when to look it up again
}

// Connect opens the connection. It keeps reconnecting for ever after a
// connection loss; meanwhile Publish fails at once (nothing is buffered).
func Connect(o Options) (*Publisher, error) {
	if o.Prefix == "" {
		o.Prefix = "sluice."
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	p := &Publisher{prefix: o.Prefix, log: o.Logger.With("component", "nats"), modes: make(map[string]mode)}
	p.m = newMetrics(p)
	opts := p.connectOptions(o)
	// Once without retrying in the background, so that a refused login or
	// certificate stops the worker with the reason rather than being
	// retried for ever as if NATS were down.
	nc, err := natsgo.Connect(o.URL, append(opts, natsgo.RetryOnFailedConnect(false))...)
	if err != nil {
		if r := refusal(err, o.URL); r != nil {
			return nil, r
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			return nil, fmt.Errorf("nats: connect: %w", redactErr(err))
		}
		// NATS is down or unreachable. A worker that starts meanwhile must
		// still write to ClickHouse: the connection is retried in the
		// background like any reconnect, and publishing fails (and is
		// retried) until it succeeds.
		p.log.Warn("not reachable yet; retrying in the background", "url", redact(o.URL), "err", redactErr(err))
		nc, err = natsgo.Connect(o.URL, append(opts, natsgo.RetryOnFailedConnect(true))...)
	}
	if err != nil {
		return nil, fmt.Errorf("nats: connect %s: %w", redact(o.URL), redactErr(err))
	}
	p.nc = nc
	p.js, err = jetstream.New(nc,
		// A batch is published as a whole before its acks are awaited.
		jetstream.WithPublishAsyncMaxPending(32_768),
		jetstream.WithPublishAsyncTimeout(flushTimeout),
	)
	if err == nil {
		err = p.m.register(o.Registerer)
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats: %w", err)
	}
	return p, nil
}

// writeBufferSize is the connection's write buffer.
const writeBufferSize = 256 << 10

// connectOptions are the options of every connection attempt.
func (p *Publisher) connectOptions(o Options) []natsgo.Option {
	opts := []natsgo.Option{
		natsgo.Name("sluice"),
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(500 * time.Millisecond),
		// -1 disables the reconnect buffer: a publish while disconnected
		// fails with ErrReconnectBufExceeded instead of being queued. A
		// queued batch would still be sent after the reconnect, and the
		// caller, told the attempt failed, would publish it again.
		natsgo.ReconnectBufSize(-1),
		// A batch goes out in writes of this size, then a flush: with
		// nats.go's 32 KiB, a write system call every hundred events.
		natsgo.WriteBufferSize(writeBufferSize),
		natsgo.DisconnectErrHandler(func(_ *natsgo.Conn, err error) {
			if err != nil { // nil: Close
				p.log.Warn("disconnected; publishing fails until reconnected", "err", redactErr(err))
			}
		}),
		natsgo.ReconnectHandler(func(c *natsgo.Conn) {
			p.m.reconnects.Inc()
			p.log.Info("reconnected", "url", c.ConnectedUrlRedacted())
		}),
		// Asynchronous errors (a refused login while reconnecting, a
		// slow consumer) go to the log; nats.go would print them to
		// stderr.
		natsgo.ErrorHandler(func(_ *natsgo.Conn, _ *natsgo.Subscription, err error) {
			p.log.Warn("connection error", "err", redactErr(err))
		}),
		// nats.go gives up on a server that refuses the login twice in a
		// row while reconnecting; say so, or publishing would fail for
		// ever with no reason given.
		natsgo.ClosedHandler(func(c *natsgo.Conn) {
			if err := c.LastError(); err != nil && !p.closing.Load() {
				p.log.Error("connection closed for good; publishing fails until sluice restarts", "err", redactErr(err))
			}
		}),
	}
	if o.TLS != nil {
		opts = append(opts, natsgo.Secure(o.TLS))
	}
	if o.User != "" {
		opts = append(opts, natsgo.UserInfo(o.User, o.Password))
	}
	if o.CredsFile != "" {
		opts = append(opts, natsgo.UserCredentials(o.CredsFile))
	}
	return opts
}

// Name returns "nats", the output's name in logs, metrics and its progress
// log.
func (p *Publisher) Name() string { return "nats" }

// Close drains and closes the connection and unregisters the metrics, so a
// new Publisher can register them again.
func (p *Publisher) Close() error {
	p.closing.Store(true)
	p.m.unregister()
	if err := p.nc.Drain(); err != nil && !errors.Is(err, natsgo.ErrConnectionClosed) {
		return fmt.Errorf("nats: drain: %w", err)
	}
	return nil
}

// metrics are the Publisher's Prometheus collectors.
type metrics struct {
	connected  prometheus.GaugeFunc
	reconnects prometheus.Counter
	mode       *prometheus.GaugeVec
	reg        prometheus.Registerer
}

func newMetrics(p *Publisher) *metrics {
	return &metrics{
		// Read from the connection at scrape time rather than set from the
		// disconnect/reconnect callbacks: nats.go runs those on its own
		// goroutine, so a gauge they set could lag or, racing the initial
		// connect, stay wrong.
		connected: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "sluice", Subsystem: "nats", Name: "connected",
			Help: "1 while the NATS output is connected to a server, else 0 (publishing fails meanwhile).",
		}, func() float64 {
			if p.nc != nil && p.nc.IsConnected() {
				return 1
			}
			return 0
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sluice", Subsystem: "nats", Name: "reconnects_total",
			Help: "Times the NATS output re-established its connection after losing it.",
		}),
		mode: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "sluice", Subsystem: "nats", Name: "mode",
			Help: "Per Sluice stream: 1 when its events go through JetStream (deduplicated by Nats-Msg-Id), 0 on core NATS.",
		}, []string{"stream"}),
	}
}

func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.connected, m.reconnects, m.mode} {
		if err := reg.Register(c); err != nil {
			m.unregisterFrom(reg)
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	m.reg = reg
	return nil
}

func (m *metrics) unregister() {
	if m.reg != nil {
		m.unregisterFrom(m.reg)
		m.reg = nil
	}
}

func (m *metrics) unregisterFrom(reg prometheus.Registerer) {
	for _, c := range []prometheus.Collector{m.connected, m.reconnects, m.mode} {
		reg.Unregister(c)
	}
}

// redact replaces the user information (user:password, or a token) of every
// URL in s by "redacted", so connection errors can be logged. It looks for
// the last '@' up to the end of the URL (a space, quote or comma) rather than
// parsing, because s may be a URL that failed to parse, or an error message
// quoting one.
func redact(s string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "://")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i+3])
		s = s[i+3:]
		end := strings.IndexAny(s, " \t\r\n\"',")
		if end < 0 {
			end = len(s)
		}
		if at := strings.LastIndexByte(s[:end], '@'); at >= 0 {
			b.WriteString("redacted@")
			s = s[at+1:]
		}
	}
}

// redactErr keeps credentials out of a connect error. A URL that fails to
// parse is not described at all: url.Error quotes it, and even its inner
// error can quote a piece of a password ("invalid port \":pa\" after host").
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return errors.New("invalid server URL (not shown: it may hold credentials)")
	}
	if msg := redact(err.Error()); msg != err.Error() {
		return redactedError{msg: msg, err: err}
	}
	return err
}

// refusal returns a *sinks.RefusedError when err, from connecting to
// rawURL, is a refused login or a failed TLS handshake, else nil. Its
// detail is the library's fixed message, never the server's text.
func refusal(err error, rawURL string) *sinks.RefusedError {
	r := &sinks.RefusedError{Sink: "nats", Addr: redact(rawURL), Reason: sinks.RefusedLogin, Err: err}
	for _, e := range []error{natsgo.ErrAuthorization, natsgo.ErrAuthExpired, natsgo.ErrAuthRevoked, natsgo.ErrAccountAuthExpired} {
		if errors.Is(err, e) {
			r.Detail = strings.TrimPrefix(e.Error(), "nats: ")
			return r
		}
	}
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		// Only the credentials file is read while connecting.
		r.Detail = "credentials file: " + pathErr.Error()
		return r
	}
	r.Reason = sinks.RefusedTLS
	if errors.Is(err, natsgo.ErrSecureConnWanted) {
		r.Detail = "the server does not offer TLS"
		return r
	}
	if r.Detail = tlsfiles.Refusal(err); r.Detail != "" {
		return r
	}
	if errors.Is(err, natsgo.ErrTLS) {
		// With TLS 1.3 a server that refuses the client's certificate
		// may just close the connection once the handshake is done.
		r.Detail = "the server closed the connection after the TLS handshake (does it require a client certificate?)"
		return r
	}
	return nil
}

// redactedError shows a redacted message but keeps the original error for
// errors.Is.
type redactedError struct {
	msg string
	err error
}

func (e redactedError) Error() string { return e.msg }
func (e redactedError) Unwrap() error { return e.err }
