// Package testkit holds the test helpers that several packages share: an
// embedded Kafka-protocol broker with Sluice's topics, a gate writing to it,
// and readers of what landed. Tests of sources (MQTT, syslog, RELP) use it
// instead of copying helpers between packages.
package testkit

import (
	"context"
	"crypto/tls"
	"log/slog"
	"os/exec"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sluicehq/sluice/deadletter"
	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/kafkatopic"
	"github.com/sluicehq/sluice/schemas"
)

// Partitions is the partition count of the topics StartKafka seeds.
const Partitions = 4

// QuietLogger discards everything.
func QuietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// Registry returns the built-in streams.
func Registry(t testing.TB) *schemas.Registry {
	t.Helper()
	reg, err := schemas.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// Stream returns the built-in stream name.
func Stream(t testing.TB, name string) *schemas.Stream {
	t.Helper()
	st := Registry(t).Stream(name)
	if st == nil {
		t.Fatalf("no built-in stream %s", name)
	}
	return st
}

// Kafka is an embedded broker holding the built-in streams' topics and the
// dead-letter topic.
type Kafka struct {
	Cluster *kfake.Cluster
	Brokers []string
}

// KafkaOption changes the embedded broker StartKafka runs.
type KafkaOption func(t testing.TB) []kfake.Opt

// KafkaSASL makes the broker require SASL, with one user of mechanism
// "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512" (the broker's names).
// Kafka's own readers (ReadTopic and the like) connect in plaintext
// without SASL: use them only on a broker without this option.
func KafkaSASL(mechanism, user, password string) KafkaOption {
	return func(testing.TB) []kfake.Opt {
		return []kfake.Opt{kfake.EnableSASL(), kfake.Superuser(mechanism, user, password)}
	}
}

// KafkaTLS makes the broker serve TLS only, with ca's server certificate
// (for 127.0.0.1 and localhost).
func KafkaTLS(ca *CA) KafkaOption {
	return func(t testing.TB) []kfake.Opt {
		t.Helper()
		cert, err := tls.LoadX509KeyPair(ca.Path("server.pem"), ca.Path("server-key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		return []kfake.Opt{kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})}
	}
}

// KafkaBrokers makes the cluster n brokers, the partitions' leaders
// spread over them.
func KafkaBrokers(n int) KafkaOption {
	// Ports, not NumBrokers: StartKafka's Ports(0) fixes the number.
	return func(testing.TB) []kfake.Opt { return []kfake.Opt{kfake.Ports(make([]int, n)...)} }
}

// StartKafka runs an embedded Kafka-protocol broker, closed when t ends.
func StartKafka(t testing.TB, opts ...KafkaOption) *Kafka {
	t.Helper()
	topics := []string{
		kafkatopic.Name(kafkatopic.DefaultPrefix, "iot_telemetry"),
		kafkatopic.Name(kafkatopic.DefaultPrefix, "app_logs"),
		kafkatopic.DLQ(kafkatopic.DefaultPrefix),
	}
	kopts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(0), kfake.SeedTopics(Partitions, topics...)}
	for _, o := range opts {
		kopts = append(kopts, o(t)...)
	}
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &Kafka{Cluster: c, Brokers: c.ListenAddrs()}
}

// NewKafkaProducer returns a producer to brokers, closed when t ends.
func NewKafkaProducer(t testing.TB, brokers []string) *ingest.KafkaProducer {
	t.Helper()
	p, err := ingest.NewKafkaProducer(ingest.KafkaConfig{Brokers: brokers, Logger: QuietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close producer: %v", err)
		}
	})
	return p
}

// GateOption changes the gate config NewGate builds.
type GateOption func(*ingest.GateConfig)

// NewGate returns a gate producing to k with acks=all, its metrics in reg
// (nil: a private registry). The producer is closed when t ends.
func NewGate(t testing.TB, k *Kafka, reg prometheus.Registerer, opts ...GateOption) *ingest.Gate {
	t.Helper()
	p := NewKafkaProducer(t, k.Brokers)
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	cfg := ingest.GateConfig{Registry: Registry(t), Producer: p, Logger: QuietLogger(), Registerer: reg}
	for _, o := range opts {
		o(&cfg)
	}
	g, err := ingest.NewGate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// ReadTopic returns every message of topic up to its current end, across
// partitions.
func (k *Kafka) ReadTopic(t testing.TB, topic string) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := kafka.DialContext(ctx, "tcp", k.Brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	var out []kafka.Message
	for _, p := range parts {
		pc, err := kafka.DialLeader(ctx, "tcp", k.Brokers[0], topic, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		last, err := pc.ReadLastOffset()
		pc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if last == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: k.Brokers, Topic: topic, Partition: p.ID, MaxWait: 100 * time.Millisecond})
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				t.Fatalf("read %s/%d: %v", topic, p.ID, err)
			}
			out = append(out, m)
			if m.Offset >= last-1 {
				break
			}
		}
		r.Close()
	}
	return out
}

// StreamTopic is the topic of a built-in stream.
func StreamTopic(stream string) string { return kafkatopic.Name(kafkatopic.DefaultPrefix, stream) }

// DeadLetters returns the decoded records of the dead-letter topic.
func (k *Kafka) DeadLetters(t testing.TB) []deadletter.Record {
	t.Helper()
	var out []deadletter.Record
	for _, m := range k.ReadTopic(t, kafkatopic.DLQ(kafkatopic.DefaultPrefix)) {
		rec, err := deadletter.Decode(m.Value)
		if err != nil {
			t.Fatalf("dead letter at offset %d: %v", m.Offset, err)
		}
		out = append(out, rec)
	}
	return out
}

// LookPath finds a Debian peer program (mosquitto and rsyslogd live in
// /usr/sbin, which a non-root PATH may lack), or fails the test: never skips,
// since scripts/peers.sh installs them for `make test`.
func LookPath(t testing.TB, name string) string {
	t.Helper()
	for _, p := range []string{name, "/usr/sbin/" + name, "/usr/bin/" + name, "/sbin/" + name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatalf("%s not found: run scripts/peers.sh (make test does)", name)
	return ""
}
