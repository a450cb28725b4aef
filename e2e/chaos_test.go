package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// chaosRand returns the randomness of a chaos test, seeded from
// SLUICE_CHAOS_SEED when set so that a failing run can be repeated.
func chaosRand(t *testing.T) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SLUICE_CHAOS_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("chaos seed %d (SLUICE_CHAOS_SEED to repeat)", seed)
	return rand.New(rand.NewPCG(seed, seed))
}

// chaosKills is how many times the kill tests kill; SLUICE_CHAOS_KILLS
// raises it for a soak (make soak).
func chaosKills() int {
	if n, err := strconv.Atoi(os.Getenv("SLUICE_CHAOS_KILLS")); err == nil && n > 0 {
		return n
	}
	return 5
}

func randomPause(r *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.Int64N(int64(hi-lo)))
}

// TestChaosKillWorker SIGKILLs the worker process at random moments under
// continuous load, restarting it each time.
func TestChaosKillWorker(t *testing.T) {
	r := chaosRand(t)
	s := newSplitStack(t, newTestDB(t))
	s.startIngest()
	w := s.startWorker()
	load := startLoad(t, s.ingestURL, 2000)

	kills := chaosKills()
	for i := range kills {
		// The embedded broker never expires a member killed between its
		// JoinGroup and SyncGroup (real Kafka does), so each worker is
		// killed only once it has joined; from then on, at a random moment.
		waitMetric(t, s, "sluice_worker_generations_total", 1)
		time.Sleep(randomPause(r, time.Second, 4*time.Second))
		w.kill()
		t.Logf("kill %d/%d: worker SIGKILLed", i+1, kills)
		w = s.startWorker()
	}
	time.Sleep(2 * time.Second)
	sum := load.stop(t)
	t.Logf("%d events acknowledged under %d worker kills", sum.AckedTotal, kills)
	s.landExactlyOnce(t, load)
}

// TestChaosTwoWorkersOneKilled runs two workers in one group and SIGKILLs
// one mid-run: the other takes its partitions over.
func TestChaosTwoWorkersOneKilled(t *testing.T) {
	r := chaosRand(t)
	s := newSplitStack(t, newTestDB(t))
	s.startIngest()
	victim := s.startWorker()
	waitMetric(t, s, "sluice_worker_generations_total", 1)
	s.startWorker()
	waitMetric(t, s, "sluice_worker_generations_total", 1)
	load := startLoad(t, s.ingestURL, 2000)

	// Long enough for the group to settle with both members holding
	// partitions, so the victim dies with batches of its own in flight.
	time.Sleep(randomPause(r, 6*time.Second, 9*time.Second))
	victim.kill()
	t.Log("one of two workers SIGKILLed")
	time.Sleep(10 * time.Second)
	sum := load.stop(t)
	t.Logf("%d events acknowledged", sum.AckedTotal)
	s.landExactlyOnce(t, load)
}

// TestChaosKillIngest SIGKILLs the collector process under load: whatever it
// acknowledged lands once, and what it did not, the producer retries.
func TestChaosKillIngest(t *testing.T) {
	r := chaosRand(t)
	s := newSplitStack(t, newTestDB(t))
	s.startWorker()
	s.startIngest()
	load := startLoad(t, s.ingestURL, 2000)
	for i := range 3 {
		time.Sleep(randomPause(r, time.Second, 3*time.Second))
		s.ingest.kill()
		t.Logf("kill %d/3: collector SIGKILLed", i+1)
		s.startIngest()
	}
	time.Sleep(2 * time.Second)
	sum := load.stop(t)
	t.Logf("%d events acknowledged, %d retries", sum.AckedTotal, sum.Retries)
	s.landExactlyOnce(t, load)
}

// TestClickHouseOutage stops ClickHouse for 20 seconds mid-run: the workers
// wait and catch up, losing and duplicating nothing; and the store does not
// hold the output back: JetStream keeps receiving throughout the outage
// (never flat for two seconds), at close to its rate before it. In the end every acknowledged
// event is in ClickHouse and in JetStream exactly once.
func TestClickHouseOutage(t *testing.T) {
	addr, stopCH, startCH := privateClickHouse(t)
	s := newSplitStack(t, newTestDBAt(t, addr))
	s.startIngest()
	s.startWorker()
	load := startLoad(t, s.ingestURL, 2000)
	published := func() uint64 { return s.jetStreamMsgs(t) }
	time.Sleep(3 * time.Second)
	before := sampleEvery(time.Second, 5, published)
	stopCH()
	t.Log("ClickHouse stopped")
	during := sampleEvery(time.Second, int(outage/time.Second), published)
	startCH()
	t.Log("ClickHouse started again")
	rateBefore, rateDuring := perSecond(before, time.Second), perSecond(during, time.Second)
	t.Logf("JetStream messages/s: %.0f before the ClickHouse outage, %.0f during it (ratio %.2f)",
		rateBefore, rateDuring, rateDuring/rateBefore)
	if rateDuring < 0.7*rateBefore {
		t.Errorf("JetStream received %.0f messages/s during the ClickHouse outage, under 70%% of the %.0f before: the store held the output back",
			rateDuring, rateBefore)
	}
	checkGrowing(t, "JetStream's message count during the ClickHouse outage", during, 2)
	time.Sleep(3 * time.Second)
	sum := load.stop(t)
	t.Logf("%d events acknowledged", sum.AckedTotal)
	s.landExactlyOnce(t, load)
	checkJetStreamEach(t, s, load.ackLog.ackedIDs(t))
}

// postEvents sends events as one JSON array and returns the status and body.
func postEvents(t *testing.T, url, stream string, events []map[string]any) (int, map[string]any) {
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
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func telemetry(device string, ids ...string) []map[string]any {
	out := make([]map[string]any, len(ids))
	for i, id := range ids {
		out[i] = map[string]any{"event_id": id, "device_id": device, "ts": time.Now().UnixMilli(),
			"metrics": map[string]any{"temperature": 20 + float64(i%10)}}
	}
	return out
}

func seqIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%05d", prefix, i)
	}
	return ids
}

// metric reads one counter summed over its labels from a /metrics page.
func metric(t *testing.T, url, name string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != '{' && line[len(name)] != ' ') {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		sum += v
	}
	return sum
}

// TestResendAcknowledgedAddsNothing re-sends batches that were already
// acknowledged, with the same event_ids, once to the running worker and
// once after a worker was killed and restarted (its dedupe window then comes
// from ClickHouse): nothing is added.
func TestResendAcknowledgedAddsNothing(t *testing.T) {
	s := newSplitStack(t, newTestDB(t))
	s.startIngest()
	w := s.startWorker()

	devices := []string{"dev-a", "dev-b", "dev-c", "dev-d"}
	var batches [][]map[string]any
	for _, d := range devices {
		batches = append(batches, telemetry(d, seqIDs("resend-"+d, 250)...))
	}
	post := func() {
		for _, b := range batches {
			if code, body := postEvents(t, s.ingestURL, "iot_telemetry", b); code != http.StatusAccepted {
				t.Fatalf("post: %d %v", code, body)
			}
		}
	}
	post()
	s.db.waitRows(t, map[string]uint64{"iot_telemetry": 1000}, 60*time.Second)

	// A resend the running worker must recognise.
	post()
	waitMetric(t, s, "sluice_duplicates_skipped_total", 1000)

	// A resend after a restart: the new worker rebuilds the window from
	// ClickHouse.
	waitMetric(t, s, "sluice_worker_generations_total", 1)
	w.kill()
	s.startWorker()
	post()
	waitMetric(t, s, "sluice_duplicates_skipped_total", 1000)

	if rows, distinct := s.db.counts(t, "iot_telemetry"); rows != 1000 || distinct != 1000 {
		t.Fatalf("after resends: count() = %d, distinct = %d, want 1000", rows, distinct)
	}
}

// waitMetric waits until the newest worker reports at least want.
func waitMetric(t *testing.T, s *splitStack, name string, want float64) {
	t.Helper()
	w := s.workers[len(s.workers)-1]
	url := "http://" + w.httpAddr
	deadline := time.Now().Add(60 * time.Second)
	for metric(t, url, name) < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s on the worker stayed at %v, want %v", name, metric(t, url, name), want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestPoisonEventsGoToDLQ makes ClickHouse reject one row (a check the
// operator added to the table) and puts one undecodable message on the
// topic: both land in sluice.dlq with their reason and origin, and the rest
// of their partition lands.
func TestPoisonEventsGoToDLQ(t *testing.T) {
	db := newTestDB(t)
	s := newSplitStackPartitions(t, db, 1)
	s.startIngest()
	s.startWorker()
	ctx := context.Background()
	db.alter(t, "ALTER TABLE "+db.Name+".iot_telemetry ADD COLUMN guard UInt8 MATERIALIZED throwIf(device_id = 'poison-device')")

	if code, body := postEvents(t, s.ingestURL, "iot_telemetry", telemetry("dev-1", seqIDs("before", 100)...)); code != http.StatusAccepted {
		t.Fatalf("post: %d %v", code, body)
	}
	if code, body := postEvents(t, s.ingestURL, "iot_telemetry", telemetry("poison-device", "the-poison")); code != http.StatusAccepted {
		t.Fatalf("post poison: %d %v", code, body)
	}
	// A message that did not come through a collector.
	wr := &kafka.Writer{Addr: kafka.TCP(s.kafkaAddr), Topic: "sluice.iot_telemetry", RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	if err := wr.WriteMessages(ctx, kafka.Message{Key: []byte("dev-1"), Value: []byte(`{"not":"an event"`)}); err != nil {
		t.Fatal(err)
	}
	wr.Close()
	if code, body := postEvents(t, s.ingestURL, "iot_telemetry", telemetry("dev-1", seqIDs("after", 100)...)); code != http.StatusAccepted {
		t.Fatalf("post: %d %v", code, body)
	}

	s.db.waitRows(t, map[string]uint64{"iot_telemetry": 200}, 60*time.Second)
	if rows, distinct := db.counts(t, "iot_telemetry"); rows != 200 || distinct != 200 {
		t.Fatalf("count() = %d, distinct = %d, want the 200 good events", rows, distinct)
	}

	rd := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{s.kafkaAddr}, Topic: "sluice.dlq", Partition: 0, MaxWait: 100 * time.Millisecond})
	defer rd.Close()
	var letters []map[string]any
	for len(letters) < 2 {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		m, err := rd.ReadMessage(rctx)
		cancel()
		if err != nil {
			t.Fatalf("reading sluice.dlq after %d letters: %v", len(letters), err)
		}
		var l map[string]any
		if err := json.Unmarshal(m.Value, &l); err != nil {
			t.Fatalf("dead letter is not JSON: %s", m.Value)
		}
		letters = append(letters, l)
	}
	var rejected, invalid bool
	for _, l := range letters {
		reason, _ := l["reason"].(string)
		if l["stream"] != "iot_telemetry" || l["partition"] != float64(0) || l["offset"] == nil {
			t.Errorf("dead letter without its origin: %v", l)
		}
		switch {
		case strings.HasPrefix(strings.ToLower(reason), "rejected by clickhouse") && strings.Contains(fmt.Sprint(l["event"]), "the-poison"):
			rejected = true
		case strings.HasPrefix(reason, "invalid event"):
			invalid = true
		default:
			t.Errorf("unexpected dead letter: %v", l)
		}
	}
	if !rejected || !invalid {
		t.Fatalf("dead letters %v: want one rejected by ClickHouse and one invalid", letters)
	}
}
