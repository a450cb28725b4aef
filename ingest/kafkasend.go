package ingest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	metadataAPI "github.com/segmentio/kafka-go/protocol/metadata"
	produceAPI "github.com/segmentio/kafka-go/protocol/produce"
	"github.com/segmentio/kafka-go/protocol/rawproduce"
	"github.com/sluicehq/sluice/backpressure"
)

// send writes a sealed batch: one request per partition leader, sent
// together, and the partitions that failed with a retriable error again,
// up to MaxAttempts. What still failed is left in b.failed.
func (p *KafkaProducer) send(b *produceBatch) { p.retrySend(b, p.sendOnce) }

// retrySend is send with its requests made by once, which returns the
// error of each partition it could not write. A partition refused for
// good stays failed whatever later attempts for others do.
func (p *KafkaProducer) retrySend(b *produceBatch, once func(*produceBatch, []topicPartition) map[topicPartition]error) {
	b.failed = make(map[topicPartition]error)
	pending := b.order
	policy := backpressure.RetryPolicy{Initial: 100 * time.Millisecond, Max: time.Second, MaxAttempts: uint(p.cfg.MaxAttempts)}
	_ = backpressure.Retry(context.Background(), p.log, fmt.Sprintf("produce %d messages", b.msgs), policy, func(context.Context) error {
		failed := once(b, pending)
		var retry []topicPartition
		for _, tp := range pending {
			switch err := failed[tp]; {
			case err == nil:
				delete(b.failed, tp)
			case retriable(err):
				b.failed[tp] = err
				retry = append(retry, tp)
			default:
				b.failed[tp] = err
			}
		}
		pending = retry
		if len(retry) > 0 {
			return fmt.Errorf("%d partitions not written: %w", len(retry), b.failed[retry[0]])
		}
		return nil
	})
}

// retriable reports whether writing the same messages again may succeed:
// a Kafka error that says so (a leader that moved, a timeout), or a
// failure of the connection.
func retriable(err error) bool {
	var ke kafka.Error
	if errors.As(err, &ke) {
		return ke.Temporary()
	}
	return true
}

// sendOnce sends the pending partitions of b, grouped by leader, and
// returns the error of each partition that was not acknowledged.
func (p *KafkaProducer) sendOnce(b *produceBatch, pending []topicPartition) map[topicPartition]error {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.WriteTimeout)
	defer cancel()
	failed := make(map[topicPartition]error)
	groups, err := p.byLeader(ctx, pending)
	if err != nil {
		for _, tp := range pending {
			failed[tp] = err
		}
		return failed
	}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for _, group := range groups {
		wg.Go(func() {
			errs := p.produce(ctx, b, group)
			mu.Lock()
			defer mu.Unlock()
			for tp, err := range errs {
				failed[tp] = err
			}
		})
	}
	wg.Wait()
	if len(failed) > 0 {
		// A leader may have moved: ask the Transport again next time.
		p.leaders.forget()
	}
	return failed
}

// produce sends one request holding the partitions of one leader, and
// returns the error of each partition that was not acknowledged.
func (p *KafkaProducer) produce(ctx context.Context, b *produceBatch, parts []topicPartition) map[topicPartition]error {
	req := &rawproduce.Request{Acks: int16(kafka.RequireAll), Timeout: int32(p.cfg.WriteTimeout.Milliseconds())}
	size := 0
	for _, tp := range parts {
		size += recordBatchSize(b.parts[tp])
	}
	buf, now := produceBuffer(size), time.Now()
	for _, tp := range parts {
		if n := len(req.Topics); n == 0 || req.Topics[n-1].Topic != tp.topic {
			req.Topics = append(req.Topics, rawproduce.RequestTopic{Topic: tp.topic})
		}
		t := &req.Topics[len(req.Topics)-1]
		from := len(buf)
		buf = appendRecordBatch(buf, b.parts[tp], now)
		t.Partitions = append(t.Partitions, rawproduce.RequestPartition{Partition: tp.partition,
			RecordSet: protocol.RawRecordSet{Reader: bytes.NewReader(buf[from:])}})
	}
	p.requests.Add(1)
	failed := make(map[topicPartition]error)
	res, err := p.transport.RoundTrip(ctx, p.client.Addr, req)
	if err != nil {
		// The buffer is not reused: a round trip that ended early (its
		// context done) may still be writing it.
		for _, tp := range parts {
			failed[tp] = err
		}
		return failed
	}
	// The broker answered, so the request was written whole.
	produceBuffers.Put(&buf)
	acked := make(map[topicPartition]bool, len(parts))
	for _, t := range res.(*produceAPI.Response).Topics {
		for _, rp := range t.Partitions {
			tp := topicPartition{t.Topic, rp.Partition}
			if rp.ErrorCode != 0 {
				failed[tp] = kafka.Error(rp.ErrorCode)
				continue
			}
			acked[tp] = true
			p.messages.Add(int64(len(b.parts[tp])))
		}
	}
	for _, tp := range parts {
		if !acked[tp] && failed[tp] == nil {
			failed[tp] = errors.New("not in the broker's answer")
		}
	}
	return failed
}

// produceBuffers holds the buffers of produce requests that were answered,
// for the next: a new one for each request, cleared by the allocator,
// was a third of the bytes a collector allocated.
var produceBuffers sync.Pool

// produceBuffer returns an empty buffer with room for size bytes.
func produceBuffer(size int) []byte {
	if b, ok := produceBuffers.Get().(*[]byte); ok && cap(*b) >= size {
		return (*b)[:0]
	}
	return make([]byte, 0, size)
}

// byLeader groups partitions by the broker that leads them, in the order
// given.
func (p *KafkaProducer) byLeader(ctx context.Context, parts []topicPartition) ([][]topicPartition, error) {
	md, err := p.metadata(ctx, distinct(parts, func(tp topicPartition) string { return tp.topic }))
	if err != nil {
		return nil, err
	}
	index := make(map[int32]int)
	var groups [][]topicPartition
	for _, tp := range parts {
		leaders := md[tp.topic]
		if int(tp.partition) >= len(leaders) {
			return nil, fmt.Errorf("topic %s has no partition %d", tp.topic, tp.partition)
		}
		i, ok := index[leaders[tp.partition]]
		if !ok {
			i = len(groups)
			index[leaders[tp.partition]] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], tp)
	}
	// A request names each topic once, with its partitions.
	for _, g := range groups {
		slices.SortFunc(g, func(a, b topicPartition) int {
			return cmp.Or(strings.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition))
		})
	}
	return groups, nil
}

// metadata returns, by topic, the leader of each partition. kafka-go's
// Transport answers from its cache of the cluster's metadata, refreshed
// every MetadataTTL.
func (p *KafkaProducer) metadata(ctx context.Context, topics []string) (map[string][]int32, error) {
	now := time.Now()
	if md := p.leaders.get(topics, now); md != nil {
		return md, nil
	}
	res, err := p.transport.RoundTrip(ctx, p.client.Addr, &metadataAPI.Request{TopicNames: topics})
	if err != nil {
		return nil, fmt.Errorf("topic metadata: %w", err)
	}
	md := make(map[string][]int32, len(topics))
	for _, t := range res.(*metadataAPI.Response).Topics {
		if t.ErrorCode != 0 {
			return nil, fmt.Errorf("topic %s: %w", t.Name, kafka.Error(t.ErrorCode))
		}
		leaders := make([]int32, len(t.Partitions))
		for _, part := range t.Partitions {
			if int(part.PartitionIndex) < len(leaders) {
				leaders[part.PartitionIndex] = part.LeaderID
			}
		}
		md[t.Name] = leaders
	}
	for _, t := range topics {
		if len(md[t]) == 0 {
			return nil, fmt.Errorf("topic %s: %w", t, kafka.UnknownTopicOrPartition)
		}
	}
	p.leaders.put(md, now)
	return md, nil
}

// partitions returns the partition of each message: murmur2 of its key,
// as the Java client and kafka-go's Murmur2Balancer choose.
func (p *KafkaProducer) partitions(ctx context.Context, msgs []Message) ([]int32, error) {
	md, err := p.metadata(ctx, distinct(msgs, func(m Message) string { return m.Topic }))
	if err != nil {
		return nil, err
	}
	out := make([]int32, len(msgs))
	var balancer kafka.Murmur2Balancer
	for i, m := range msgs {
		n := len(md[m.Topic])
		out[i] = int32(balancer.Balance(kafka.Message{Key: m.Key}, partitionIndexes(n)...))
	}
	return out, nil
}

// distinct returns the topics of items, each once, in order. A request
// names a topic or two: a list beats a set.
func distinct[T any](items []T, topic func(T) string) []string {
	var topics []string
	for _, it := range items {
		if t := topic(it); !slices.Contains(topics, t) {
			topics = append(topics, t)
		}
	}
	return topics
}

// partitionIndexes returns 0..n-1, shared for the common counts.
func partitionIndexes(n int) []int {
	if n < len(smallIndexes) {
		return smallIndexes[:n]
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

var smallIndexes = func() []int {
	idx := make([]int, 256)
	for i := range idx {
		idx[i] = i
	}
	return idx
}()
