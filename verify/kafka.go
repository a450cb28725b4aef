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
	next := from
	var conn *kafka.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	// Closing the connection is the only way to interrupt a fetch in
	// progress when ctx ends.
	var stopClose func() bool
	defer func() {
		if stopClose != nil {
			stopClose()
		}
	}()
	attempts, empty := 0, 0
	chunk := make([]kafka.Message, 0, chunkSize)
	for next < to {
		if err := ctx.Err(); err != nil {
			return next, err
		}
		if conn == nil {
			c, err := k.dialLeader(ctx, topic, partition)
			if err != nil {
				return next, err
			}
			conn = c
			if stopClose != nil {
				stopClose()
			}
			stopClose = context.AfterFunc(ctx, func() { c.Close() })
		}
		if _, err := conn.Seek(next, kafka.SeekAbsolute|kafka.SeekDontCheck); err != nil {
			return next, fmt.Errorf("kafka: seek %s/%d to %d: %w", topic, partition, next, err)
		}
		if err := conn.SetReadDeadline(time.Now().Add(k.timeout + fetchMaxWait)); err != nil {
			return next, fmt.Errorf("kafka: %s/%d: %w", topic, partition, err)
		}
		batch := conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: fetchMaxBytes, MaxWait: fetchMaxWait})
		got := 0
		for {
			m, err := batch.ReadMessage()
			if err != nil {
				break // Close reports it, io.EOF excepted
			}
			if m.Offset >= to {
				break
			}
			if m.Offset < next {
				continue
			}
			chunk = append(chunk, m)
			next = m.Offset + 1
			got++
			if len(chunk) == cap(chunk) {
				if err := fn(chunk); err != nil {
					batch.Close()
					return next, err
				}
				chunk = make([]kafka.Message, 0, chunkSize)
			}
		}
		hwNow := batch.HighWaterMark()
		err := batch.Close()
		// Compacted offsets move the batch's offset past gaps.
		if off := batch.Offset(); off > next && off <= to {
			next = off
		}
		if len(chunk) > 0 {
			if err := fn(chunk); err != nil {
				return next, err
			}
			chunk = make([]kafka.Message, 0, chunkSize)
		}
		if err != nil {
			if ctx.Err() != nil {
				return next, ctx.Err()
			}
			var kerr kafka.Error
			if errors.As(err, &kerr) && kerr == kafka.OffsetOutOfRange {
				return next, fmt.Errorf("kafka: %s/%d at offset %d: %w (%v)", topic, partition, next, errTruncated, err)
			}
			attempts++
			if attempts >= maxReadAttempts {
				return next, fmt.Errorf("kafka: read %s/%d at offset %d: %w", topic, partition, next, err)
			}
			conn.Close()
			conn = nil
			if err := sleep(ctx, time.Duration(attempts)*200*time.Millisecond); err != nil {
				return next, err
			}
			continue
		}
		attempts = 0
		if got > 0 {
			empty = 0
			continue
		}
		if hwNow <= next {
			return next, fmt.Errorf("kafka: %s/%d: %w: log ends at %d, watermark was %d", topic, partition, errTruncated, hwNow, to)
		}
		empty++
		if empty >= maxEmptyFetches {
			return next, fmt.Errorf("kafka: %s/%d: %w: nothing readable from offset %d to %d", topic, partition, errTruncated, next, to)
		}
	}
	return next, nil
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
