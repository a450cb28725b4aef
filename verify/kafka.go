package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/kafkaconn"
)

// Reading tunables. A fetch of up to 16 MiB keeps round trips few on big
// partitions; maxWait bounds how long a fetch at the end of the log waits
// for data that, below the watermark, should already be there.
const (
	fetchMaxBytes = 16 << 20
	fetchMaxWait  = 500 * time.Millisecond
	// chunkSize is how many messages travel together to the decoders.
	chunkSize = 1024
	// maxEmptyFetches is how many fetches in a row may return nothing below
	// the watermark (offsets compacted away, a transaction marker at the
	// end) before reading stops.
	maxEmptyFetches = 5
	// maxReadAttempts bounds reconnects after a broken connection.
	maxReadAttempts = 5
)

// kafkaReader reads topics partition by partition from explicit offsets,
// outside any consumer group: verify must not disturb the workers' group or
// its committed offsets.
type kafkaReader struct {
	brokers []string
	client  *kafka.Client
	dialer  *kafka.Dialer
	timeout time.Duration
}

func newKafkaReader(brokers []string, sec kafkaconn.Security, timeout time.Duration) *kafkaReader {
	return &kafkaReader{
		brokers: brokers,
		client:  sec.Client(brokers, timeout),
		dialer:  sec.Dialer("sluice-verify", timeout),
		timeout: timeout,
	}
}

// partitionMarks is one partition's readable range: [first, hw).
type partitionMarks struct {
	partition int
	first     int64
	hw        int64
}

// watermarks returns, for each topic that exists, its partitions with their
// first offset and high watermark, sorted by partition. Topics that do not
// exist are absent from the result.
func (k *kafkaReader) watermarks(ctx context.Context, topics []string) (map[string][]partitionMarks, error) {
	meta, err := k.client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("kafka: metadata of %v from %v: %w", topics, k.brokers, err)
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, t := range meta.Topics {
		if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("kafka: metadata of topic %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			req.Topics[t.Name] = append(req.Topics[t.Name], kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
		}
	}
	out := make(map[string][]partitionMarks, len(req.Topics))
	if len(req.Topics) == 0 {
		return out, nil
	}
	res, err := k.client.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("kafka: list offsets: %w", err)
	}
	for topic, parts := range res.Topics {
		for _, p := range parts {
			if p.Error != nil {
				return nil, fmt.Errorf("kafka: offsets of %s/%d: %w", topic, p.Partition, p.Error)
			}
			out[topic] = append(out[topic], partitionMarks{partition: p.Partition, first: p.FirstOffset, hw: p.LastOffset})
		}
	}
	for topic, parts := range out {
		slices.SortFunc(parts, func(a, b partitionMarks) int { return a.partition - b.partition })
		if len(parts) != len(req.Topics[topic])/2 {
			return nil, fmt.Errorf("kafka: offsets of %s: %d partitions answered, %d asked", topic, len(parts), len(req.Topics[topic])/2)
		}
	}
	return out, nil
}

// dialLeader connects to the partition's leader through the first broker
// that answers.
func (k *kafkaReader) dialLeader(ctx context.Context, topic string, partition int) (*kafka.Conn, error) {
	var errs []error
	for _, b := range k.brokers {
		conn, err := k.dialer.DialLeader(ctx, "tcp", b, topic, partition)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("kafka: connect to the leader of %s/%d: %w", topic, partition, errors.Join(errs...))
}

// errTruncated reports a partition whose log ends before the watermark
// captured at start: the broker truncated it (an unclean leader election)
// or retention deleted what remained to read.
var errTruncated = errors.New("partition ends before the watermark captured at start")

// read calls fn with the messages of [from, to) in offset order, in chunks
// of up to chunkSize; fn owns each chunk. It reconnects after a
// broken connection. When the log ends early it returns the offset reached
// and an error wrapping errTruncated.
func (k *kafkaReader) read(ctx context.Context, topic string, partition int, from, to int64, fn func([]kafka.Message) error) (int64, error) {
	r := &partitionRead{k: k, ctx: ctx, topic: topic, partition: partition, next: from, to: to, fn: fn,
		chunk: make([]kafka.Message, 0, chunkSize)}
	defer r.close()
	for r.next < to {
		if err := ctx.Err(); err != nil {
			return r.next, err
		}
		if err := r.step(); err != nil {
			return r.next, err
		}
	}
	return r.next, nil
}

// partitionRead is one read of a partition's range [next, to): its
// connection, how far it got, and the chunk it fills for fn.
type partitionRead struct {
	k         *kafkaReader
	ctx       context.Context
	topic     string
	partition int
	next, to  int64
	fn        func([]kafka.Message) error
	conn      *kafka.Conn
	// stopClose stops closing conn when ctx ends: closing the connection
	// is the only way to interrupt a fetch in progress.
	stopClose func() bool
	chunk     []kafka.Message
	// attempts counts failed fetches in a row, empty fetches that
	// returned nothing below the watermark.
	attempts, empty int
}

// step fetches once from next on. Its error ends the read.
func (r *partitionRead) step() error {
	if err := r.connect(); err != nil {
		return err
	}
	got, hw, fetchErr, err := r.fetch()
	switch {
	case err != nil:
		return err
	case fetchErr != nil:
		return r.retry(fetchErr)
	}
	r.attempts = 0
	if got > 0 {
		r.empty = 0
		return nil
	}
	if hw <= r.next {
		return fmt.Errorf("kafka: %s/%d: %w: log ends at %d, watermark was %d", r.topic, r.partition, errTruncated, hw, r.to)
	}
	r.empty++
	if r.empty >= maxEmptyFetches {
		return fmt.Errorf("kafka: %s/%d: %w: nothing readable from offset %d to %d", r.topic, r.partition, errTruncated, r.next, r.to)
	}
	return nil
}

func (r *partitionRead) connect() error {
	if r.conn != nil {
		return nil
	}
	c, err := r.k.dialLeader(r.ctx, r.topic, r.partition)
	if err != nil {
		return err
	}
	r.conn = c
	if r.stopClose != nil {
		r.stopClose()
	}
	r.stopClose = context.AfterFunc(r.ctx, func() { c.Close() })
	return nil
}

// fetch reads one batch from next on and hands what it read to fn. It
// returns how many messages it read, the partition's high watermark, the
// batch's error (fetchErr, worth retrying) and an error that ends the read
// (fn's, or a failure to seek).
func (r *partitionRead) fetch() (got int, hw int64, fetchErr, err error) {
	if _, err := r.conn.Seek(r.next, kafka.SeekAbsolute|kafka.SeekDontCheck); err != nil {
		return 0, 0, nil, fmt.Errorf("kafka: seek %s/%d to %d: %w", r.topic, r.partition, r.next, err)
	}
	if err := r.conn.SetReadDeadline(time.Now().Add(r.k.timeout + fetchMaxWait)); err != nil {
		return 0, 0, nil, fmt.Errorf("kafka: %s/%d: %w", r.topic, r.partition, err)
	}
	batch := r.conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: fetchMaxBytes, MaxWait: fetchMaxWait})
	for {
		m, err := batch.ReadMessage()
		if err != nil || m.Offset >= r.to {
			break // Close reports the error, io.EOF excepted
		}
		if m.Offset < r.next {
			continue
		}
		r.chunk = append(r.chunk, m)
		r.next = m.Offset + 1
		got++
		if len(r.chunk) == cap(r.chunk) {
			if err := r.flush(); err != nil {
				batch.Close()
				return got, 0, nil, err
			}
		}
	}
	hw = batch.HighWaterMark()
	fetchErr = batch.Close()
	// Compacted offsets move the batch's offset past gaps.
	if off := batch.Offset(); off > r.next && off <= r.to {
		r.next = off
	}
	return got, hw, fetchErr, r.flush()
}

// flush hands the chunk to fn, if it holds anything.
func (r *partitionRead) flush() error {
	if len(r.chunk) == 0 {
		return nil
	}
	err := r.fn(r.chunk)
	r.chunk = make([]kafka.Message, 0, chunkSize)
	return err
}

// retry handles a failed fetch: a log that no longer holds next ends the
// read, as does the last of maxReadAttempts; otherwise it drops the
// connection and waits before the next attempt.
func (r *partitionRead) retry(err error) error {
	if r.ctx.Err() != nil {
		return r.ctx.Err()
	}
	var kerr kafka.Error
	if errors.As(err, &kerr) && kerr == kafka.OffsetOutOfRange {
		return fmt.Errorf("kafka: %s/%d at offset %d: %w (%v)", r.topic, r.partition, r.next, errTruncated, err)
	}
	r.attempts++
	if r.attempts >= maxReadAttempts {
		return fmt.Errorf("kafka: read %s/%d at offset %d: %w", r.topic, r.partition, r.next, err)
	}
	r.conn.Close()
	r.conn = nil
	return sleep(r.ctx, time.Duration(r.attempts)*200*time.Millisecond)
}

func (r *partitionRead) close() {
	if r.stopClose != nil {
		r.stopClose()
	}
	if r.conn != nil {
		r.conn.Close()
	}
}

// readAt returns the message at offset off.
func (k *kafkaReader) readAt(ctx context.Context, topic string, partition int, off int64) (kafka.Message, bool, error) {
	var msg kafka.Message
	found := false
	_, err := k.read(ctx, topic, partition, off, off+1, func(ms []kafka.Message) error {
		for _, m := range ms {
			if m.Offset == off {
				msg, found = m, true
			}
		}
		return nil
	})
	return msg, found, err
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
