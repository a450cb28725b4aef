// Package kafkatopic names Sluice's Kafka topics, creates them, and checks
// that the brokers answer.
package kafkatopic

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
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

// Ensure creates the given topics where they are missing. Topics that exist
// are left as they are, whatever their partition count.
func Ensure(ctx context.Context, brokers []string, topics []string, spec Spec) error {
	if len(brokers) == 0 {
		return errors.New("kafka: no brokers configured")
	}
	if spec.Partitions <= 0 {
		spec.Partitions = 1
	}
	if spec.ReplicationFactor <= 0 {
		spec.ReplicationFactor = 1
	}
	dialer := &kafka.Dialer{Timeout: 10 * time.Second}
	conn, err := dialer.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
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

// Ping reports whether any of brokers accepts a connection and answers a
// metadata request. A broker that accepts connections but never answers is
// cut off at ctx's deadline, or after the dialer's timeout when ctx has none.
func Ping(ctx context.Context, dialer *kafka.Dialer, brokers []string) error {
	var errs error
	for _, addr := range brokers {
		conn, err := dialer.DialContext(ctx, "tcp", addr)
		if err != nil {
			errs = errors.Join(errs, err)
			continue
		}
		deadline, ok := ctx.Deadline()
		if !ok {
			deadline = time.Now().Add(dialer.Timeout)
		}
		_ = conn.SetDeadline(deadline)
		_, err = conn.Brokers()
		_ = conn.Close()
		if err == nil {
			return nil
		}
		errs = errors.Join(errs, fmt.Errorf("metadata from %s: %w", addr, err))
	}
	return fmt.Errorf("kafka: no broker reachable: %w", errs)
}
