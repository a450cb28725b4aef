package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Concurrent WriteMessages calls must share kafka-go's per-partition
// batches: that is what lets one Writer serve every request efficiently.
// With a long batch timeout and a batch size equal to the sum of all calls,
// sharing means one produce request; not sharing would mean one per call.
func TestKafkaProducerSharesBatches(t *testing.T) {
	cluster := startKafka(t)
	const callers, perCall = 16, 4
	p, err := NewKafkaProducer(KafkaConfig{
		Brokers:      cluster.ListenAddrs(),
		BatchSize:    callers * perCall,
		BatchTimeout: 2 * time.Second,
		Logger:       quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// Warm the metadata cache so that all calls reach the batch together.
	if err := p.Ping(context.Background(), "sluice.iot_telemetry"); err != nil {
		t.Fatal(err)
	}
	_ = p.w.Stats() // reset counters

	start := time.Now()
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msgs := make([]Message, perCall)
			for i := range msgs {
				// One key, so one partition and one batch.
				msgs[i] = Message{Topic: "sluice.iot_telemetry", Key: []byte("dev-1"),
					Value: fmt.Appendf(nil, `{"c":%d,"i":%d}`, c, i), Time: time.Now()}
			}
			if err := p.Produce(context.Background(), msgs); err != nil {
				t.Errorf("Produce: %v", err)
			}
		}()
	}
	wg.Wait()
	stats := p.w.Stats()
	if stats.Writes != 1 || stats.Messages != callers*perCall {
		t.Errorf("%d produce requests carrying %d messages, want 1 carrying %d", stats.Writes, stats.Messages, callers*perCall)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("took %s: the full batch waited for the timeout", took)
	}
}

// BenchmarkCollector measures the whole ingest path: HTTP, parsing,
// validation, encoding, and kafka-go with acks=all into an embedded broker,
// for 100-event requests from parallel clients. It reports events/s and the
// average number of messages per produce request (batch sharing).
func BenchmarkCollector(b *testing.B) {
	cluster := startKafka(b)
	p := newTestKafkaProducer(b, cluster.ListenAddrs())
	c := newTestCollector(b, p, nil)
	srv := httptest.NewServer(c)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	defer client.CloseIdleConnections()

	const eventsPerRequest = 100
	bodies := make([][]byte, 64)
	for i := range bodies {
		events := make([]map[string]any, eventsPerRequest)
		for e := range events {
			events[e] = map[string]any{
				"device_id": fmt.Sprintf("sensor-%04d", (i*eventsPerRequest+e)%1000),
				"ts":        1795514400000 + e,
				"metrics":   map[string]any{"temperature": 20 + float64(e)/10, "humidity": 40.5},
				"tags":      map[string]any{"site": "plant-a"},
			}
		}
		bodies[i], _ = json.Marshal(events)
	}
	url := srv.URL + "/v1/streams/iot_telemetry/events"

	_ = p.w.Stats() // reset counters
	b.SetParallelism(8)
	b.ResetTimer()
	var mu sync.Mutex
	next := 0
	b.RunParallel(func(pb *testing.PB) {
		mu.Lock()
		i := next
		next++
		mu.Unlock()
		for pb.Next() {
			body := bodies[i%len(bodies)]
			i++
			resp, err := client.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N*eventsPerRequest)/b.Elapsed().Seconds(), "events/s")
	if st := p.w.Stats(); st.Writes > 0 {
		b.ReportMetric(float64(st.Messages)/float64(st.Writes), "msgs/produce")
	}
}
