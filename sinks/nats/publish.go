package nats

import (
	"context"
	"errors"
	"fmt"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks"
)

var _ sinks.Output = (*Publisher)(nil)

// Publish sends rows of one partition in offset order, to the subject of
// each row's partition key, and returns once the server holds them all: in
// JetStream mode every acknowledgement has arrived, on core NATS a flush
// round trip has. It fails at once while the connection is down, and when
// the stream's mode is not known yet and cannot be looked up (publishing on
// core NATS instead would lose the deduplication JetStream subscribers rely
// on).
//
// When it knows how far a failed batch got, Publish returns a
// *sinks.PartialError: its first Done rows are held, and the caller resumes
// with rows[Done:]. In JetStream mode every failure of the publishing
// itself is one (Done may be 0); on core NATS only a row over the server's
// max payload is, since a flush confirms all or nothing. Any other error
// (including the connection being down or a failed mode lookup) means no
// row of the batch is known to be held. The PartialError's Err, the failure of rows[Done], is
// marked sinks.Permanent when that row can never be published as it is
// (over the server's max payload or the JetStream stream's MaxMsgSize): the
// caller sets rows[Done] aside and resumes with rows[Done+1:].
//
// Per key, JetStream stores a batch in offset order unless it refuses a row
// and stores a later one of the same attempt; the error then says how many
// later rows were stored ahead of rows[Done], and a retry stores rows[Done]
// after them (the later ones are dropped as duplicates by Nats-Msg-Id).
func (p *Publisher) Publish(ctx context.Context, st *schemas.Stream, partition int32, rows []sinks.Row) error {
	if len(rows) == 0 {
		return nil
	}
	// Checked first so that a lookup does not wait out its timeout on a
	// connection that is down. Losing the connection after this check is
	// still safe: the publishes themselves then fail, nothing is buffered.
	if !p.nc.IsConnected() {
		return fmt.Errorf("nats: %s partition %d: %d events not published: %w", st.Name, partition, len(rows), natsgo.ErrDisconnected)
	}
	jsStream, err := p.jetStreamFor(ctx, st.Name)
	if err != nil {
		return err
	}
	if jsStream != "" {
		return p.publishJetStream(ctx, st, partition, jsStream, rows)
	}
	return p.publishCore(ctx, st, partition, rows)
}

// publishCore publishes on core NATS and confirms with a flush.
func (p *Publisher) publishCore(ctx context.Context, st *schemas.Stream, partition int32, rows []sinks.Row) error {
	before := p.nc.Stats().Reconnects
	for i, r := range rows {
		if err := p.nc.Publish(Subject(p.prefix, st.Name, r.Event.Key), r.Value); err != nil {
			err = fmt.Errorf("nats: publish %s partition %d event %q: %w", st.Name, partition, r.Event.ID, err)
			if !errors.Is(err, natsgo.ErrMaxPayload) {
				return err
			}
			// The row can never go out. Confirm the rows before it, so the
			// caller can set this one aside instead of retrying it for ever.
			if ferr := p.flush(ctx, before); ferr != nil {
				return err
			}
			return &sinks.PartialError{Done: i, Err: sinks.Permanent(err)}
		}
	}
	if err := p.flush(ctx, before); err != nil {
		return fmt.Errorf("nats: flush %d %s events of partition %d: %w", len(rows), st.Name, partition, err)
	}
	return nil
}

// errReconnected fails a core NATS batch during which the connection was
// lost and re-established.
var errReconnected = errors.New("the connection was re-established meanwhile, so events sent before the loss may not have reached the server")

// flush waits for the server to have everything published so far, and fails
// if the connection was re-established since the reconnect count was before.
// That check matters: nats.go drops what it had not written when the
// connection broke, but a flush begun after the break queues its PING for
// the new connection, and the PONG then confirms nothing of the batch.
func (p *Publisher) flush(ctx context.Context, before uint64) error {
	// nats.go insists on a deadline for a flush; a stalled server must fail
	// the attempt so the caller's retry loop (and its logging) takes over.
	ctx, cancel := context.WithTimeout(ctx, flushTimeout)
	defer cancel()
	if err := p.nc.FlushWithContext(ctx); err != nil {
		return err
	}
	if p.nc.Stats().Reconnects != before {
		return errReconnected
	}
	return nil
}

// publishJetStream publishes the batch asynchronously, in order on the one
// connection (so JetStream stores it in order), then waits for every
// acknowledgement.
func (p *Publisher) publishJetStream(ctx context.Context, st *schemas.Stream, partition int32, jsStream string, rows []sinks.Row) error {
	futures := make([]jetstream.PubAckFuture, 0, len(rows))
	var sendErr error
	for _, r := range rows {
		msg := &natsgo.Msg{Subject: Subject(p.prefix, st.Name, r.Event.Key), Data: r.Value, Header: natsgo.Header{}}
		// An empty id is left out: as a shared Nats-Msg-Id it would make
		// JetStream drop every such event but the first as a duplicate.
		if id := MsgID(r.Event.ID); id != "" {
			msg.Header.Set(jetstream.MsgIDHeader, id)
		}
		f, err := p.js.PublishMsgAsync(msg, jetstream.WithExpectStream(jsStream), jetstream.WithStallWait(flushTimeout))
		if err != nil {
			sendErr = err
			break
		}
		futures = append(futures, f)
	}
	done, ahead, err := settle(ctx, futures)
	if err == nil && sendErr == nil {
		return nil
	}
	if err == nil {
		// Every row sent was confirmed; rows[done] is the one not sent.
		err = sendErr
	}
	err = fmt.Errorf("nats: jetstream publish %s partition %d event %q: %w", st.Name, partition, rows[done].Event.ID, err)
	if errors.Is(err, natsgo.ErrMaxPayload) || errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum) {
		err = sinks.Permanent(err)
	}
	if ahead > 0 {
		err = fmt.Errorf("%w (%d later events of the batch were stored ahead of it)", err, ahead)
		p.log.Warn("JetStream refused an event but stored later ones of the batch: its key may be out of order in the stream",
			"stream", st.Name, "partition", partition, "event_id", rows[done].Event.ID, "stored_ahead", ahead)
	}
	return &sinks.PartialError{Done: done, Err: err}
}

// settle waits for the acknowledgement of every future, even after a failure,
// so that nothing of this attempt is still in flight when the caller retries
// (a retry racing earlier publishes would put a key further out of order).
// It returns how many futures from the start were acknowledged, how many
// after the first failure were acknowledged anyway, and the first failure.
// Only the end of ctx cuts the wait short.
func settle(ctx context.Context, futures []jetstream.PubAckFuture) (done, ahead int, first error) {
	done = len(futures)
	for i, f := range futures {
		var err error
		select {
		case <-f.Ok():
		case err = <-f.Err():
		case <-ctx.Done():
			if first == nil {
				return i, ahead, fmt.Errorf("waiting for acknowledgements: %w", ctx.Err())
			}
			return done, ahead, first
		}
		switch {
		case err != nil && first == nil:
			done, first = i, err
		case err == nil && first != nil:
			ahead++
		}
	}
	return done, ahead, first
}

// JetStream reports which JetStream stream captures a stream's subjects, or
// "" when its events go out on core NATS. It looks the stream up when the
// answer is older than 30 s, and fails only when no answer is known yet.
func (p *Publisher) JetStream(ctx context.Context, stream string) (string, error) {
	return p.jetStreamFor(ctx, stream)
}

func (p *Publisher) jetStreamFor(ctx context.Context, stream string) (string, error) {
	p.mu.Lock()
	m, known := p.modes[stream]
	p.mu.Unlock()
	if known && time.Now().Before(m.next) {
		return m.jsStream, nil
	}
	name, err := p.lookup(ctx, stream)
	if err != nil {
		if !known {
			return "", fmt.Errorf("nats: %s: cannot tell whether JetStream captures %s (not publishing on core NATS meanwhile): %w",
				stream, p.prefix+stream+".>", err)
		}
		// Keep the last known mode: switching to core NATS on a passing
		// error would lose the deduplication JetStream subscribers rely on.
		p.log.Warn("looking up JetStream stream; keeping the known mode", "stream", stream, "jetstream", m.jsStream, "err", err)
		p.setMode(stream, mode{jsStream: m.jsStream, next: time.Now().Add(modeRetry)})
		return m.jsStream, nil
	}
	if !known || name != m.jsStream {
		if name != "" {
			p.log.Info("publishing through JetStream, deduplicated by Nats-Msg-Id", "stream", stream, "jetstream", name)
		} else {
			p.log.Info("publishing on core NATS (no JetStream stream captures the subjects)", "stream", stream, "subjects", p.prefix+stream+".>")
		}
	}
	p.setMode(stream, mode{jsStream: name, next: time.Now().Add(modeRecheck)})
	return name, nil
}

// lookup asks the server which JetStream stream captures the stream's
// subjects: "" with a nil error when none does or JetStream is off. No
// responders means JetStream is off: nothing serves its API in the account
// (StreamNameBySubject, unlike AccountInfo, does not translate that).
func (p *Publisher) lookup(ctx context.Context, stream string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, flushTimeout)
	defer cancel()
	name, err := p.js.StreamNameBySubject(ctx, p.prefix+stream+".>")
	if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) || errors.Is(err, natsgo.ErrNoResponders) {
		return "", nil
	}
	return name, err
}

func (p *Publisher) setMode(stream string, m mode) {
	p.mu.Lock()
	p.modes[stream] = m
	p.mu.Unlock()
	v := 0.0
	if m.jsStream != "" {
		v = 1
	}
	p.m.mode.WithLabelValues(stream).Set(v)
}
