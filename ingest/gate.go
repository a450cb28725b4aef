package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/backpressure"
	"github.com/sluicehq/sluice/deadletter"
	"github.com/sluicehq/sluice/kafkatopic"
	"github.com/sluicehq/sluice/schemas"
)

// Defaults for GateConfig.
const (
	DefaultMaxEvents         = 100_000
	DefaultMaxReportedErrors = 20
	DefaultMaxEventBytes     = 1_000_000
	DefaultProduceTimeout    = 10 * time.Second
	// DefaultAdmissionBytes bounds the bytes in flight when GateConfig
	// sets no AdmissionBytes: about what DefaultMaxEvents events of a
	// few hundred bytes weigh, so that it binds only on large events.
	DefaultAdmissionBytes = 128 << 20
)

// MessageOverhead is what an admitted message weighs besides its key,
// value and headers: the Message and kafka-go's copy of it (about 110 and
// 200 bytes of structs and slice headers), held while it waits for Kafka.
// Without it a flood of tiny events would weigh next to nothing.
const MessageOverhead = 320

// GateConfig configures a Gate. Registry and Producer are required; zero
// values of the rest take the defaults.
type GateConfig struct {
	// Registry holds the streams events may be sent to.
	Registry *schemas.Registry
	// Producer writes accepted events and dead letters to Kafka.
	Producer Producer
	// TopicPrefix prefixes stream names to make topic names, and names the
	// dead-letter topic; empty means kafkatopic.DefaultPrefix.
	TopicPrefix string
	// MaxEvents bounds the events (valid or not) in one batch.
	MaxEvents int
	// MaxReportedErrors caps the per-event errors a batch lists.
	MaxReportedErrors int
	// MaxEventBytes bounds one encoded event (key plus value). Keep it at
	// most the producer's batch size in bytes and the broker's
	// message.max.bytes, so that one oversized event is rejected alone
	// instead of failing its whole batch in Kafka.
	MaxEventBytes int
	// Admission bounds events in flight across all sources; nil means a
	// default one.
	Admission *backpressure.Admission
	// AdmissionBytes bounds the bytes of the events in flight across all
	// sources, each message weighing its key, value and headers plus
	// MessageOverhead; nil means one of DefaultAdmissionBytes. A batch
	// takes both admissions: events, then bytes.
	AdmissionBytes *backpressure.Admission
	// Breaker guards Kafka; nil means a default one named "kafka".
	Breaker *backpressure.Breaker
	// Shedder, when set, is asked before each commit whether a stream's
	// events must be refused because what is unread of its topic nears
	// Kafka's retention (backlog.Watcher); nil means never.
	Shedder Shedder
	// ProduceTimeout bounds how long a commit waits for Kafka's ack.
	ProduceTimeout time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the gate's metrics; nil means none are exported.
	Registerer prometheus.Registerer
}

// Gate is the one way from a collector to Kafka. Every source (HTTP, MQTT,
// syslog, RELP) hands it decoded events in batches; the gate validates them
// against their stream's schema, stamps event_id and received_at, encodes
// them, admits them against the in-flight bound, produces them with
// acks=all and returns once Kafka holds every one. A source knows nothing of
// Kafka: it acknowledges its producer when Commit returns nil and pushes back
// (429, withheld acks, paused reads) when Commit is refused.
//
// A Gate is safe for concurrent use; each Batch belongs to one goroutine.
type Gate struct {
	registry          *schemas.Registry
	producer          Producer
	topics            map[string]string // stream name -> topic
	dlqTopic          string
	maxEvents         int
	maxReportedErrors int
	maxEventBytes     int
	admission         *backpressure.Admission
	admissionBytes    *backpressure.Admission
	breaker           *backpressure.Breaker
	shedder           Shedder
	produceTimeout    time.Duration
	log               *slog.Logger
	metrics           *gateMetrics
	// lastLen is how many messages the last batch committed held: the
	// next batch starts with room for as many (up to maxPrealloc), where
	// growing one message at a time from none reallocated eight times for
	// a batch of 100.
	lastLen atomic.Int64
}

// maxPrealloc bounds the messages a batch makes room for before it knows
// how many it will hold (112 bytes each).
const maxPrealloc = 256

// NewGate builds a Gate and registers its metrics.
func NewGate(cfg GateConfig) (*Gate, error) {
	if cfg.Registry == nil {
		return nil, errors.New("ingest: no stream registry")
	}
	if cfg.Producer == nil {
		return nil, errors.New("ingest: no producer")
	}
	if cfg.TopicPrefix == "" {
		cfg.TopicPrefix = kafkatopic.DefaultPrefix
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
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	log := cfg.Logger.With("component", "ingest-gate")
	if cfg.Admission == nil {
		cfg.Admission = backpressure.NewAdmission(backpressure.AdmissionConfig{})
	}
	if cfg.AdmissionBytes == nil {
		cfg.AdmissionBytes = backpressure.NewAdmission(backpressure.AdmissionConfig{Capacity: DefaultAdmissionBytes})
	}
	if cfg.Breaker == nil {
		cfg.Breaker = backpressure.NewBreaker(backpressure.BreakerConfig{Name: "kafka", Logger: log})
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	g := &Gate{
		registry:          cfg.Registry,
		producer:          cfg.Producer,
		topics:            make(map[string]string),
		dlqTopic:          kafkatopic.DLQ(cfg.TopicPrefix),
		maxEvents:         cfg.MaxEvents,
		maxReportedErrors: cfg.MaxReportedErrors,
		maxEventBytes:     cfg.MaxEventBytes,
		admission:         cfg.Admission,
		admissionBytes:    cfg.AdmissionBytes,
		breaker:           cfg.Breaker,
		shedder:           cfg.Shedder,
		produceTimeout:    cfg.ProduceTimeout,
		log:               log,
	}
	for _, name := range cfg.Registry.Names() {
		g.topics[name] = kafkatopic.Name(cfg.TopicPrefix, name)
	}
	m, err := newGateMetrics(cfg.Registerer, g.admission, g.admissionBytes, g.breaker)
	if err != nil {
		return nil, err
	}
	g.metrics = m
	return g, nil
}

// Shedder decides which streams the gate refuses for a while although
// Kafka would take their events: those whose unread backlog nears what
// Kafka retains, where more events would push older ones out unread.
type Shedder interface {
	// Shed reports whether to refuse stream's events now; if so, how long
	// producers should wait and why (for logs, never sent to producers).
	// It is called on every commit, so it must be cheap.
	Shed(stream string) (retryAfter time.Duration, reason string, ok bool)
}

// Registry returns the streams the gate accepts.
func (g *Gate) Registry() *schemas.Registry { return g.registry }

// Topics returns the Kafka topics of all streams, for readiness checks.
func (g *Gate) Topics() []string {
	out := make([]string, 0, len(g.topics))
	for _, name := range g.registry.Names() {
		out = append(out, g.topics[name])
	}
	return out
}

// Available returns nil, or the *Refused (ErrCircuitOpen) that a Commit
// would return now because Kafka failed often enough lately that the
// breaker is open: a source can refuse work before reading it.
func (g *Gate) Available() error {
	if g.breaker.State() == backpressure.Open {
		return &Refused{Err: ErrCircuitOpen, RetryAfter: g.breaker.RetryAfter()}
	}
	return nil
}

// MaxEvents is the most events one batch may hold.
func (g *Gate) MaxEvents() int { return g.maxEvents }

// AdmissionCapacity is the most events that may wait for Kafka at once.
func (g *Gate) AdmissionCapacity() int64 { return g.admission.Capacity() }

// Origin describes where a batch comes from and how the gate treats what it
// cannot accept.
type Origin struct {
	// Source names the collector: http, mqtt, syslog, relp. It labels the
	// metrics and dead letters.
	Source string
	// Detail says where within the source: the MQTT topic, the syslog
	// peer. It goes into dead letters.
	Detail string
	// Fields fill fields that an event does not set (MQTT topic
	// placeholders such as devices/{device_id}/telemetry).
	Fields map[string]string
	// Identity, when set, derives the event_id of every event that has
	// none from Identity and the event's index in the batch, so that a
	// resend of the same input gets the same ids (see DeriveID). When nil,
	// such events get a random, time-ordered UUIDv7.
	Identity []byte
	// DeadLetter sends what cannot be accepted to the dead-letter topic, in
	// the same commit as the accepted events, with the reason and Detail.
	// Sources whose producer cannot be told (MQTT, syslog) set it; HTTP
	// answers the errors instead.
	DeadLetter bool
	// Raw is the payload as received, dead-lettered whole when it cannot be
	// parsed at all.
	Raw []byte
}

// ErrUnknownStream is returned by Begin for a stream no schema defines.
var ErrUnknownStream = errors.New("unknown stream")

// Begin starts a batch of events for stream, received now.
func (g *Gate) Begin(stream string, o Origin) (*Batch, error) {
	st := g.registry.Stream(stream)
	if st == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownStream, schemas.Truncate(stream, 64))
	}
	// Millisecond precision: what Encode writes and what the record's
	// timestamp holds must be the same instant.
	now := time.Now().UTC().Truncate(time.Millisecond)
	return &Batch{
		g:      g,
		stream: st,
		topic:  g.topics[st.Name],
		origin: o,
		now:    now,
		msgs:   make([]Message, 0, min(g.lastLen.Load(), maxPrealloc)),
		resp:   Response{Errors: []IndexError{}},
	}, nil
}

// Refusal errors from Commit. Nothing of a refused batch counts as
// acknowledged; sending it again with the same event_ids is safe.
var (
	// ErrOverloaded: as many events wait for Kafka as the gate allows.
	// Shed (HTTP 429) or wait RetryAfter and try again.
	ErrOverloaded = errors.New("too many events in flight")
	// ErrUnavailable: Kafka did not acknowledge the events, or its breaker
	// is open (HTTP 503).
	ErrUnavailable = errors.New("kafka unavailable")
	// ErrCircuitOpen is ErrUnavailable without trying: Kafka failed often
	// enough lately that the breaker refuses at once.
	ErrCircuitOpen = fmt.Errorf("%w (circuit open)", ErrUnavailable)
	// ErrBatchTooLarge: the batch alone holds more events, or more bytes,
	// than the whole admission capacity; waiting cannot help (HTTP 413).
	ErrBatchTooLarge = errors.New("more events in one batch than can be in flight")
	// ErrBacklog: the stream's unread backlog in Kafka nears the topic's
	// retention, so the gate sheds its events until the store catches up
	// rather than let Kafka delete acknowledged ones unread (HTTP 503).
	ErrBacklog = errors.New("stream backlog near kafka retention")
)

// Refused is Commit's error when the gate did not take a batch: Err is one
// of the refusal errors above or the context's error, RetryAfter is how
// long the producer should wait.
type Refused struct {
	Err        error
	RetryAfter time.Duration
	// Cause is the underlying failure, for logs (never sent to producers).
	Cause error
}

func (r *Refused) Error() string {
	if r.Cause != nil {
		return r.Err.Error() + ": " + r.Cause.Error()
	}
	return r.Err.Error()
}

func (r *Refused) Unwrap() error { return r.Err }

// RetryAfter returns how long to wait before sending a refused batch again;
// a second for errors that do not say.
func RetryAfter(err error) time.Duration {
	var r *Refused
	if errors.As(err, &r) && r.RetryAfter > 0 {
		return r.RetryAfter
	}
	return time.Second
}

// Commit produces the batch's accepted events and dead letters and returns
// nil once Kafka has acknowledged all of them with acks=all. Any error
// means nothing of the batch is acknowledged (some messages may still have
// been written; the workers deduplicate by event_id). A batch with nothing
// to produce commits at once.
func (b *Batch) Commit(ctx context.Context) error { return CommitAll(ctx, b) }

// CommitWait commits like Commit but, where Commit is refused for load,
// an unavailable Kafka or a shed stream (ErrBacklog), waits and tries
// again until it succeeds or ctx ends. It is how sources without a way to say "later" (MQTT, syslog, RELP)
// push back: they hold the acknowledgement and stop reading meanwhile.
func (b *Batch) CommitWait(ctx context.Context) error { return CommitAllWait(ctx, b) }

// CommitAll commits several batches of one gate as one, all or nothing
// like Commit: one admission and one produce call, so that a source with
// many small inputs (MQTT messages of one event each) pays Kafka's
// per-call cost once for many of them.
func CommitAll(ctx context.Context, bs ...*Batch) error {
	if len(bs) == 0 {
		return nil
	}
	g := bs[0].g
	accepted, lettered := 0, 0
	for _, b := range bs {
		if b.g != g {
			return errors.New("ingest: CommitAll of batches from different gates")
		}
		b.seal()
		if !b.counted {
			// Once, however often a refused batch is committed again.
			b.counted = true
			g.metrics.events.WithLabelValues(b.origin.Source, b.stream.Name, "rejected").Add(float64(b.resp.Rejected))
		}
		accepted, lettered = accepted+len(b.msgs), lettered+len(b.dead)
	}
	g.lastLen.Store(int64(len(bs[len(bs)-1].msgs)))
	if accepted+lettered == 0 {
		return nil
	}
	refuse := func(err, cause error, after time.Duration) error {
		for _, b := range bs {
			g.metrics.events.WithLabelValues(b.origin.Source, b.stream.Name, "refused").Add(float64(len(b.msgs)))
		}
		return &Refused{Err: err, RetryAfter: after, Cause: cause}
	}
	if g.Available() != nil {
		return refuse(ErrCircuitOpen, nil, g.breaker.RetryAfter())
	}
	if after, reason, ok := g.shed(bs); ok {
		return refuse(ErrBacklog, errors.New(reason), after)
	}
	n := int64(accepted + lettered)
	weight := weightOf(bs)
	if err := g.admit(ctx, n, weight); err != nil {
		var r *Refused
		if errors.As(err, &r) {
			return refuse(r.Err, r.Cause, r.RetryAfter)
		}
		return refuse(err, nil, 0)
	}
	defer g.admissionBytes.Release(weight)
	defer g.admission.Release(n)

	start := time.Now()
	err := g.produce(ctx, messagesOf(bs, accepted+lettered))
	result := "ok"
	if err != nil {
		result = "error"
	}
	for _, b := range bs {
		g.metrics.produce.WithLabelValues(b.origin.Source, b.stream.Name, result).Observe(time.Since(start).Seconds())
	}
	if err != nil {
		if errors.Is(err, backpressure.ErrOpen) {
			return refuse(ErrCircuitOpen, nil, g.breaker.RetryAfter())
		}
		if ctx.Err() == nil {
			g.log.Warn("produce failed", "source", bs[0].origin.Source, "events", n, "err", err)
		}
		return refuse(ErrUnavailable, err, g.breaker.RetryAfter())
	}
	for _, b := range bs {
		g.metrics.events.WithLabelValues(b.origin.Source, b.stream.Name, "accepted").Add(float64(len(b.msgs)))
		g.metrics.events.WithLabelValues(b.origin.Source, b.stream.Name, "dead_lettered").Add(float64(len(b.dead)))
	}
	return nil
}

// admit takes n events and weight bytes from the gate's two admissions, or
// neither. Two admissions rather than one weighted by bytes: the event
// count keeps its own meaning for producers (a request of more events than
// can be in flight is refused as such), bytes are what memory is made of
// (--memory-limit sizes them), and a batch of many tiny events or of a few
// large ones is held back by whichever bound it meets first. Events are
// taken first, always in that order, so two batches cannot each hold what
// the other waits for; both waits are short (MaxWait) anyway. A refusal of
// either is the same for sources: 429, withheld acks, paused reads.
func (g *Gate) admit(ctx context.Context, n, weight int64) error {
	refusal := func(adm *backpressure.Admission, err error, what string, asked int64) error {
		switch {
		case errors.Is(err, backpressure.ErrTooLarge):
			return &Refused{Err: ErrBatchTooLarge, Cause: fmt.Errorf("%d %s, capacity %d", asked, what, adm.Capacity())}
		case errors.Is(err, backpressure.ErrBusy):
			return &Refused{Err: ErrOverloaded, RetryAfter: adm.RetryAfter(), Cause: fmt.Errorf("%s in flight at capacity %d", what, adm.Capacity())}
		}
		return err
	}
	if err := g.admission.Acquire(ctx, n); err != nil {
		return refusal(g.admission, err, "events", n)
	}
	if err := g.admissionBytes.Acquire(ctx, weight); err != nil {
		g.admission.Release(n)
		return refusal(g.admissionBytes, err, "bytes", weight)
	}
	return nil
}

// weightOf is what the batches' messages weigh in the byte admission.
func weightOf(bs []*Batch) int64 {
	var w int64
	for _, b := range bs {
		for _, list := range [][]Message{b.msgs, b.dead} {
			for i := range list {
				m := &list[i]
				w += int64(len(m.Key)+len(m.Value)) + MessageOverhead
				for _, h := range m.Headers {
					w += int64(len(h.Key) + len(h.Value))
				}
			}
		}
	}
	return w
}

// shed asks the shedder about the stream of every batch with events. A
// batch of dead letters alone passes: they go to the dead-letter topic,
// not to the stream's.
func (g *Gate) shed(bs []*Batch) (after time.Duration, reason string, ok bool) {
	if g.shedder == nil {
		return 0, "", false
	}
	for _, b := range bs {
		if len(b.msgs) == 0 {
			continue
		}
		if after, reason, ok = g.shedder.Shed(b.stream.Name); ok {
			return after, reason, true
		}
	}
	return 0, "", false
}

// produce writes msgs through the breaker, within the produce timeout.
func (g *Gate) produce(ctx context.Context, msgs []Message) error {
	ctx, cancel := context.WithTimeout(ctx, g.produceTimeout)
	defer cancel()
	return g.breaker.Do(ctx, func(ctx context.Context) error { return g.producer.Produce(ctx, msgs) })
}

// messagesOf lists the events, then the dead letters, of every batch.
func messagesOf(bs []*Batch, n int) []Message {
	if len(bs) == 1 && len(bs[0].dead) == 0 {
		return bs[0].msgs
	}
	msgs := make([]Message, 0, n)
	for _, b := range bs {
		msgs = append(msgs, b.msgs...)
	}
	for _, b := range bs {
		msgs = append(msgs, b.dead...)
	}
	return msgs
}

// CommitAllWait is CommitAll as CommitWait retries it.
func CommitAllWait(ctx context.Context, bs ...*Batch) error {
	if len(bs) == 0 {
		return nil
	}
	wait := 50 * time.Millisecond
	for {
		err := CommitAll(ctx, bs...)
		if err == nil || ctx.Err() != nil || errors.Is(err, ErrBatchTooLarge) {
			return err
		}
		bs[0].g.metrics.retries.WithLabelValues(bs[0].origin.Source).Inc()
		d := min(RetryAfter(err), wait)
		wait = min(2*wait, 2*time.Second)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// deadLetter adds a dead letter for value to the batch.
func (b *Batch) deadLetter(value []byte, reason string) {
	l := deadletter.Letter{
		Stream: b.stream.Name, Source: b.origin.Source, Origin: b.origin.Detail,
		Value: value, Reason: reason,
	}
	// Bounded like an event: the letter goes to Kafka beside the events.
	_, v, hs, err := deadletter.Encode(l, b.now, b.g.maxEventBytes)
	if err != nil {
		b.g.log.Error("cannot encode a dead letter", "source", b.origin.Source, "err", err)
		return
	}
	headers := make([]Header, len(hs))
	for i, h := range hs {
		headers[i] = Header{Key: h.Key, Value: h.Value}
	}
	b.dead = append(b.dead, Message{Topic: b.g.dlqTopic, Value: v, Time: b.now, Headers: headers})
}
