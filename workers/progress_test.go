package workers

import (
	"context"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/kafkaconn"
)

// KafkaProgress keeps an output's progress as a standalone consumer
// group's committed offsets, on a Kafka-protocol broker.
func TestKafkaProgress(t *testing.T) {
	k := testkit.StartKafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	prog := NewKafkaProgress(k.Brokers, kafkaconn.Security{}, "sluice-workers.nats")
	if prog.Group() != "sluice-workers.nats" {
		t.Errorf("Group = %q", prog.Group())
	}
	topic := testkit.StreamTopic(testStream)

	type load struct {
		prog *KafkaProgress
		part int32
		want int64
		ok   bool
	}
	check := func(step string, loads ...load) {
		t.Helper()
		for _, l := range loads {
			off, ok, err := l.prog.Load(ctx, topic, l.part)
			if err != nil || ok != l.ok || (ok && off != l.want) {
				t.Errorf("%s: Load(%s, %d) = %d, %v, %v; want %d, %v", step, l.prog.Group(), l.part, off, ok, err, l.want, l.ok)
			}
		}
	}
	other := NewKafkaProgress(k.Brokers, kafkaconn.Security{}, "sluice-workers.webhook")

	check("before any save", load{prog: prog, part: 0}, load{prog: other, part: 0})
	if err := prog.Save(ctx, topic, 0, 41); err != nil {
		t.Fatal(err)
	}
	check("after saving 41 in partition 0",
		load{prog: prog, part: 0, want: 41, ok: true},
		load{prog: prog, part: 1},
		load{prog: other, part: 0})
	if err := prog.Save(ctx, topic, 0, 99); err != nil {
		t.Fatal(err)
	}
	if err := prog.Save(ctx, topic, 1, 0); err != nil {
		t.Fatal(err)
	}
	check("after saving 99 and, in partition 1, 0",
		load{prog: prog, part: 0, want: 99, ok: true},
		load{prog: prog, part: 1, want: 0, ok: true})
	// A new process reads what the last one saved.
	check("from another client", load{prog: NewKafkaProgress(k.Brokers, kafkaconn.Security{}, "sluice-workers.nats"), part: 0, want: 99, ok: true})
}
