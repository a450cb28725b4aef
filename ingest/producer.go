package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/kafkaconn"
)

// Message is one record to write to Kafka.
type Message struct {
	Topic string
	Key   []byte
	Value []byte
	// Time is the record timestamp; Sluice uses the time it received the event.
	Time time.Time
	// Headers are record headers (dead letters carry their origin there).
	Headers []Header
}

// Header is one Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// Producer writes messages to Kafka. Produce returns nil only after Kafka
// has acknowledged every message with acks=all; any error means the caller
// must treat the whole call as not acknowledged, even though some messages
// may have been written (consumers deduplicate by event_id).
type Producer interface {
	Produce(ctx context.Context, msgs []Message) error
}

// Pinger is implemented by producers that can tell whether Kafka is
// reachable and the given topics exist. The Collector uses it for /readyz
// when no readiness function is configured.
type Pinger interface {
	Ping(ctx context.Context, topics ...string) error
}

// Defaults for KafkaConfig.
const (
	DefaultBatchTimeout = 5 * time.Millisecond
	DefaultBatchSize    = 128
	DefaultBatchBytes   = 1 << 20
	DefaultWriteTimeout = 5 * time.Second
	DefaultMaxAttempts  = 3
	DefaultMetadataTTL  = 5 * time.Second
	DefaultDialTimeout  = 5 * time.Second
)

// KafkaConfig configures a KafkaProducer. Zero values take the defaults.
type KafkaConfig struct {
	// Brokers are the bootstrap addresses, host:port.
	Brokers []string
	// Kafka is the TLS and SASL of the connections; zero is plaintext.
	Kafka kafkaconn.Security
	// ClientID names this producer to the brokers; default "sluice-ingest".
	ClientID string
	// BatchTimeout is how long a partially filled batch waits for more
	// messages. Every WriteMessages caller waits for its batch, so this is a
	// floor on request latency under light load; keep it a few milliseconds.
	BatchTimeout time.Duration
	// BatchSize is the most messages per partition batch. kafka-go writes
	// one batch per partition at a time, so under load throughput per
	// partition is about BatchSize per broker round trip. It also
	// allocates room for BatchSize messages (about 200 bytes each) for
	// every batch it starts, full or not: with 1,000, clearing and
	// collecting that room took a seventh of the ingest role's CPU at
	// 20,000 events/s, where batches hold a few dozen; with 256 still a
	// tenth. The default, 128, keeps that room under Go's 32 KiB
	// large-object size and still allows 128 messages a round trip per
	// partition (12,800/s at a 10 ms round trip).
	BatchSize int
	// BatchBytes is the most bytes per batch. It must not exceed the
	// broker's message.max.bytes (1 MiB + 12 by default) and must be at
	// least the Collector's MaxEventBytes.
	BatchBytes int64
	// WriteTimeout bounds one produce round trip.
	WriteTimeout time.Duration
	// MaxAttempts is how often kafka-go tries a batch on retriable errors.
	MaxAttempts int
	// Compression of batches; zero means none.
	Compression kafka.Compression
	// MetadataTTL is how often topic metadata is refreshed; a topic created
	// after the producer started becomes writable within this time.
	MetadataTTL time.Duration
	// DialTimeout bounds connecting to a broker.
	DialTimeout time.Duration
	// Logger receives kafka-go's error log; nil means slog.Default().
	Logger *slog.Logger
}

// KafkaProducer is a Producer backed by one kafka-go Writer shared by all
// requests and topics. kafka-go's synchronous WriteMessages, called from many
// goroutines, appends to the same per-partition batch, so concurrent HTTP
// requests are written to Kafka together and each returns when its own
// messages' batches are acknowledged.
type KafkaProducer struct {
	w         *kafka.Writer
	transport *kafka.Transport
	sec       kafkaconn.Security
	brokers   []string
}

// NewKafkaProducer returns a producer writing with acks=all and Java-compatible
// murmur2 key hashing, so that a key always lands on the same partition as
// with any other Kafka client. Topics must exist: it does not create them.
func NewKafkaProducer(cfg KafkaConfig) (*KafkaProducer, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("kafka producer: no brokers configured")
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "sluice-ingest"
	}
	if cfg.BatchTimeout <= 0 {
		cfg.BatchTimeout = DefaultBatchTimeout
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.BatchBytes <= 0 {
		cfg.BatchBytes = DefaultBatchBytes
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.MetadataTTL <= 0 {
		cfg.MetadataTTL = DefaultMetadataTTL
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "kafka-producer")

	transport := cfg.Kafka.Transport(cfg.ClientID, cfg.DialTimeout)
	transport.MetadataTTL = cfg.MetadataTTL
	w := &kafka.Writer{
		Addr:         kafka.TCP(cfg.Brokers...),
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: cfg.BatchTimeout,
		BatchSize:    cfg.BatchSize,
		BatchBytes:   cfg.BatchBytes,
		WriteTimeout: cfg.WriteTimeout,
		ReadTimeout:  cfg.WriteTimeout,
		MaxAttempts:  cfg.MaxAttempts,
		Compression:  cfg.Compression,
		Transport:    transport,
		// Only errors: the info log reports every batch.
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			log.Warn(fmt.Sprintf(msg, args...))
		}),
	}
	return &KafkaProducer{
		w:         w,
		transport: transport,
		sec:       cfg.Kafka,
		brokers:   cfg.Brokers,
	}, nil
}

// Produce writes msgs and waits until Kafka acknowledged all of them. If any
// message fails, the whole call fails: kafka-go reports per-message results
// (kafka.WriteErrors) and the ones that did succeed are not reported as
// acknowledged, so the client retries them all.
//
// When ctx ends first, Produce returns its error, but kafka-go keeps the
// messages already queued and may still write them.
func (p *KafkaProducer) Produce(ctx context.Context, msgs []Message) error {
	if len(msgs) == 0 {
		return nil
	}
	kmsgs := make([]kafka.Message, len(msgs))
	for i, m := range msgs {
		kmsgs[i] = kafka.Message{Topic: m.Topic, Key: m.Key, Value: m.Value, Time: m.Time}
		for _, h := range m.Headers {
			kmsgs[i].Headers = append(kmsgs[i].Headers, kafka.Header{Key: h.Key, Value: h.Value})
		}
	}
	err := p.w.WriteMessages(ctx, kmsgs...)
	if err == nil {
		return nil
	}
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) {
		var first error
		for _, e := range werrs {
			if e != nil {
				first = e
				break
			}
		}
		return fmt.Errorf("kafka: %d of %d messages not acknowledged: %w", werrs.Count(), len(msgs), first)
	}
	return fmt.Errorf("kafka: produce %d messages: %w", len(msgs), err)
}

// Ping checks that a broker answers now and that the producer's metadata
// knows every given topic. The first part is a fresh round trip, so it
// notices a broker that went away; the second uses the producer's cached
// metadata, which is what Produce relies on.
func (p *KafkaProducer) Ping(ctx context.Context, topics ...string) error {
	if err := p.sec.Ping(ctx, p.brokers); err != nil {
		return err
	}
	if len(topics) == 0 {
		return nil
	}
	client := &kafka.Client{Addr: p.w.Addr, Transport: p.transport}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return fmt.Errorf("kafka: topic metadata: %w", err)
	}
	var missing []error
	for _, t := range md.Topics {
		if t.Error != nil {
			missing = append(missing, fmt.Errorf("topic %s: %w", t.Name, t.Error))
		} else if len(t.Partitions) == 0 {
			missing = append(missing, fmt.Errorf("topic %s: no partitions", t.Name))
		}
	}
	if len(md.Topics) < len(topics) {
		missing = append(missing, fmt.Errorf("metadata lists %d of %d topics", len(md.Topics), len(topics)))
	}
	if len(missing) > 0 {
		return fmt.Errorf("kafka: %w", errors.Join(missing...))
	}
	return nil
}

// Stats returns the writer's counters since the last call (kafka-go resets
// them on every read): produce requests, messages, bytes, errors.
func (p *KafkaProducer) Stats() kafka.WriterStats { return p.w.Stats() }

// Close flushes pending batches, waits for them, and releases connections.
// Produce must not be called after Close.
func (p *KafkaProducer) Close() error {
	err := p.w.Close()
	p.transport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("kafka producer: close: %w", err)
	}
	return nil
}
