// Package mqtt is Sluice's MQTT collector. Devices publish to an MQTT
// broker; Sluice subscribes with QoS 1 in a persistent session and writes
// each message's events to Kafka through the ingest gate, acknowledging the
// message to the broker (PUBACK) only once Kafka holds all of them. In
// `sluice dev` an embedded broker hands each publish to the same Handler
// before it acknowledges the device.
package mqtt

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/ingest"
)

// Source is the gate's label for MQTT events and dead letters.
const Source = "mqtt"

// Handler turns one MQTT message into events through the gate: it routes
// the topic to a stream, fills placeholder fields, reads the payload (a
// JSON object, an array of objects, or NDJSON), dead-letters what is not
// valid, and commits. It is safe for concurrent use.
type Handler struct {
	gate      *ingest.Gate
	routes    Router
	deriveIDs bool
	log       *slog.Logger
	metrics   *handlerMetrics
}

// HandlerConfig configures a Handler.
type HandlerConfig struct {
	Gate   *ingest.Gate
	Routes Router
	// DeriveIDs gives events without an event_id one derived from the
	// topic, the payload and the event's index in it, so that a message
	// the broker redelivers counts once (SPEC: identity of redelivered
	// events). Off, they get random ids.
	DeriveIDs  bool
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// NewHandler checks that every route names a known stream and registers the
// handler's metrics.
func NewHandler(cfg HandlerConfig) (*Handler, error) {
	if cfg.Gate == nil {
		return nil, errors.New("mqtt: no gate")
	}
	if len(cfg.Routes) == 0 {
		return nil, errors.New("mqtt: no routes")
	}
	for _, r := range cfg.Routes {
		if cfg.Gate.Registry().Stream(r.Stream) == nil {
			return nil, fmt.Errorf("mqtt: route %s=%s: unknown stream %q (known: %v)", r.Filter, r.Stream, r.Stream, cfg.Gate.Registry().Names())
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	m, err := newHandlerMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Handler{gate: cfg.Gate, routes: cfg.Routes, deriveIDs: cfg.DeriveIDs, log: cfg.Logger.With("component", "mqtt"), metrics: m}, nil
}

// Routes returns the handler's routes, whose Subscription filters a
// subscriber subscribes to.
func (h *Handler) Routes() Router { return h.routes }

// Handle passes one message to the gate and returns nil once every event in
// it is acknowledged by Kafka or dead-lettered: only then may the message be
// acknowledged to the broker. It waits (and so withholds the
// acknowledgement) while the gate is overloaded or Kafka is down; an error
// means ctx ended first and the message must not be acknowledged.
func (h *Handler) Handle(ctx context.Context, topic string, payload []byte) error {
	h.metrics.inflight.Inc()
	defer h.metrics.inflight.Dec()
	return h.HandleAll(ctx, []Message{{Topic: topic, Payload: payload}})
}

// Message is one MQTT message as the Handler sees it.
type Message struct {
	Topic   string
	Payload []byte
}

// HandleAll is Handle for several messages at once, committed to Kafka
// together (one produce call for all): it returns nil once all of them may
// be acknowledged, an error when none may. Unlike Handle it leaves the
// in-flight gauge to the caller, which holds the messages longer (the
// subscriber, from receipt to acknowledgement).
func (h *Handler) HandleAll(ctx context.Context, msgs []Message) error {
	start := time.Now()
	batches := make([]*ingest.Batch, 0, len(msgs))
	for _, m := range msgs {
		h.metrics.messages.Inc()
		h.metrics.bytes.Add(float64(len(m.Payload)))
		b, err := h.prepare(m.Topic, m.Payload)
		if err != nil {
			return err
		}
		if b != nil {
			batches = append(batches, b)
		}
	}
	err := ingest.CommitAllWait(ctx, batches...)
	if errors.Is(err, ingest.ErrBatchTooLarge) {
		// Together, or even alone, more events than may ever be in
		// flight: commit one by one, each too large one dead-lettered.
		for i, b := range batches {
			if err = h.commitAlone(ctx, b, msgs[i]); err != nil {
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("mqtt: %d messages not acknowledged: %w", len(msgs), err)
	}
	elapsed := time.Since(start).Seconds()
	for range msgs {
		h.metrics.ackLatency.Observe(elapsed)
	}
	return nil
}

// prepare routes and reads one message into a batch; nil for a topic no
// route matches.
func (h *Handler) prepare(topic string, payload []byte) (*ingest.Batch, error) {
	stream, fields, ok := h.routes.Route(topic)
	if !ok {
		// Subscriptions are the routes' filters, so only a broker that
		// delivers beyond them gets here; there is no stream to
		// dead-letter to, and holding the message would block the session.
		h.metrics.unrouted.Inc()
		h.log.Warn("message on a topic no route matches: acknowledged and dropped", "topic", topic)
		return nil, nil
	}
	o := ingest.Origin{Source: Source, Detail: topic, Fields: fields, DeadLetter: true, Raw: payload}
	if h.deriveIDs {
		o.Identity = identity(topic, payload)
	}
	b, err := h.gate.Begin(stream, o)
	if err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	if err := readPayload(b, payload); err != nil {
		// Too many events in one message: dead-letter it whole rather
		// than take part of it.
		return h.whole(stream, o, payload, err)
	}
	return b, nil
}

// commitAlone commits one message's batch; one with more events than may
// ever be in flight at once is dead-lettered whole (one record), since
// waiting cannot help and holding it would block the session for good.
func (h *Handler) commitAlone(ctx context.Context, b *ingest.Batch, m Message) error {
	err := b.CommitWait(ctx)
	if !errors.Is(err, ingest.ErrBatchTooLarge) {
		return err
	}
	stream, fields, _ := h.routes.Route(m.Topic)
	o := ingest.Origin{Source: Source, Detail: m.Topic, Fields: fields, DeadLetter: true, Raw: m.Payload}
	if b, err = h.whole(stream, o, m.Payload, ingest.ErrBatchTooLarge); err != nil {
		return err
	}
	return b.CommitWait(ctx)
}

// whole returns a batch that dead-letters the payload whole for why.
func (h *Handler) whole(stream string, o ingest.Origin, payload []byte, why error) (*ingest.Batch, error) {
	b, err := h.gate.Begin(stream, o)
	if err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	if err := b.Reject(payload, "payload: "+why.Error()); err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	return b, nil
}

// readPayload adds the events of a payload to b. The payload is already in
// memory, so it is read in place (no read buffer), by the same decoder
// and with the same limits and messages as an HTTP body.
func readPayload(b *ingest.Batch, payload []byte) error {
	return b.ReadJSONBytes(payload)
}

// identity is what a message's derived event_ids come from: its topic and
// payload, hashed once so that each event's id hashes only 40 bytes.
func identity(topic string, payload []byte) []byte {
	h := sha256.New()
	h.Write([]byte(topic))
	h.Write([]byte{0})
	h.Write(payload)
	return h.Sum(nil)
}

type handlerMetrics struct {
	messages, bytes, unrouted prometheus.Counter
	inflight                  prometheus.Gauge
	ackLatency                prometheus.Histogram
}

func newHandlerMetrics(reg prometheus.Registerer) (*handlerMetrics, error) {
	m := &handlerMetrics{
		messages: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sluice", Subsystem: "mqtt", Name: "messages_received_total",
			Help: "MQTT messages received (each may hold several events).",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sluice", Subsystem: "mqtt", Name: "received_bytes_total",
			Help: "Payload bytes of the MQTT messages received.",
		}),
		unrouted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sluice", Subsystem: "mqtt", Name: "unrouted_messages_total",
			Help: "MQTT messages on a topic that no route matches, acknowledged and dropped.",
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "sluice", Subsystem: "mqtt", Name: "inflight_messages",
			Help: "MQTT messages received and not yet acknowledged (waiting for Kafka).",
		}),
		ackLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "sluice", Subsystem: "mqtt", Name: "ack_latency_seconds",
			Help:    "Time from receiving an MQTT message until it may be acknowledged (its events are in Kafka).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
	}
	for _, c := range []prometheus.Collector{m.messages, m.bytes, m.unrouted, m.inflight, m.ackLatency} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("mqtt: register metrics: %w", err)
		}
	}
	return m, nil
}
