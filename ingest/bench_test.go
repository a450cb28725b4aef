package ingest_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/internal/testkit"
)

// Concurrent Produce calls share produce requests: that is what lets one
// producer serve every request efficiently. With a long batch timeout and a
// batch size equal to the sum of all calls, sharing means one produce
// request; not sharing would mean one per call.
func TestKafkaProducerSharesBatches(t *testing.T) {
	k := testkit.StartKafka(t)
	const callers, perCall = 16, 4
	p, err := ingest.NewKafkaProducer(ingest.KafkaConfig{
		Brokers:      k.Brokers,
		BatchSize:    callers * perCall,
		BatchTimeout: 2 * time.Second,
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// Warm the metadata cache so that all calls reach the batch together.
	if err := p.Ping(context.Background(), "sluice.iot_telemetry"); err != nil {
		t.Fatal(err)
	}
	before := p.Stats()

	start := time.Now()
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msgs := make([]ingest.Message, perCall)
			for i := range msgs {
				// One key, so one partition.
				msgs[i] = ingest.Message{Topic: "sluice.iot_telemetry", Key: []byte("dev-1"),
					Value: fmt.Appendf(nil, `{"c":%d,"i":%d}`, c, i), Time: time.Now()}
			}
			if err := p.Produce(context.Background(), msgs); err != nil {
				t.Errorf("Produce: %v", err)
			}
		}()
	}
	wg.Wait()
	after := p.Stats()
	if reqs, msgs := after.Requests-before.Requests, after.Messages-before.Messages; reqs != 1 || msgs != callers*perCall {
		t.Errorf("%d produce requests carrying %d messages, want 1 carrying %d", reqs, msgs, callers*perCall)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("took %s: the full batch waited for the timeout", took)
	}
}
