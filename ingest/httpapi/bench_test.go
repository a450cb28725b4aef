package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/internal/testkit"
)

// BenchmarkCollector measures the whole ingest path: HTTP, parsing,
// validation, encoding, and kafka-go with acks=all into an embedded broker,
// for 100-event requests from parallel clients. It reports events/s and the
// average number of messages per produce request (batch sharing).
func BenchmarkCollector(b *testing.B) {
	cluster := testkit.StartKafka(b).Cluster
	p := testkit.NewKafkaProducer(b, cluster.ListenAddrs())
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

	_ = p.Stats() // reset counters
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
	if st := p.Stats(); st.Requests > 0 {
		b.ReportMetric(float64(st.Messages)/float64(st.Requests), "msgs/produce")
	}
}
