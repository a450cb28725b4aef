// Package nats publishes processed events to NATS subjects, one subject per
// stream and partition key: <prefix><stream>.<key>.
package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"

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

// Publisher publishes events on one NATS connection.
type Publisher struct {
	nc     *natsgo.Conn
	prefix string
	log    *slog.Logger
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
	return &Publisher{nc: nc, prefix: o.Prefix, log: log}, nil
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

// Subject returns the subject of a stream's events with partition key key.
// NATS gives '.', '*', '>' and whitespace special meaning in subjects, so
// they become '_' in the key.
func Subject(prefix, stream, key string) string {
	var b strings.Builder
	b.Grow(len(prefix) + len(stream) + 1 + len(key))
	b.WriteString(prefix)
	b.WriteString(stream)
	b.WriteByte('.')
	if key == "" {
		b.WriteByte('_')
	}
	for _, r := range key {
		switch {
		case r == '.' || r == '*' || r == '>' || r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f' || r == '\v':
			b.WriteByte('_')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
