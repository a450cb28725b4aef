// Package kafkatopic names Sluice's Kafka topics and creates them.
package kafkatopic

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/kafkaconn"
)

// DefaultPrefix is the topic prefix when none is configured.
const DefaultPrefix = "sluice."

// Name returns the topic that carries a stream's events.
func Name(prefix, stream string) string { return prefix + stream }

// DLQ returns the dead-letter topic.
func DLQ(prefix string) string { return prefix + "dlq" }

// Spec describes the topics to create.
type Spec struct {
	Partitions        int
	ReplicationFactor int
}

// Ensure creates the given topics where they are missing, connecting with
// sec's TLS and SASL. Topics that exist are left as they are, whatever
// their partition count.
func Ensure(ctx context.Context, sec kafkaconn.Security, brokers []string, topics []string, spec Spec) error {
	if len(brokers) == 0 {
		return errors.New("kafka: no brokers configured")
	}
	if spec.Partitions <= 0 {
		spec.Partitions = 1
	}
	if spec.ReplicationFactor <= 0 {
		spec.ReplicationFactor = 1
	}
	dialer := sec.Dialer("sluice", 10*time.Second)
	conn, err := dialer.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		if err = sec.Explain(brokers[0], err); kafkaconn.IsPermanent(err) {
			return err
		}
		return fmt.Errorf("kafka: dial %s: %w", brokers[0], err)
	}
	defer conn.Close()
	ctrl, err := conn.Controller()
	if err != nil {
		return fmt.Errorf("kafka: find controller: %w", err)
	}
	cc, err := dialer.DialContext(ctx, "tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		return fmt.Errorf("kafka: dial controller: %w", err)
	}
	defer cc.Close()
	cfgs := make([]kafka.TopicConfig, len(topics))
	for i, t := range topics {
		cfgs[i] = kafka.TopicConfig{Topic: t, NumPartitions: spec.Partitions, ReplicationFactor: spec.ReplicationFactor}
	}
	// CreateTopics reports TopicAlreadyExists per topic; kafka-go folds that
	// into success for existing topics.
	if err := cc.CreateTopics(cfgs...); err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("kafka: create topics %v: %w", topics, err)
	}
	return nil
}
