package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/sluicehq/sluice/backpressure"
	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/kafkatopic"
	"github.com/sluicehq/sluice/ops"
)

type postedEvent struct {
	request int
	seq     int // position within its request
	key     string
}

// Concurrent posts through a real HTTP server into a real Kafka-protocol
// broker: every event acknowledged with 202 must be in the topic, once, on
// the partition Java clients would pick for its key, with its JSON intact.
func TestKafkaEndToEnd(t *testing.T) {
	cluster := testkit.StartKafka(t).Cluster
	brokers := cluster.ListenAddrs()
	c := newTestCollector(t, testkit.NewKafkaProducer(t, brokers), nil)
	srv := httptest.NewServer(c)
	defer srv.Close()

	const clients, requestsPerClient, eventsPerRequest = 8, 10, 25
	var mu sync.Mutex
	posted := map[string]map[string]postedEvent{"iot_telemetry": {}, "app_logs": {}}
	var wg sync.WaitGroup
	for cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rq := range requestsPerClient {
				reqID := cl*requestsPerClient + rq
				stream := "iot_telemetry"
				if rq%3 == 2 {
					stream = "app_logs"
				}
				var body bytes.Buffer
				events := map[string]postedEvent{}
				for e := range eventsPerRequest {
					id := fmt.Sprintf("r%d-e%d", reqID, e)
					key := fmt.Sprintf("key-%d", (reqID+e)%11)
					var obj map[string]any
					if stream == "iot_telemetry" {
						obj = map[string]any{"event_id": id, "device_id": key, "ts": 1795514400000 + e,
							"metrics": map[string]any{"seq": e}}
					} else {
						obj = map[string]any{"event_id": id, "service": key, "ts": "2026-11-24T10:00:00Z",
							"level": "info", "message": fmt.Sprintf("line %d", e)}
					}
					line, _ := json.Marshal(obj)
					body.Write(line)
					body.WriteByte('\n')
					events[id] = postedEvent{request: reqID, seq: e, key: key}
				}
				req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/streams/"+stream+"/events", &body)
				req.Header.Set("Content-Type", "application/x-ndjson")
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Errorf("post: %v", err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					t.Errorf("post %d: %d %s", reqID, resp.StatusCode, b)
					return
				}
				mu.Lock()
				for id, ev := range events {
					posted[stream][id] = ev
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	reg := testkit.Registry(t)
	for stream, want := range posted {
		topic := kafkatopic.Name(kafkatopic.DefaultPrefix, stream)
		st := reg.Stream(stream)
		seen := map[string]bool{}
		keyPartition := map[string]int{}
		// Offset of each request's previous event per key, to check order.
		lastOffset := map[string]int64{}
		for p := range testkit.Partitions {
			for _, m := range readPartition(t, brokers[0], topic, p) {
				ev, err := st.Decode(m.Value)
				if err != nil {
					t.Fatalf("%s/%d@%d: Decode(%s): %v", topic, p, m.Offset, m.Value, err)
				}
				w, ok := want[ev.ID]
				if !ok {
					t.Errorf("%s: unexpected event %s", topic, ev.ID)
					continue
				}
				if seen[ev.ID] {
					t.Errorf("%s: event %s twice", topic, ev.ID)
				}
				seen[ev.ID] = true
				if string(m.Key) != w.key || ev.Key != w.key {
					t.Errorf("%s: event %s has key %q (payload %q), want %q", topic, ev.ID, m.Key, ev.Key, w.key)
				}
				if want := testkit.JavaMurmur2Partition(m.Key, testkit.Partitions); p != want {
					t.Errorf("%s: key %q on partition %d, Java clients would use %d", topic, m.Key, p, want)
				}
				if prev, ok := keyPartition[w.key]; ok && prev != p {
					t.Errorf("%s: key %q on partitions %d and %d", topic, w.key, prev, p)
				}
				keyPartition[w.key] = p
				orderKey := fmt.Sprintf("%d/%s", w.request, w.key)
				if prev, ok := lastOffset[orderKey]; ok && m.Offset <= prev {
					t.Errorf("%s: request %d key %q out of order at offset %d", topic, w.request, w.key, m.Offset)
				}
				lastOffset[orderKey] = m.Offset
				if m.Time.IsZero() || !m.Time.Equal(ev.ReceivedAt) {
					t.Errorf("%s: event %s record time %s, received_at %s", topic, ev.ID, m.Time, ev.ReceivedAt)
				}
			}
		}
		if len(seen) != len(want) {
			t.Errorf("%s: %d of %d acknowledged events found", topic, len(seen), len(want))
		}
		if len(keyPartition) < 2 {
			t.Errorf("%s: all keys on one partition: %v", topic, keyPartition)
		}
	}
}

// readPartition reads a partition from the start to its current end.
func readPartition(t *testing.T, broker, topic string, partition int) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := kafka.DialLeader(ctx, "tcp", broker, topic, partition)
	if err != nil {
		t.Fatalf("dial leader %s/%d: %v", topic, partition, err)
	}
	last, err := conn.ReadLastOffset()
	conn.Close()
	if err != nil {
		t.Fatalf("last offset %s/%d: %v", topic, partition, err)
	}
	if last == 0 {
		return nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: topic, Partition: partition, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	var out []kafka.Message
	for int64(len(out)) < last {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read %s/%d after %d messages: %v", topic, partition, len(out), err)
		}
		out = append(out, m)
	}
	return out
}

// With the broker gone, requests fail with 503 and Retry-After, the breaker
// opens after the configured failures, and from then on the answer comes
// at once instead of after kafka-go's retries.
func TestKafkaDown(t *testing.T) {
	cluster := testkit.StartKafka(t).Cluster
	p := testkit.NewKafkaProducer(t, cluster.ListenAddrs())
	br := backpressure.NewBreaker(backpressure.BreakerConfig{Name: "kafka", Failures: 2, OpenTimeout: time.Minute, Logger: testkit.QuietLogger()})
	reg := prometheus.NewRegistry()
	c := newTestCollector(t, p, func(cfg *testConfig) {
		cfg.Breaker = br
		cfg.ProduceTimeout = 5 * time.Second
		cfg.reg = reg
	})
	// As the pipeline mounts it: the collector, and ops with the
	// producer's view of Kafka as readiness.
	mux := http.NewServeMux()
	mux.Handle("/", c)
	ops.New(ops.Config{Gatherer: reg, Checks: []ops.Check{{Name: "kafka", Ready: func(ctx context.Context) error {
		return p.Ping(ctx, "sluice.iot_telemetry")
	}}}}).Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	post := func() (*http.Response, string, time.Duration) {
		start := time.Now()
		resp, err := srv.Client().Post(srv.URL+"/v1/streams/iot_telemetry/events", "application/json", strings.NewReader(goodIoT))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b), time.Since(start)
	}
	get := func(path string) (int, string) {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}

	if code, body := get("/readyz"); code != 200 {
		t.Fatalf("readyz with kafka up: %d %s", code, body)
	}
	if resp, body, _ := post(); resp.StatusCode != 202 {
		t.Fatalf("with kafka up: %d %s", resp.StatusCode, body)
	}

	cluster.Close()
	for i := range 2 {
		resp, body, took := post()
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("request %d with kafka down: %d Retry-After %q %s", i, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
		t.Logf("request %d with kafka down: 503 after %s: %s", i, took, strings.TrimSpace(body))
	}
	if br.State() != backpressure.Open {
		t.Fatalf("breaker %s after 2 failures, want open", br.State())
	}
	resp, body, took := post()
	if resp.StatusCode != 503 || !strings.Contains(body, "circuit open") {
		t.Errorf("with breaker open: %d %s", resp.StatusCode, body)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "60" && ra != "59" {
		t.Errorf("Retry-After with breaker open = %q, want about 60", ra)
	}
	if took > 200*time.Millisecond {
		t.Errorf("open breaker answered after %s, want at once", took)
	}
	time.Sleep(ops.DefaultCacheTTL)
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "no broker reachable") {
		t.Errorf("readyz with kafka down: %d %s", code, body)
	}
	if _, body := get("/metrics"); !strings.Contains(body, "sluice_ingest_kafka_breaker_state 2") {
		t.Error("metrics do not show the breaker open")
	}
}
