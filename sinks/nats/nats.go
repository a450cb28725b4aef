// Package nats publishes processed events to NATS subjects, one subject per
// stream and partition key: <prefix><stream>.<key>.
//
// Where a JetStream stream captures a stream's subjects, events are published
// through JetStream with Nats-Msg-Id set to the event_id and every
// acknowledgement is awaited, so a batch published again after a worker crash
// is deduplicated by the server (within the stream's duplicate window).
// Elsewhere events go out on core NATS, at most a flush round trip behind.
package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/schemas"
)

// Message is one event to publish.
type Message struct {
	// Key is the event's partition key, which names its subject.
	Key string
	// EventID is the event's idempotency key.
	EventID string
	// Data is the event as JSON: its fields, event_id and received_at.
	Data []byte
}

// Options configures a Publisher.
type Options struct {
	URL string
	// Prefix starts every subject (default "sluice.").
	Prefix string
	Logger *slog.Logger
}

// flushTimeout bounds one wait for the server to confirm a batch.
const flushTimeout = 10 * time.Second

// modeRecheck is how long the choice between JetStream and core NATS for a
// stream holds before it is looked up again, so that a JetStream stream
// created while Sluice runs is picked up.
const modeRecheck = 30 * time.Second

// Publisher publishes events on one NATS connection.
type Publisher struct {
	nc     *natsgo.Conn
	js     jetstream.JetStream
	prefix string
	log    *slog.Logger

	mu    sync.Mutex
	modes map[string]mode
}

// mode records whether a stream's subjects are captured by JetStream.
type mode struct {
	jsStream string // empty: core NATS
	checked  time.Time
}

// Connect opens the connection. It keeps reconnecting for ever after a
// connection loss, buffering what is published meanwhile; Publish reports
// failure when the buffer cannot be flushed.
func Connect(o Options) (*Publisher, error) {
	if o.Prefix == "" {
		o.Prefix = "sluice."
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	log := o.Logger.With("component", "nats")
	nc, err := natsgo.Connect(o.URL,
		natsgo.Name("sluice"),
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(500*time.Millisecond),
		natsgo.ReconnectBufSize(64<<20),
		natsgo.DisconnectErrHandler(func(_ *natsgo.Conn, err error) { log.Warn("disconnected", "err", err) }),
		natsgo.ReconnectHandler(func(c *natsgo.Conn) { log.Info("reconnected", "url", c.ConnectedUrlRedacted()) }),
	)
	if err != nil {
		return nil, fmt.Errorf("nats: connect %s: %w", o.URL, err)
	}
	js, err := jetstream.New(nc,
		// A batch is published as a whole before its acks are awaited.
		jetstream.WithPublishAsyncMaxPending(32_768),
		jetstream.WithPublishAsyncTimeout(flushTimeout),
	)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats: jetstream context: %w", err)
	}
	return &Publisher{nc: nc, js: js, prefix: o.Prefix, log: log, modes: make(map[string]mode)}, nil
}

// Close drains and closes the connection.
func (p *Publisher) Close() error {
	if err := p.nc.Drain(); err != nil && !errors.Is(err, natsgo.ErrConnectionClosed) {
		return fmt.Errorf("nats: drain: %w", err)
	}
	return nil
}

// Publish sends msgs in order and returns once the server has received them
// all (a flush round trip), so that a delivered batch is on the server before
// its offsets are committed.
func (p *Publisher) Publish(ctx context.Context, st *schemas.Stream, msgs []Message) error {
	if jsStream := p.jetStreamFor(ctx, st.Name); jsStream != "" {
		return p.publishJetStream(ctx, st, jsStream, msgs)
	}
	for _, m := range msgs {
		if err := p.nc.Publish(Subject(p.prefix, st.Name, m.Key), m.Data); err != nil {
			return fmt.Errorf("nats: publish %s event %s: %w", st.Name, m.EventID, err)
		}
	}
	// nats.go insists on a deadline for a flush; a stalled server must fail
	// the attempt so the caller's retry loop (and its logging) takes over.
	ctx, cancel := context.WithTimeout(ctx, flushTimeout)
	defer cancel()
	if err := p.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("nats: flush %d %s events: %w", len(msgs), st.Name, err)
	}
	return nil
}

// JetStream reports which JetStream stream captures a stream's subjects, or
// "" when its events go out on core NATS.
func (p *Publisher) JetStream(ctx context.Context, stream string) string {
	return p.jetStreamFor(ctx, stream)
}

func (p *Publisher) jetStreamFor(ctx context.Context, stream string) string {
	p.mu.Lock()
	m, ok := p.modes[stream]
	p.mu.Unlock()
	if ok && time.Since(m.checked) < modeRecheck {
		return m.jsStream
	}
	ctx, cancel := context.WithTimeout(ctx, flushTimeout)
	defer cancel()
	name, err := p.js.StreamNameBySubject(ctx, p.prefix+stream+".>")
	switch {
	case err == nil:
	case errors.Is(err, jetstream.ErrStreamNotFound), errors.Is(err, jetstream.ErrJetStreamNotEnabled),
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		name = ""
	default:
		// Keep the last known mode: switching to core NATS on a passing
		// error would lose the deduplication JetStream subscribers rely on.
		p.log.Warn("looking up JetStream stream", "stream", stream, "err", err)
		return m.jsStream
	}
	if !ok || name != m.jsStream {
		if name != "" {
			p.log.Info("publishing through JetStream, deduplicated by Nats-Msg-Id", "stream", stream, "jetstream", name)
		} else {
			p.log.Info("publishing on core NATS (no JetStream stream captures the subjects)", "stream", stream, "subjects", p.prefix+stream+".>")
		}
	}
	p.mu.Lock()
	p.modes[stream] = mode{jsStream: name, checked: time.Now()}
	p.mu.Unlock()
	return name
}

// publishJetStream publishes the batch asynchronously, then waits for every
// acknowledgement: one failure fails the batch, which is then published
// again whole, harmlessly, since JetStream drops what it already has by id.
func (p *Publisher) publishJetStream(ctx context.Context, st *schemas.Stream, jsStream string, msgs []Message) error {
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, m := range msgs {
		msg := &natsgo.Msg{Subject: Subject(p.prefix, st.Name, m.Key), Data: m.Data, Header: natsgo.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, MsgID(m.EventID))
		f, err := p.js.PublishMsgAsync(msg, jetstream.WithExpectStream(jsStream), jetstream.WithStallWait(flushTimeout))
		if err != nil {
			return fmt.Errorf("nats: jetstream publish %s event %s: %w", st.Name, m.EventID, err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("nats: jetstream ack for %s: %w", f.Msg().Subject, err)
		case <-ctx.Done():
			return fmt.Errorf("nats: waiting for jetstream acks: %w", ctx.Err())
		}
	}
	return nil
}
