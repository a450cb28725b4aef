package workers

import (
	"context"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/internal/tlsfiles"
	"github.com/sluicehq/sluice/kafkaconn"
	"github.com/sluicehq/sluice/kafkatopic"
)

// The dead-letter writer and the outputs' progress connect with the
// configured SASL and TLS: against a broker that wants SCRAM-SHA-512 over
// TLS, a letter is acknowledged and a saved offset reads back. (The
// consumer group and its readers are proven end to end, in e2e.)
func TestKafkaClientsOverSASLAndTLS(t *testing.T) {
	ca := testkit.NewCA(t)
	k := testkit.StartKafka(t, testkit.KafkaSASL("SCRAM-SHA-512", "worker", "pw-512"), testkit.KafkaTLS(ca))
	sec, err := kafkaconn.Settings{Files: tlsfiles.Client{CA: ca.Path("ca.pem")}, Mechanism: "scram-sha-512", Username: "worker", Password: "pw-512"}.Security()
	if err != nil {
		t.Fatal(err)
	}
	defer sec.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	q := NewKafkaDLQ(k.Brokers, sec, kafkatopic.DLQ(kafkatopic.DefaultPrefix))
	defer q.Close()
	letter := DeadLetter{Stream: testStream, Topic: testkit.StreamTopic(testStream), Partition: 0, Offset: 3, Value: []byte(`{"event_id":"e-1"}`), Reason: "test"}
	if err := q.WriteDeadLetters(ctx, []DeadLetter{letter}); err != nil {
		t.Fatalf("WriteDeadLetters: %v", err)
	}

	prog := NewKafkaProgress(k.Brokers, sec, "sluice-workers.nats")
	if err := prog.Save(ctx, testkit.StreamTopic(testStream), 0, 41); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if got, ok, err := prog.Load(ctx, testkit.StreamTopic(testStream), 0); err != nil || !ok || got != 41 {
		t.Errorf("Load = %d, %v, %v; want 41, true, nil", got, ok, err)
	}
}
