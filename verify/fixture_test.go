package verify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/kafkaconn"
	"github.com/sluicehq/sluice/kafkatopic"
	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks"
	"github.com/sluicehq/sluice/sinks/clickhouse"
	"github.com/sluicehq/sluice/workers"
)

// These tests run against a real ClickHouse (scripts/clickhouse.sh starts
// one on 127.0.0.1:9000; SLUICE_CLICKHOUSE_ADDR points elsewhere) and the
// embedded Kafka-protocol broker kfake. Nothing is mocked.

const testPartitions = 3

func chAddr() string { return testkit.ClickHouseAddr() }

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func randomHex() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func builtin(t testing.TB) *schemas.Registry {
	t.Helper()
	return testkit.Registry(t)
}

// fixture is one Kafka cluster and one ClickHouse database, holding what a
// test makes them hold.
type fixture struct {
	t          testing.TB
	partitions int
	brokers    []string
	db         string
	sink       *clickhouse.Sink
	reg        *schemas.Registry
}

func newFixture(t testing.TB) *fixture { return newFixtureN(t, testPartitions) }

// newFixtureN makes a fixture whose topics have n partitions.
func newFixtureN(t testing.TB, n int) *fixture {
	t.Helper()
	reg := builtin(t)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	brokers := cluster.ListenAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topics := []string{kafkatopic.DLQ(kafkatopic.DefaultPrefix)}
	for _, n := range reg.Names() {
		topics = append(topics, kafkatopic.Name(kafkatopic.DefaultPrefix, n))
	}
	if err := kafkatopic.Ensure(ctx, kafkaconn.Security{}, brokers, topics, kafkatopic.Spec{Partitions: n}); err != nil {
		t.Fatal(err)
	}

	db := "sluice_verify_" + randomHex()
	sink, err := clickhouse.Open(ctx, clickhouse.Options{Addr: chAddr(), Database: db, DialTimeout: 3 * time.Second, Logger: quiet()})
	if err != nil {
		t.Fatalf("ClickHouse is not reachable at %s: %v\nStart it with scripts/clickhouse.sh start (or point SLUICE_CLICKHOUSE_ADDR at one).", chAddr(), err)
	}
	t.Cleanup(func() {
		sink.Close()
		dropDatabase(t, db)
	})
	if err := sink.EnsureTables(ctx, reg.Streams()); err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, partitions: n, brokers: brokers, db: db, sink: sink, reg: reg}
}

func dropDatabase(t testing.TB, db string) {
	conn, err := ch.Open(&ch.Options{Addr: []string{chAddr()}, Auth: ch.Auth{Username: "default"}})
	if err != nil {
		t.Errorf("drop database %s: %v", db, err)
		return
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+clickhouse.Quote(db)); err != nil {
		t.Errorf("drop database %s: %v", db, err)
	}
}

func (f *fixture) stream(name string) *schemas.Stream {
	st := f.reg.Stream(name)
	if st == nil {
		f.t.Fatalf("no stream %s", name)
	}
	return st
}

func (f *fixture) config() Config {
	return Config{
		Brokers:      f.brokers,
		ClickHouse:   clickhouse.Options{Addr: chAddr(), Database: f.db},
		Streams:      f.reg.Streams(),
		PollInterval: 100 * time.Millisecond,
		Logger:       quiet(),
	}
}

var t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

func iotEvent(id, device string, i int) schemas.Event {
	return schemas.Event{ID: id, Key: device, ReceivedAt: t0.Add(time.Duration(i) * time.Millisecond), Fields: map[string]any{
		"device_id": device,
		"ts":        t0.Add(time.Duration(i) * time.Second),
		"metrics":   map[string]float64{"temperature": 20 + float64(i%10)},
		"tags":      map[string]string{"site": "plant-a"},
	}}
}

func logEvent(id, service string, i int) schemas.Event {
	return schemas.Event{ID: id, Key: service, ReceivedAt: t0.Add(time.Duration(i) * time.Millisecond), Fields: map[string]any{
		"ts": t0.Add(time.Duration(i) * time.Second), "service": service, "level": "info", "message": fmt.Sprintf("line %d", i),
	}}
}

// produce writes events to the stream's topic, keyed as the collectors key
// them, each call to WriteMessages being one produce request.
func (f *fixture) produce(stream string, events ...schemas.Event) {
	f.t.Helper()
	st := f.stream(stream)
	msgs := make([]kafka.Message, len(events))
	for i, ev := range events {
		v, err := st.Encode(ev)
		if err != nil {
			f.t.Fatal(err)
		}
		msgs[i] = kafka.Message{Key: []byte(ev.Key), Value: v}
	}
	f.produceRaw(stream, msgs...)
}

func (f *fixture) produceRaw(stream string, msgs ...kafka.Message) {
	f.t.Helper()
	w := &kafka.Writer{
		Addr:         kafka.TCP(f.brokers...),
		Topic:        kafkatopic.Name(kafkatopic.DefaultPrefix, stream),
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond,
		BatchSize:    10_000,
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		f.t.Fatal(truncate(err.Error(), 2000))
	}
}

// stored is a message as Kafka holds it, decoded.
type stored struct {
	partition int32
	offset    int64
	event     schemas.Event
	ok        bool // decoded
	value     []byte
}

// readBack returns the stream's messages by partition, in offset order.
func (f *fixture) readBack(stream string) map[int32][]stored {
	f.t.Helper()
	out := map[int32][]stored{}
	f.scanBack(stream, func(m stored) { out[m.partition] = append(out[m.partition], m) })
	return out
}

// scanBack calls fn with each of the stream's messages, partition by
// partition, in offset order.
func (f *fixture) scanBack(stream string, fn func(stored)) {
	f.t.Helper()
	st := f.stream(stream)
	topic := kafkatopic.Name(kafkatopic.DefaultPrefix, stream)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for p := range f.partitions {
		conn, err := kafka.DialLeader(ctx, "tcp", f.brokers[0], topic, p)
		if err != nil {
			f.t.Fatal(err)
		}
		first, last, err := conn.ReadOffsets()
		if err != nil {
			f.t.Fatal(err)
		}
		if _, err := conn.Seek(first, kafka.SeekAbsolute); err != nil {
			f.t.Fatal(err)
		}
		for next := first; next < last; {
			batch := conn.ReadBatch(1, 64<<20)
			for {
				m, err := batch.ReadMessage()
				if err != nil {
					break
				}
				ev, derr := st.Decode(m.Value)
				fn(stored{int32(p), m.Offset, ev, derr == nil, m.Value})
				next = m.Offset + 1
			}
			if err := batch.Close(); err != nil {
				f.t.Fatal(err)
			}
		}
		conn.Close()
	}
}

// deliver writes what Kafka holds to ClickHouse as the workers do: per
// partition in offset order, an event_id once, undecodable messages not at
// all; skip names the event_ids to leave out.
func (f *fixture) deliver(stream string, skip ...string) map[int32][]stored {
	f.t.Helper()
	msgs := f.readBack(stream)
	st := f.stream(stream)
	for p, ms := range msgs {
		seen := map[string]bool{}
		var rows []sinks.Row
		for _, m := range ms {
			if !m.ok || seen[m.event.ID] || slices.Contains(skip, m.event.ID) {
				continue
			}
			seen[m.event.ID] = true
			rows = append(rows, sinks.Row{Offset: m.offset, Event: m.event})
		}
		f.insert(st, p, rows...)
	}
	return msgs
}

func (f *fixture) insert(st *schemas.Stream, partition int32, rows ...sinks.Row) {
	f.t.Helper()
	if err := f.sink.Write(context.Background(), st, partition, rows); err != nil {
		f.t.Fatal(err)
	}
}

// deadLetter writes letters to the dead-letter topic as the workers do.
func (f *fixture) deadLetter(letters ...workers.DeadLetter) {
	f.t.Helper()
	q := workers.NewKafkaDLQ(f.brokers, kafkaconn.Security{}, kafkatopic.DLQ(kafkatopic.DefaultPrefix))
	defer q.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := q.WriteDeadLetters(ctx, letters); err != nil {
		f.t.Fatal(err)
	}
}

// find returns the stored message of the event_id (its first offset).
func find(msgs map[int32][]stored, id string) stored {
	for p := range int32(testPartitions) {
		for _, m := range msgs[p] {
			if m.ok && m.event.ID == id {
				return m
			}
		}
	}
	panic("no event " + id)
}

func run(t testing.TB, cfg Config) Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
