package workers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/segmentio/kafka-go"
)

// partitionReader reads one partition from its leader, a fetch request at a
// time, and hands the fetched messages out in the caller's goroutine.
//
// kafka-go's Reader does the same in a goroutine of its own that passes
// every message through a channel, and sets the connection's read deadline
// before every message (a clock read and a runtime timer update each); in
// the work role that was a sixth of the CPU for two lanes a partition. Here
// a fetch waits at most maxWait, the deadline is set once a fetch, and the
// caller's context is looked at between fetches, so cancelling it takes
// effect within maxWait.
//
// A failure closes the connection and is returned: the lane opens a new
// reader after a pause, at its next offset. Not safe for concurrent use: the
// lane's fetcher goroutine owns it.
type partitionReader struct {
	dialer    *kafka.Dialer
	brokers   []string
	topic     string
	partition int
	minBytes  int
	maxBytes  int
	maxWait   time.Duration

	// offset is the next offset to read, or kafka.FirstOffset or
	// kafka.LastOffset until the first fetch.
	offset int64
	// lastChunk is how many messages FetchMessages returned last.
	lastChunk int
	conn      *kafka.Conn
	batch     *kafka.Batch
	// err is a failure met after FetchMessages had messages to return:
	// the next call returns it.
	err error
}

// batchReadTimeout bounds reading one fetched batch off the connection,
// once the broker has started to answer.
const batchReadTimeout = 10 * time.Second

// SetOffset sets where reading starts. Called before the first fetch.
func (r *partitionReader) SetOffset(offset int64) error {
	r.offset = offset
	return nil
}

// SkipTo moves the reader on to offset, after the lane read up to it from
// elsewhere (another lane's fetches, fetchShare): the fetch in hand is
// dropped, and the next one asks for offset without a round trip to check
// it (the lane knows Kafka held what comes before).
func (r *partitionReader) SkipTo(offset int64) error {
	if r.batch != nil {
		err := r.batch.Close()
		r.batch = nil
		if err != nil && !errors.Is(err, kafka.RequestTimedOut) {
			r.closeConn()
		}
	}
	r.offset = offset
	if r.conn == nil {
		return nil // connect seeks
	}
	_, err := r.conn.Seek(offset, kafka.SeekAbsolute|kafka.SeekDontCheck)
	return err
}

// FetchMessage returns the partition's next message, waiting for one to be
// produced when there is none yet.
//
// A connection kafka-go finds out of step (io.ErrNoProgress: the answer it
// read is not to the request it sent) is replaced at once, and the fetch
// asked again at the same offset, once a call: see outOfStep.
func (r *partitionReader) FetchMessage(ctx context.Context) (kafka.Message, error) {
	retried := false
	for {
		if r.batch != nil {
			m, err := r.batch.ReadMessage()
			if err == nil {
				r.offset = m.Offset + 1
				return m, nil
			}
			if err := r.endBatch(err); err != nil {
				if !outOfStep(err) || retried {
					return kafka.Message{}, err
				}
				retried = true
			}
			continue
		}
		if err := ctx.Err(); err != nil {
			return kafka.Message{}, err
		}
		if err := r.fetch(ctx); err != nil {
			r.closeConn()
			return kafka.Message{}, err
		}
	}
}

// FetchMessages returns the partition's next messages: the first as
// FetchMessage does, then those that follow it in the same fetch, without
// waiting for the broker, up to limit.
func (r *partitionReader) FetchMessages(ctx context.Context, limit int) ([]Message, error) {
	if err := r.err; err != nil {
		r.err = nil
		return nil, err
	}
	m, err := r.FetchMessage(ctx)
	if err != nil {
		return nil, err
	}
	// A fetch at a low rate holds a few messages: start small, or as
	// large as the last chunk, which under load was full: growing the
	// slice to it each time was a tenth of reading.
	out := make([]Message, 1, min(limit, max(16, r.lastChunk)))
	out[0] = message(m)
	for len(out) < limit && r.batch != nil {
		m, err := r.batch.ReadMessage()
		if err != nil {
			r.err = r.endBatch(err)
			break
		}
		r.offset = m.Offset + 1
		out = append(out, message(m))
	}
	r.lastChunk = len(out)
	return out, nil
}

// message is m as the workers keep it.
func message(m kafka.Message) Message {
	return Message{Offset: m.Offset, Key: m.Key, Value: m.Value, Time: m.Time, HighWaterMark: m.HighWaterMark}
}

// fetch sends one fetch request, connecting first if needed, and leaves
// its answer in r.batch.
func (r *partitionReader) fetch(ctx context.Context) error {
	if r.conn == nil {
		if err := r.connect(ctx); err != nil {
			return err
		}
	}
	if err := r.conn.SetReadDeadline(time.Now().Add(r.maxWait + batchReadTimeout)); err != nil {
		return err
	}
	r.batch = r.conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: r.minBytes, MaxBytes: r.maxBytes, MaxWait: r.maxWait})
	return nil
}

// outOfStep reports whether err is kafka-go finding a fetch's connection
// out of step: the answer it read carries the id of another request, so
// bytes of an earlier answer were left unread (segmentio/kafka-go#1188:
// a batch taken as empty leaves its bytes on the wire). kafka-go closes
// the connection. Nothing was read from the batch, so the offset to read
// from is still right, and a new connection reads on from it; kafka-go's
// own Reader does the same, without reporting an error.
//
// Reported as a failure, it paused the lane for 100 ms and logged an
// error, some ten times in a minute at saturation.
func outOfStep(err error) bool { return errors.Is(err, io.ErrNoProgress) }

// endBatch closes the batch that ReadMessage ended with err. The end of the
// batch is no error; any other closes the connection. An offset Kafka no
// longer holds is returned as an error too (kafka-go's Reader would move on
// to the log start quietly): the lane then reports the jump as a gap.
func (r *partitionReader) endBatch(err error) error {
	closeErr := r.batch.Close()
	r.batch = nil
	if errors.Is(err, io.EOF) {
		err = closeErr
	}
	// A fetch that waited maxWait without minBytes arriving may answer
	// RequestTimedOut: nothing to read yet, as kafka-go's Reader takes it.
	if err == nil || errors.Is(err, kafka.RequestTimedOut) {
		return nil
	}
	r.closeConn()
	return fmt.Errorf("fetch %s/%d at offset %d: %w", r.topic, r.partition, r.offset, err)
}

// connect dials the partition's leader and seeks to r.offset, resolving
// kafka.FirstOffset and kafka.LastOffset. An offset before the log start
// is moved to it, as kafka-go's Reader does; the lane sees the jump.
func (r *partitionReader) connect(ctx context.Context) error {
	var errs []error
	for _, broker := range r.brokers {
		conn, err := r.dialer.DialLeader(ctx, "tcp", broker, r.topic, r.partition)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := r.seek(conn); err != nil {
			_ = conn.Close()
			return err
		}
		r.conn = conn
		return nil
	}
	return fmt.Errorf("connect to the leader of %s/%d: %w", r.topic, r.partition, errors.Join(errs...))
}

func (r *partitionReader) seek(conn *kafka.Conn) error {
	if err := conn.SetDeadline(time.Now().Add(batchReadTimeout)); err != nil {
		return err
	}
	first, last, err := conn.ReadOffsets()
	if err != nil {
		return fmt.Errorf("read the offsets of %s/%d: %w", r.topic, r.partition, err)
	}
	switch {
	case r.offset == kafka.LastOffset:
		r.offset = last
	case r.offset < first:
		r.offset = first
	}
	if _, err := conn.Seek(r.offset, kafka.SeekAbsolute); err != nil {
		return fmt.Errorf("seek %s/%d to offset %d: %w", r.topic, r.partition, r.offset, err)
	}
	return conn.SetDeadline(time.Time{})
}

func (r *partitionReader) closeConn() {
	if r.batch != nil {
		_ = r.batch.Close()
		r.batch = nil
	}
	if r.conn != nil {
		_ = r.conn.Close()
		r.conn = nil
	}
}

// Close releases the connection.
func (r *partitionReader) Close() error {
	r.closeConn()
	return nil
}
