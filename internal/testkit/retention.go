package testkit

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// StartKafkaRetention runs an embedded broker, closed when t ends, whose
// topics (Partitions partitions each) delete messages older than
// retention. Topics with a zero retention are created without one, so
// they keep kfake's default of seven days.
//
// kfake applies retention only to topics whose own config sets
// retention.ms (a broker-wide log.retention.ms alone starts no cleaner),
// and only when its cleaner ticks, every log.cleaner.backoff.ms (an hour
// by default): so the cleaner here runs every cleanEvery. Retention
// deletes whole batches whose newest timestamp is older than retention,
// moving the log start offset past them.
func StartKafkaRetention(t testing.TB, cleanEvery time.Duration, topics map[string]time.Duration) *Kafka {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0), kfake.BrokerConfigs(map[string]string{
		"log.cleaner.backoff.ms": strconv.FormatInt(cleanEvery.Milliseconds(), 10),
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	k := &Kafka{Cluster: c, Brokers: c.ListenAddrs()}
	req := &kafka.CreateTopicsRequest{}
	for name, retention := range topics {
		tc := kafka.TopicConfig{Topic: name, NumPartitions: Partitions, ReplicationFactor: 1}
		if retention > 0 {
			tc.ConfigEntries = []kafka.ConfigEntry{{
				ConfigName: "retention.ms", ConfigValue: strconv.FormatInt(retention.Milliseconds(), 10),
			}}
		}
		req.Topics = append(req.Topics, tc)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := k.Client().CreateTopics(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	for name, err := range res.Errors {
		if err != nil {
			t.Fatalf("create topic %s: %v", name, err)
		}
	}
	return k
}

// Client returns a kafka-go client of k, for admin requests in tests.
func (k *Kafka) Client() *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(k.Brokers...), Timeout: 10 * time.Second}
}

// CommitOffset commits offset for partition of topic in group, as a member
// outside any generation (a simple commit, which Kafka takes for a group
// with no live members), so that a test can play the consumer.
func (k *Kafka) CommitOffset(t testing.TB, group, topic string, partition int, offset int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := k.Client().OffsetCommit(ctx, &kafka.OffsetCommitRequest{
		GroupID: group, GenerationID: -1,
		Topics: map[string][]kafka.OffsetCommit{topic: {{Partition: partition, Offset: offset}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, ps := range res.Topics {
		for _, p := range ps {
			if p.Error != nil {
				t.Fatalf("commit %s[%d] at %d for %s: %v", topic, p.Partition, offset, group, p.Error)
			}
		}
	}
}
