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
// their partition count. Only missing topics are asked for: managed Kafka
// often gives Sluice's user no right to create topics, and Kafka refuses a
// create without that right even for a topic that exists.
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
	missing, err := missingTopics(ctx, sec, brokers, topics)
	if err != nil || len(missing) == 0 {
		return err
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
	cfgs := make([]kafka.TopicConfig, len(missing))
	for i, t := range missing {
		cfgs[i] = kafka.TopicConfig{Topic: t, NumPartitions: spec.Partitions, ReplicationFactor: spec.ReplicationFactor}
	}
	// CreateTopics reports TopicAlreadyExists per topic; kafka-go folds that
	// into success for existing topics.
	err = cc.CreateTopics(cfgs...)
	switch {
	case err == nil, errors.Is(err, kafka.TopicAlreadyExists):
		return nil
	case errors.Is(err, kafka.TopicAuthorizationFailed), errors.Is(err, kafka.ClusterAuthorizationFailed):
		// Waiting will not grant the right: say what to do, once.
		return &kafkaconn.Error{Err: err, Msg: fmt.Sprintf("kafka: not allowed to create topics %v (%v): create them beforehand, or grant Sluice's user the right to create them", missing, err)}
	}
	return fmt.Errorf("kafka: create topics %v: %w", missing, err)
}

// missingTopics returns the topics the brokers' metadata does not list.
// The metadata request does not ask for auto-creation: a broker with
// auto.create.topics.enable would create them with its defaults instead
// of spec's. It goes through a transport of its own, closed after: a
// transport caches metadata for seconds, and the shared one would then
// tell the process's writers that the topics about to be created do not
// exist.
func missingTopics(ctx context.Context, sec kafkaconn.Security, brokers, topics []string) ([]string, error) {
	tr := sec.Transport("sluice", 10*time.Second)
	defer tr.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: tr, Timeout: 10 * time.Second}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("kafka: metadata of %v: %w", topics, err)
	}
	found := make(map[string]bool, len(md.Topics))
	for _, t := range md.Topics {
		found[t.Name] = t.Error == nil && len(t.Partitions) > 0
	}
	var missing []string
	for _, t := range topics {
		if !found[t] {
			missing = append(missing, t)
		}
	}
	return missing, nil
}
