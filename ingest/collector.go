package ingest

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sluicehq/sluice/backpressure"
	"github.com/sluicehq/sluice/kafkatopic"
	"github.com/sluicehq/sluice/schemas"
)

// Defaults for CollectorConfig.
const (
	DefaultMaxBodyBytes = 8 << 20
	DefaultMaxEvents    = 100_000
	// DefaultMaxParsing bounds request bodies parsed at once.
	DefaultMaxParsing        = 32
	DefaultMaxReportedErrors = 100
	DefaultMaxEventBytes     = 1_000_000
	DefaultProduceTimeout    = 10 * time.Second
	DefaultReadyTimeout      = 2 * time.Second
)

// readyCacheTTL keeps /readyz from turning every probe (or every stranger
// polling it) into a Kafka round trip.
const readyCacheTTL = time.Second

// CollectorConfig configures a Collector. Registry and Producer are
// required; zero values of the rest take the defaults.
type CollectorConfig struct {
	// Registry holds the streams events may be posted to.
	Registry *schemas.Registry
	// Producer writes accepted events to Kafka.
	Producer Producer
	// TopicPrefix prefixes stream names to make topic names; empty means
	// kafkatopic.DefaultPrefix.
	TopicPrefix string
	// MaxBodyBytes bounds the body both as sent and after decompression.
	MaxBodyBytes int64
	// MaxEvents bounds the events (valid or not) in one request.
	MaxEvents int
	// MaxReportedErrors caps the per-event errors listed in one answer.
	MaxReportedErrors int
	// MaxEventBytes bounds one encoded event (key plus value). Keep it at
	// most the producer's batch size in bytes and the broker's
	// message.max.bytes, so that one oversized event is rejected alone
	// instead of failing its whole request in Kafka.
	MaxEventBytes int
	// Tokens, when not empty, are the bearer tokens allowed to post events.
	// /healthz, /readyz and /metrics stay open, for probes and scrapers.
	Tokens []string
	// Admission bounds events in flight; nil means a default one.
	Admission *backpressure.Admission
	// MaxParsing bounds the request bodies read and parsed at once
	// (default 32). Event admission applies only once a body is parsed, so
	// without this bound many large bodies arriving together could take
	// memory without limit; with it, the peak is about MaxParsing times
	// twice MaxBodyBytes.
	MaxParsing int
	// Breaker guards Kafka; nil means a default one named "kafka".
	Breaker *backpressure.Breaker
	// ProduceTimeout bounds how long a request waits for Kafka's ack.
	ProduceTimeout time.Duration
	// Ready reports whether Kafka is usable, for /readyz. When nil and the
	// Producer is a Pinger, it pings with the topics of all streams.
	Ready func(context.Context) error
	// ReadyTimeout bounds one readiness check.
	ReadyTimeout time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the collector's metrics; Gatherer is served on
	// /metrics. When Gatherer is nil and Registerer is also a Gatherer (a
	// *prometheus.Registry), that is used; when both are nil, a private
	// registry is.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
}

// Collector is the HTTP collector, an http.Handler serving
// POST /v1/streams/{stream}/events, GET /healthz, GET /readyz and GET /metrics.
type Collector struct {
	registry          *schemas.Registry
	producer          Producer
	topics            map[string]string // stream name -> topic
	maxBodyBytes      int64
	maxEvents         int
	maxReportedErrors int
	maxEventBytes     int
	tokens            [][sha256.Size]byte
	admission         *backpressure.Admission
	parsing           *backpressure.Admission
	breaker           *backpressure.Breaker
	produceTimeout    time.Duration
	ready             func(context.Context) error
	readyTimeout      time.Duration
	log               *slog.Logger
	metrics           *metrics
	mux               *http.ServeMux

	readyMu   sync.Mutex
	readyAt   time.Time
	readyErr  error
	readyInit bool
}

// NewCollector builds a Collector and registers its metrics.
func NewCollector(cfg CollectorConfig) (*Collector, error) {
	if cfg.Registry == nil {
		return nil, errors.New("ingest: no stream registry")
	}
	if cfg.Producer == nil {
		return nil, errors.New("ingest: no producer")
	}
	if cfg.TopicPrefix == "" {
		cfg.TopicPrefix = kafkatopic.DefaultPrefix
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxEvents <= 0 {
		cfg.MaxEvents = DefaultMaxEvents
	}
	if cfg.MaxReportedErrors <= 0 {
		cfg.MaxReportedErrors = DefaultMaxReportedErrors
	}
	if cfg.MaxEventBytes <= 0 {
		cfg.MaxEventBytes = DefaultMaxEventBytes
	}
	if cfg.ProduceTimeout <= 0 {
		cfg.ProduceTimeout = DefaultProduceTimeout
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	log := cfg.Logger.With("component", "http-collector")
	if cfg.Admission == nil {
		cfg.Admission = backpressure.NewAdmission(backpressure.AdmissionConfig{})
	}
	if cfg.MaxParsing <= 0 {
		cfg.MaxParsing = DefaultMaxParsing
	}
	if cfg.Breaker == nil {
		cfg.Breaker = backpressure.NewBreaker(backpressure.BreakerConfig{Name: "kafka", Logger: log})
	}
	if cfg.Admission.Capacity() < int64(cfg.MaxEvents) {
		log.Warn("admission capacity below the per-request event limit: larger requests get 413",
			"capacity", cfg.Admission.Capacity(), "max_events", cfg.MaxEvents)
	}

	c := &Collector{
		registry:          cfg.Registry,
		producer:          cfg.Producer,
		topics:            make(map[string]string),
		maxBodyBytes:      cfg.MaxBodyBytes,
		maxEvents:         cfg.MaxEvents,
		maxReportedErrors: cfg.MaxReportedErrors,
		maxEventBytes:     cfg.MaxEventBytes,
		admission:         cfg.Admission,
		parsing:           backpressure.NewAdmission(backpressure.AdmissionConfig{Capacity: int64(cfg.MaxParsing)}),
		breaker:           cfg.Breaker,
		produceTimeout:    cfg.ProduceTimeout,
		ready:             cfg.Ready,
		readyTimeout:      cfg.ReadyTimeout,
		log:               log,
	}
	topics := make([]string, 0, len(cfg.Registry.Names()))
	for _, name := range cfg.Registry.Names() {
		t := kafkatopic.Name(cfg.TopicPrefix, name)
		c.topics[name] = t
		topics = append(topics, t)
	}
	if c.ready == nil {
		if p, ok := cfg.Producer.(Pinger); ok {
			c.ready = func(ctx context.Context) error { return p.Ping(ctx, topics...) }
		}
	}
	for i, tok := range cfg.Tokens {
		if tok == "" {
			return nil, fmt.Errorf("ingest: token %d is empty", i)
		}
		// Comparing fixed-size digests keeps the comparison constant-time
		// in the token's length as well as its content.
		c.tokens = append(c.tokens, sha256.Sum256([]byte(tok)))
	}

	reg, gat := cfg.Registerer, cfg.Gatherer
	if reg == nil && gat == nil {
		r := prometheus.NewRegistry()
		reg, gat = r, r
	}
	if gat == nil {
		g, ok := reg.(prometheus.Gatherer)
		if !ok {
			return nil, errors.New("ingest: Registerer is not a Gatherer; set Gatherer for /metrics")
		}
		gat = g
	}
	m, err := newMetrics(reg, c.admission, c.breaker)
	if err != nil {
		return nil, err
	}
	c.metrics = m

	c.mux = http.NewServeMux()
	c.mux.HandleFunc("POST /v1/streams/{stream}/events", c.handleEvents)
	c.mux.HandleFunc("GET /healthz", c.handleHealth)
	c.mux.HandleFunc("GET /readyz", c.handleReady)
	c.mux.Handle("GET /metrics", promhttp.HandlerFor(gat, promhttp.HandlerOpts{}))
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
	if c.breaker.State() == backpressure.Open {
		c.unavailable(w, label, "kafka unavailable (circuit open)")
		return
	}

	if err := c.parsing.Acquire(r.Context(), 1); err != nil {
		setRetryAfter(w, c.parsing.RetryAfter())
		c.fail(w, label, http.StatusTooManyRequests, "too many requests being parsed at once; retry later")
		return
	}
	releaseParsing := sync.OnceFunc(func() { c.parsing.Release(1) })
	defer releaseParsing()

	body, rerr := c.openBody(w, r)
	if rerr == nil {
		// Millisecond precision: what Encode writes and what the record's
		// timestamp holds must be the same instant.
		b := c.newBatch(st, time.Now().UTC().Truncate(time.Millisecond))
		if isNDJSON(r.Header.Get("Content-Type")) {
			rerr = b.readNDJSON(body)
		} else {
			rerr = b.readJSON(body)
		}
		if rerr == nil {
			// The body is parsed and encoded: the slot goes to the next
			// request while this one waits for Kafka.
			releaseParsing()
			c.produce(w, r, label, b)
			return
		}
	}
	c.fail(w, label, rerr.status, rerr.msg)
}

// produce sends a parsed batch to Kafka and answers.
func (c *Collector) produce(w http.ResponseWriter, r *http.Request, stream string, b *batch) {
	resp := b.resp
	resp.Accepted = len(b.msgs)
	c.metrics.events.WithLabelValues(stream, "rejected").Add(float64(resp.Rejected))
	if resp.Accepted == 0 {
		c.reply(w, stream, http.StatusBadRequest, resp)
		return
	}
	refused := c.metrics.events.WithLabelValues(stream, "refused")

	n := int64(len(b.msgs))
	if err := c.admission.Acquire(r.Context(), n); err != nil {
		refused.Add(float64(n))
		switch {
		case errors.Is(err, backpressure.ErrTooLarge):
			c.fail(w, stream, http.StatusRequestEntityTooLarge, fmt.Sprintf(
				"%d valid events in one request, but at most %d can be in flight: split it", n, c.admission.Capacity()))
		case errors.Is(err, backpressure.ErrBusy):
			c.log.Debug("admission refused", "stream", stream, "events", n)
			setRetryAfter(w, c.admission.RetryAfter())
			c.fail(w, stream, http.StatusTooManyRequests, "too many events in flight: retry later")
		default: // the client went away
			c.unavailable(w, stream, "request cancelled")
		}
		return
	}
	defer c.admission.Release(n)

	ctx, cancel := context.WithTimeout(r.Context(), c.produceTimeout)
	defer cancel()
	start := time.Now()
	err := c.breaker.Do(ctx, func(ctx context.Context) error { return c.producer.Produce(ctx, b.msgs) })
	result := "ok"
	if err != nil {
		result = "error"
	}
	c.metrics.produce.WithLabelValues(stream, result).Observe(time.Since(start).Seconds())
	if err != nil {
		refused.Add(float64(n))
		if errors.Is(err, backpressure.ErrOpen) {
			c.unavailable(w, stream, "kafka unavailable (circuit open)")
			return
		}
		if r.Context().Err() == nil {
			c.log.Warn("produce failed", "stream", stream, "events", n, "err", err)
		}
		c.unavailable(w, stream, "kafka did not acknowledge the events")
		return
	}
	c.metrics.events.WithLabelValues(stream, "accepted").Add(float64(n))
	c.reply(w, stream, http.StatusAccepted, resp)
}

// unavailable answers 503. Nothing of the request counts as acknowledged,
// and the message says so because producers decide on it whether to retry.
func (c *Collector) unavailable(w http.ResponseWriter, stream, why string) {
	setRetryAfter(w, c.breaker.RetryAfter())
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

func (c *Collector) handleHealth(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (c *Collector) handleReady(w http.ResponseWriter, r *http.Request) {
	if len(c.registry.Names()) == 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": "no stream schemas loaded"})
		return
	}
	if err := c.checkReady(r.Context()); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "streams": c.registry.Names()})
}

func (c *Collector) checkReady(ctx context.Context) error {
	if c.ready == nil {
		return nil
	}
	c.readyMu.Lock()
	defer c.readyMu.Unlock()
	if c.readyInit && time.Since(c.readyAt) < readyCacheTTL {
		return c.readyErr
	}
	cctx, cancel := context.WithTimeout(ctx, c.readyTimeout)
	defer cancel()
	err := c.ready(cctx)
	if ctx.Err() != nil {
		// The prober hung up; its cancellation says nothing about Kafka.
		return err
	}
	c.readyInit, c.readyAt, c.readyErr = true, time.Now(), err
	return err
}

func (c *Collector) fail(w http.ResponseWriter, stream string, status int, msg string) {
	c.reply(w, stream, status, ErrorResponse{Error: msg})
}

func (c *Collector) reply(w http.ResponseWriter, stream string, status int, body any) {
	c.metrics.requests.WithLabelValues(stream, strconv.Itoa(status)).Inc()
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		// Only our own response types get here; they always marshal.
		http.Error(w, `{"error":"internal error"}`, http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func setRetryAfter(w http.ResponseWriter, d time.Duration) {
	secs := int(math.Ceil(d.Seconds()))
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
}
