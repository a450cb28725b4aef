package workers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/kafkaconn"
)

// KafkaProgress is a sinks.ProgressLog kept as the committed offsets of a
// consumer group of its own, one per output (by default the workers' group
// id plus "." and the output's name). No member ever joins that group: its
// offsets are committed as a standalone consumer's, which Kafka accepts for
// an empty group. It works whatever the output's mode (JetStream or core
// NATS), survives restarts and rebalances like any committed offset, and
// needs nothing besides the Kafka the pipeline already has.
//
// A KafkaProgress is safe for concurrent use.
type KafkaProgress struct {
	group  string
	client *kafka.Client
}

// NewKafkaProgress returns a progress log kept in group's offsets on
// brokers, connecting with sec's TLS and SASL.
func NewKafkaProgress(brokers []string, sec kafkaconn.Security, group string) *KafkaProgress {
	return &KafkaProgress{group: group, client: sec.Client(brokers, 10*time.Second)}
}

// Group returns the consumer group the progress is kept in.
func (k *KafkaProgress) Group() string { return k.group }

// Load returns the last offset saved for the partition.
func (k *KafkaProgress) Load(ctx context.Context, topic string, partition int32) (int64, bool, error) {
	resp, err := k.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: k.group, Topics: map[string][]int{topic: {int(partition)}}})
	if err == nil {
		err = resp.Error
	}
	if errors.Is(err, kafka.GroupIdNotFound) {
		return 0, false, nil // nothing was ever saved
	}
	if err != nil {
		return 0, false, fmt.Errorf("progress: fetch offset of %s/%d in group %s: %w", topic, partition, k.group, err)
	}
	for _, p := range resp.Topics[topic] {
		if p.Partition != int(partition) {
			continue
		}
		if errors.Is(p.Error, kafka.GroupIdNotFound) {
			return 0, false, nil
		}
		if p.Error != nil {
			return 0, false, fmt.Errorf("progress: fetch offset of %s/%d in group %s: %w", topic, partition, k.group, p.Error)
		}
		if p.CommittedOffset < 0 {
			return 0, false, nil
		}
		// A committed offset names the next offset to read.
		return p.CommittedOffset - 1, true, nil
	}
	return 0, false, nil
}

// Save records offsets up to and including offset as done.
func (k *KafkaProgress) Save(ctx context.Context, topic string, partition int32, offset int64) error {
	resp, err := k.client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{
		GroupID: k.group,
		// A standalone commit: no generation, no member.
		GenerationID: -1,
		Topics:       map[string][]kafka.OffsetCommit{topic: {{Partition: int(partition), Offset: offset + 1}}},
	})
	if err != nil {
		return fmt.Errorf("progress: commit %s/%d=%d in group %s: %w", topic, partition, offset, k.group, err)
	}
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return fmt.Errorf("progress: commit %s/%d=%d in group %s: %w", topic, partition, offset, k.group, p.Error)
		}
	}
	return nil
}
