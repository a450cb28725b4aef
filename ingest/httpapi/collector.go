package httpapi

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluicehq/sluice/backpressure"
	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/ops"
	"github.com/sluicehq/sluice/schemas"
)

// Source is the gate's label for events posted over HTTP.
const Source = "http"

// Defaults for CollectorConfig.
const (
	DefaultMaxBodyBytes = 8 << 20
	// DefaultMaxParsing bounds request bodies parsed at once.
	DefaultMaxParsing = 32
	// DefaultMinBodyRate is the slowest average rate, in bytes per second,
	// at which a request body may arrive after DefaultBodyGrace: a body of
	// DefaultMaxBodyBytes then has about two minutes.
	DefaultMinBodyRate = 64 << 10
	// DefaultBodyGrace is how long a body may take before the minimum rate
	// applies; a body that sends nothing at all is answered 408 after it.
	DefaultBodyGrace = 5 * time.Second
)

// prereadBytes of a body (all of a smaller one) must have arrived before
// the request takes a parsing slot, so that uploads stalled at their start
// hold none. It is also what a connection may hold outside the slots:
// with the connection cap, 16 MiB at 4096 connections.
const prereadBytes = 4 << 10

// Small bodies have parsing slots of their own, so that large ones (a
// hostile client's 8 MiB bodies, sent again without waiting) cannot keep a
// device's small batches waiting until they are refused: a body of a known
// length up to smallBodyBytes, not compressed (a small gzip body can
// inflate to MaxBodyBytes), takes one of smallParsing slots. They hold at
// most smallParsing times the body and the events it encodes into: about
// 4 MiB.
const (
	smallBodyBytes = 32 << 10
	smallParsing   = 32
)

// slotSlack is how long a body holding a parsing slot may go without data
// beyond what the minimum rate has paid for: what is left of the grace
// goes once the slot is taken, so that uploads that send their first bytes
// and stall give the slot back quickly.
const slotSlack = 2 * time.Second

// CollectorConfig configures a Collector. Gate is required; zero values of
// the rest take the defaults.
type CollectorConfig struct {
	// Gate validates the events and writes them to Kafka.
	Gate *ingest.Gate
	// MaxBodyBytes bounds the body both as sent and after decompression.
	MaxBodyBytes int64
	// Tokens, when not empty, are the bearer tokens allowed to post events.
	Tokens []string
	// MaxParsing bounds the request bodies read and parsed at once
	// (default 32). Event admission applies only once a body is parsed, so
	// without this bound many large bodies arriving together could take
	// memory without limit; with it, the peak is about MaxParsing times
	// twice MaxBodyBytes.
	MaxParsing int
	// MinBodyRate is the slowest average rate, in bytes per second, at
	// which a body may arrive once BodyGrace has passed; slower bodies are
	// answered 408 (default DefaultMinBodyRate). Only time spent waiting
	// for the client counts.
	MinBodyRate int64
	// BodyGrace is the time a body has before MinBodyRate applies
	// (default DefaultBodyGrace).
	BodyGrace time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the collector's metrics; nil means a private
	// registry.
	Registerer prometheus.Registerer
}

// Collector is the HTTP collector, an http.Handler serving
// POST /v1/streams/{stream}/events (package ops serves the probes and
// metrics beside it).
// It is one source of the ingest gate.
type Collector struct {
	gate         *ingest.Gate
	registry     *schemas.Registry
	maxBodyBytes int64
	tokens       [][sha256.Size]byte
	parsing      *backpressure.Admission
	smallParsing *backpressure.Admission
	minBodyRate  int64
	bodyGrace    time.Duration
	log          *slog.Logger
	metrics      *metrics
	mux          *http.ServeMux
}

// NewCollector builds a Collector and registers its metrics.
func NewCollector(cfg CollectorConfig) (*Collector, error) {
	if cfg.Gate == nil {
		return nil, errors.New("http collector: no gate")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	log := cfg.Logger.With("component", "http-collector")
	if cfg.MaxParsing <= 0 {
		cfg.MaxParsing = DefaultMaxParsing
	}
	if cfg.MinBodyRate <= 0 {
		cfg.MinBodyRate = DefaultMinBodyRate
	}
	if cfg.BodyGrace <= 0 {
		cfg.BodyGrace = DefaultBodyGrace
	}
	if cfg.Gate.AdmissionCapacity() < int64(cfg.Gate.MaxEvents()) {
		log.Warn("admission capacity below the per-request event limit: larger requests get 413",
			"capacity", cfg.Gate.AdmissionCapacity(), "max_events", cfg.Gate.MaxEvents())
	}

	c := &Collector{
		gate:         cfg.Gate,
		registry:     cfg.Gate.Registry(),
		maxBodyBytes: cfg.MaxBodyBytes,
		parsing:      backpressure.NewAdmission(backpressure.AdmissionConfig{Capacity: int64(cfg.MaxParsing)}),
		smallParsing: backpressure.NewAdmission(backpressure.AdmissionConfig{Capacity: smallParsing}),
		minBodyRate:  cfg.MinBodyRate,
		bodyGrace:    cfg.BodyGrace,
		log:          log,
	}
	for i, tok := range cfg.Tokens {
		if tok == "" {
			return nil, fmt.Errorf("http collector: token %d is empty", i)
		}
		// Comparing fixed-size digests keeps the comparison constant-time
		// in the token's length as well as its content.
		c.tokens = append(c.tokens, sha256.Sum256([]byte(tok)))
	}

	reg := cfg.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	c.metrics = m

	c.mux = http.NewServeMux()
	c.mux.HandleFunc("POST /v1/streams/{stream}/events", c.handleEvents)
	return c, nil
}

// ServeHTTP implements http.Handler.
func (c *Collector) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.mux.ServeHTTP(w, r) }

// ErrorResponse is the body of answers that fail a request as a whole.
type ErrorResponse struct {
	Error string `json:"error"`
	// Streams lists the known streams, on 404 for an unknown one.
	Streams []string `json:"streams,omitempty"`
}

func (c *Collector) handleEvents(w http.ResponseWriter, r *http.Request) {
	c.metrics.inflight.Inc()
	defer c.metrics.inflight.Dec()

	name := r.PathValue("stream")
	st := c.registry.Stream(name)
	label := ""
	if st != nil {
		// Only known names become label values: anyone can post to any path.
		label = name
	}
	// Authentication comes first so that strangers cannot list streams.
	if !c.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
		c.fail(w, label, http.StatusUnauthorized, "missing or invalid bearer token")
		return
	}
	if st == nil {
		c.reply(w, label, http.StatusNotFound, ErrorResponse{
			Error:   fmt.Sprintf("unknown stream %q", schemas.Truncate(name, 64)),
			Streams: c.registry.Names(),
		})
		return
	}
	// An open breaker answers before the body is read: the point is to
	// spend nothing on requests that cannot be acknowledged.
	if err := c.gate.Available(); err != nil {
		c.refused(w, label, 0, err)
		return
	}

	// The slot is taken only once the first prereadBytes of the body (all
	// of a smaller one) have arrived: a client that stalls before then
	// holds a goroutine until the minimum rate runs out, but no slot.
	rr, rerr := c.awaitBody(w, r)
	if rerr != nil {
		c.failRead(w, r, label, rerr)
		return
	}
	slots := c.slotsFor(r)
	if err := slots.Acquire(r.Context(), 1); err != nil {
		setRetryAfter(w, slots.RetryAfter())
		c.fail(w, label, http.StatusTooManyRequests, "too many requests being parsed at once; retry later")
		return
	}
	releaseParsing := sync.OnceFunc(func() { slots.Release(1) })
	defer releaseParsing()
	rr.spendGrace(slotSlack)

	b, err := c.gate.Begin(name, ingest.Origin{Source: Source})
	if err != nil {
		c.fail(w, label, http.StatusInternalServerError, err.Error())
		return
	}
	if rerr := c.parse(w, r, b); rerr != nil {
		c.failRead(w, r, label, rerr)
		return
	}
	// The body is parsed and encoded: the slot goes to the next request
	// while this one waits for Kafka.
	releaseParsing()
	c.commit(w, r, label, b)
}

// slotsFor returns the parsing slots r's body takes: the small bodies' own,
// or the others'.
func (c *Collector) slotsFor(r *http.Request) *backpressure.Admission {
	identity := r.Header.Get("Content-Encoding") == "" || strings.EqualFold(r.Header.Get("Content-Encoding"), "identity")
	if r.ContentLength >= 0 && r.ContentLength <= smallBodyBytes && identity {
		return c.smallParsing
	}
	return c.parsing
}

// awaitBody puts the minimum rate on the body and waits until its first
// prereadBytes (all of a smaller body) have arrived.
func (c *Collector) awaitBody(w http.ResponseWriter, r *http.Request) (*rateReader, *requestError) {
	if r.ContentLength > c.maxBodyBytes {
		return nil, c.tooLarge()
	}
	rc := http.NewResponseController(w)
	setDeadline := rc.SetReadDeadline
	// Clearing the server's own deadline is harmless: the rate reader sets
	// one before every read. It fails only where deadlines are not
	// supported (a test's recorder).
	if err := rc.SetReadDeadline(time.Time{}); err != nil {
		setDeadline = nil
	}
	rr := newRateReader(r.Body, setDeadline, c.minBodyRate, c.bodyGrace)
	br := bufio.NewReaderSize(rr, prereadBytes)
	r.Body = struct {
		io.Reader
		io.Closer
	}{br, rr}
	if _, err := br.Peek(prereadBytes); err != nil && err != io.EOF {
		return nil, c.readFailure(&ingest.ReadError{What: "reading body", Err: err})
	}
	return rr, nil
}

// parse reads the body into b.
func (c *Collector) parse(w http.ResponseWriter, r *http.Request, b *ingest.Batch) *requestError {
	body, rerr := c.openBody(w, r)
	if rerr != nil {
		return rerr
	}
	var err error
	if isNDJSON(r.Header.Get("Content-Type")) {
		err = b.ReadNDJSON(body, int(c.maxBodyBytes)+64)
	} else {
		err = b.ReadJSON(body)
	}
	if err != nil {
		return c.readFailure(err)
	}
	return nil
}

// failRead answers a request whose body could not be read or parsed. A
// body too slow is also logged and counted, and its connection closed:
// what the client still sends would only be read to be thrown away.
func (c *Collector) failRead(w http.ResponseWriter, r *http.Request, stream string, rerr *requestError) {
	if rerr.status == http.StatusRequestTimeout {
		c.metrics.slowBodies.Inc()
		c.log.Warn("request body below the minimum rate: answered 408 and closed",
			"remote", r.RemoteAddr, "stream", stream, "err", rerr.msg)
		w.Header().Set("Connection", "close")
	}
	c.fail(w, stream, rerr.status, rerr.msg)
}

// commit sends a parsed batch to Kafka and answers.
func (c *Collector) commit(w http.ResponseWriter, r *http.Request, stream string, b *ingest.Batch) {
	resp := b.Report()
	if resp.Accepted == 0 {
		_ = b.Commit(r.Context()) // counts the rejected events; produces nothing
		c.reply(w, stream, http.StatusBadRequest, resp)
		return
	}
	if err := b.Commit(r.Context()); err != nil {
		c.refused(w, stream, resp.Accepted, err)
		return
	}
	c.reply(w, stream, http.StatusAccepted, resp)
}

// refused answers a batch of n valid events that the gate did not take.
func (c *Collector) refused(w http.ResponseWriter, stream string, n int, err error) {
	switch {
	case errors.Is(err, ingest.ErrBatchTooLarge):
		c.fail(w, stream, http.StatusRequestEntityTooLarge, fmt.Sprintf(
			"%d valid events in one request, but at most %d can be in flight: split it", n, c.gate.AdmissionCapacity()))
	case errors.Is(err, ingest.ErrOverloaded):
		setRetryAfter(w, ingest.RetryAfter(err))
		c.fail(w, stream, http.StatusTooManyRequests, "too many events in flight: retry later")
	case errors.Is(err, ingest.ErrBacklog):
		c.unavailable(w, stream, ingest.RetryAfter(err), fmt.Sprintf(
			"the backlog of stream %s is near what Kafka retains (the store is behind)", stream))
	case errors.Is(err, ingest.ErrCircuitOpen):
		c.unavailable(w, stream, ingest.RetryAfter(err), "kafka unavailable (circuit open)")
	case errors.Is(err, ingest.ErrUnavailable):
		c.unavailable(w, stream, ingest.RetryAfter(err), "kafka did not acknowledge the events")
	default: // the client went away
		c.unavailable(w, stream, ingest.RetryAfter(err), "request cancelled")
	}
}

// unavailable answers 503. Nothing of the request counts as acknowledged,
// and the message says so because producers decide on it whether to retry.
func (c *Collector) unavailable(w http.ResponseWriter, stream string, after time.Duration, why string) {
	setRetryAfter(w, after)
	c.fail(w, stream, http.StatusServiceUnavailable,
		why+": nothing in this request was accepted; retrying with the same event_ids is safe")
}

func (c *Collector) authorized(r *http.Request) bool {
	if len(c.tokens) == 0 {
		return true
	}
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	match := 0
	for i := range c.tokens {
		match |= subtle.ConstantTimeCompare(sum[:], c.tokens[i][:])
	}
	return match == 1
}

func (c *Collector) fail(w http.ResponseWriter, stream string, status int, msg string) {
	c.reply(w, stream, status, ErrorResponse{Error: msg})
}

func (c *Collector) reply(w http.ResponseWriter, stream string, status int, body any) {
	c.metrics.requests.WithLabelValues(stream, strconv.Itoa(status)).Inc()
	ops.WriteJSON(w, status, body)
}

func setRetryAfter(w http.ResponseWriter, d time.Duration) {
	secs := int(math.Ceil(d.Seconds()))
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
}

// metrics are the HTTP collector's own; the events themselves are counted
// by the gate.
type metrics struct {
	// requests counts event posts by stream and HTTP status. The stream
	// label is empty for names that are not known streams.
	requests *prometheus.CounterVec
	inflight prometheus.Gauge
	// slowBodies counts bodies answered 408 for arriving below the
	// minimum rate (or not at all).
	slowBodies prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sluice", Subsystem: "ingest", Name: "requests_total",
			Help: "Event posts answered by the HTTP collector, by stream and HTTP status code.",
		}, []string{"stream", "code"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "sluice", Subsystem: "ingest", Name: "inflight_requests",
			Help: "Event posts being handled by the HTTP collector.",
		}),
		slowBodies: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sluice", Subsystem: "ingest", Name: "slow_bodies_total",
			Help: "Event posts answered 408 because the body arrived below the minimum rate (--http-min-body-rate) after its grace, or not at all.",
		}),
	}
	for _, col := range []prometheus.Collector{m.requests, m.inflight, m.slowBodies} {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("http collector: register metrics: %w", err)
		}
	}
	return m, nil
}
