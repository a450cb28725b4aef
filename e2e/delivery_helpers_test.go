package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/deadletter"
)

// startWorkerWith starts one more worker with extra flags. With ready it
// waits until /readyz answers 200; without, only until the process serves
// /healthz (a worker stopped at a gap is never ready).
func (s *splitStack) startWorkerWith(ready bool, extra ...string) *proc {
	s.t.Helper()
	s.nworkers++
	addr := freeAddr(s.t)
	args := append(append(s.common(), "--role", "work", "--http-addr", addr), extra...)
	w := startProc(s.t, fmt.Sprintf("worker-%d", s.nworkers), args...)
	w.httpAddr = addr
	if ready {
		waitReady(s.t, "http://"+addr, w.exited())
	} else {
		waitHealthy(s.t, "http://"+addr, w.exited())
	}
	s.workers = append(s.workers, w)
	return w
}

// waitHealthy polls /healthz until it answers 200.
func waitHealthy(t *testing.T, url string, exited <-chan error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("sluice exited before it served /healthz: %v", err)
		default:
		}
		if resp, err := http.Get(url + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s/healthz not answering within 60s", url)
}

// readyz returns the status and the JSON body of url's /readyz.
func readyz(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// kafkaAdmin is a kafka-go client of the stack's broker.
func (s *splitStack) kafkaAdmin() *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(s.kafkaAddr), Timeout: 10 * time.Second}
}

// offsetBounds returns the log start offset and the high watermark of a
// partition.
func (s *splitStack) offsetBounds(t *testing.T, topic string, partition int) (start, end int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := s.kafkaAdmin().ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		topic: {kafka.FirstOffsetOf(partition), kafka.LastOffsetOf(partition)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res.Topics[topic] {
		if p.Partition == partition {
			if p.Error != nil {
				t.Fatalf("offsets of %s[%d]: %v", topic, partition, p.Error)
			}
			return p.FirstOffset, p.LastOffset
		}
	}
	t.Fatalf("no offsets for %s[%d]", topic, partition)
	return 0, 0
}

// readDLQ returns every record in sluice.dlq, across its partitions.
func (s *splitStack) readDLQ(t *testing.T) []deadletter.Record {
	t.Helper()
	const topic = "sluice.dlq"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []deadletter.Record
	for p := range s.partitions {
		first, end := s.offsetBounds(t, topic, p)
		if end <= first {
			continue
		}
		rd := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{s.kafkaAddr}, Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond})
		if err := rd.SetOffset(first); err != nil {
			t.Fatal(err)
		}
		for {
			m, err := rd.ReadMessage(ctx)
			if err != nil {
				rd.Close()
				t.Fatalf("read %s[%d]: %v", topic, p, err)
			}
			rec, err := deadletter.Decode(m.Value)
			if err != nil {
				t.Errorf("%s[%d]@%d: %v: %s", topic, p, m.Offset, err, m.Value)
			}
			out = append(out, rec)
			if m.Offset >= end-1 {
				break
			}
		}
		rd.Close()
	}
	return out
}

// eventID returns the event_id of a dead letter's event, "" when it has
// none.
func eventID(rec deadletter.Record) string {
	var ev struct {
		EventID string `json:"event_id"`
	}
	_ = json.Unmarshal(rec.Event, &ev)
	return ev.EventID
}

// partitionRows counts the rows of a table that came from one partition.
func (db *testDB) partitionRows(t *testing.T, table string, partition int) uint64 {
	t.Helper()
	var n uint64
	q := fmt.Sprintf("SELECT count() FROM %s.%s WHERE kafka_partition = %d", db.Name, table, partition)
	var err error
	for range 5 {
		if err = db.conn.QueryRow(context.Background(), q).Scan(&n); err == nil {
			return n
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("count rows of %s partition %d: %v", table, partition, err)
	return 0
}

// natsCounter counts what a plain (core NATS) subscriber receives.
type natsCounter struct {
	mu  sync.Mutex
	ids []string
}

func countNATS(t *testing.T, url, subject string) *natsCounter {
	t.Helper()
	nc, err := natsgo.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	c := &natsCounter{}
	sub, err := nc.Subscribe(subject, func(m *natsgo.Msg) {
		var ev struct {
			EventID string `json:"event_id"`
		}
		_ = json.Unmarshal(m.Data, &ev)
		c.mu.Lock()
		c.ids = append(c.ids, ev.EventID)
		c.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *natsCounter) received() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.ids...)
}

// setRetention sets retention.ms of topics with AlterConfigs.
func (s *splitStack) setRetention(t *testing.T, retention time.Duration, topics ...string) {
	t.Helper()
	req := &kafka.AlterConfigsRequest{}
	for _, topic := range topics {
		req.Resources = append(req.Resources, kafka.AlterConfigRequestResource{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: topic,
			Configs: []kafka.AlterConfigRequestConfig{{Name: "retention.ms", Value: strconv.FormatInt(retention.Milliseconds(), 10)}},
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := s.kafkaAdmin().AlterConfigs(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	for r, err := range res.Errors {
		if err != nil {
			t.Fatalf("alter configs of %v: %v", r, err)
		}
	}
}

// deleteGroup deletes a consumer group and its committed offsets.
func (s *splitStack) deleteGroup(t *testing.T, group string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := s.kafkaAdmin().DeleteGroups(ctx, &kafka.DeleteGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Errors[group]; err != nil {
		t.Fatalf("delete group %s: %v", group, err)
	}
}

// committedOffsets returns a group's committed offsets of a topic by
// partition; none when the group does not exist.
func (s *splitStack) committedOffsets(t *testing.T, group, topic string) map[int]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	parts := make([]int, s.partitions)
	for i := range parts {
		parts[i] = i
	}
	res, err := s.kafkaAdmin().OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err == nil {
		err = res.Error
	}
	out := map[int]int64{}
	if errors.Is(err, kafka.GroupIdNotFound) {
		return out
	}
	if err != nil {
		t.Fatalf("offsets of group %s: %v", group, err)
	}
	for _, p := range res.Topics[topic] {
		if p.Error == nil && p.CommittedOffset >= 0 {
			out[p.Partition] = p.CommittedOffset
		}
	}
	return out
}

// metricWith sums the series of name on url's /metrics whose label text
// contains every fragment (`kind="permanent"`, say).
func metricWith(t *testing.T, url, name string, fragments ...string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0
	}
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		match := true
		for _, f := range fragments {
			match = match && strings.Contains(line, f)
		}
		if !match {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		sum += v
	}
	return sum
}

// postRaw sends events as one JSON array and returns the status, the
// Retry-After header and the body.
func postRaw(t *testing.T, url, stream string, events []map[string]any) (int, string, string) {
	t.Helper()
	body, err := json.Marshal(events)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url+"/v1/streams/"+stream+"/events", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(b)
}

// mustPost sends events and fails the test unless they are acknowledged.
func mustPost(t *testing.T, url, stream string, events []map[string]any) {
	t.Helper()
	if code, _, body := postRaw(t, url, stream, events); code != http.StatusAccepted {
		t.Fatalf("post %d events to %s: %d %s", len(events), stream, code, body)
	}
}

// storedIDs returns the event_ids a table holds, with how often each.
func (db *testDB) storedIDs(t *testing.T, table string) map[string]int {
	t.Helper()
	rows, err := db.conn.Query(context.Background(), fmt.Sprintf("SELECT event_id FROM %s.%s", db.Name, table))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out[id]++
	}
	return out
}
