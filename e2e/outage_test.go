package e2e

import (
	"testing"
	"time"
)

// outage is how long the outage tests keep a dependency down.
const outage = 20 * time.Second

// TestNATSOutage stops the NATS server for 20 s under load and starts it
// again on the same address and JetStream store. It proves that an output
// does not hold the store back: ClickHouse keeps filling throughout the
// outage (never flat for two seconds), at close to its rate before it; that
// the worker's NATS client reconnects by itself and its lane catches up; and
// that in the end every acknowledged event is in ClickHouse and in JetStream
// exactly once.
func TestNATSOutage(t *testing.T) {
	s := newRestartableStack(t, newTestDB(t))
	s.startIngest()
	w := s.startWorker()
	workerURL := "http://" + w.httpAddr
	load := startLoad(t, s.ingestURL, 2000)
	rows := func() uint64 { return storedRows(t, s.db) }

	time.Sleep(3 * time.Second) // past the start-up
	before := sampleEvery(time.Second, int(outage/time.Second), rows)
	s.stopNATS()
	t.Log("NATS stopped")
	during := sampleEvery(time.Second, int(outage/time.Second), rows)
	connected := metric(t, workerURL, "sluice_nats_connected")
	checkRunning(t, s.ingest, w)
	s.startNATS(t)
	t.Log("NATS started again")

	rateBefore, rateDuring := perSecond(before, time.Second), perSecond(during, time.Second)
	t.Logf("ClickHouse rows/s: %.0f in the %s before the NATS outage, %.0f during it (ratio %.2f)",
		rateBefore, outage, rateDuring, rateDuring/rateBefore)
	if connected != 0 {
		t.Errorf("the worker reported sluice_nats_connected %v while NATS was down", connected)
	}
	if rateDuring < 0.7*rateBefore {
		t.Errorf("ClickHouse filled at %.0f rows/s during the NATS outage, under 70%% of the %.0f before: the output held the store back",
			rateDuring, rateBefore)
	}
	checkGrowing(t, "ClickHouse's row count during the NATS outage", during, 2)

	waitMetric(t, s.splitStack, "sluice_nats_reconnects_total", 1)
	time.Sleep(3 * time.Second)
	sum := load.stop(t)
	t.Logf("%d events acknowledged", sum.AckedTotal)
	checkRunning(t, s.ingest, w)
	s.landExactlyOnce(t, load)
	checkJetStreamEach(t, s.splitStack, load.ackLog.ackedIDs(t))
}

// TestKafkaRestart closes the Kafka broker under load and starts it again
// about 2 s later on the same address and data directory, leaving the
// collector and worker processes running. It proves that the pipeline
// resumes by itself: rows keep arriving in ClickHouse after the restart
// without any process restarted, the producers' retries cover what the
// collector refused meanwhile, the consumer group's committed offsets and
// the NATS progress survive the restart, and every acknowledged event ends
// up in ClickHouse and in JetStream exactly once.
func TestKafkaRestart(t *testing.T) {
	s := newRestartableStack(t, newTestDB(t))
	s.startIngest()
	w := s.startWorker()
	load := startLoad(t, s.ingestURL, 2000)
	time.Sleep(5 * time.Second)

	// Both groups hold offsets of every partition before the broker goes.
	groups := []string{"sluice-workers", "sluice-workers.nats"}
	committed := map[string]map[string]map[int]int64{}
	for _, g := range groups {
		committed[g] = waitCommitted(t, s.splitStack, g, 30*time.Second)
	}
	s.stopKafka()
	t.Log("Kafka broker closed")
	time.Sleep(2 * time.Second)
	s.startKafka(t)
	restarted := storedRows(t, s.db)
	t.Logf("Kafka broker started again; ClickHouse holds %d rows", restarted)
	for _, g := range groups {
		checkOffsetsKept(t, g, committed[g], fetchGroupOffsets(t, s.splitStack, g))
	}

	// Consumption resumes by itself: 10 s of load more than at the restart.
	deadline := time.Now().Add(60 * time.Second)
	for storedRows(t, s.db) < restarted+20_000 {
		if time.Now().After(deadline) {
			t.Fatalf("ClickHouse grew from %d to only %d rows in 60 s after the broker restarted", restarted, storedRows(t, s.db))
		}
		time.Sleep(500 * time.Millisecond)
	}
	checkRunning(t, s.ingest, w)
	workerURL := "http://" + w.httpAddr
	t.Logf("the worker went through %v generations and %v failed reads",
		metric(t, workerURL, "sluice_worker_generations_total"), metric(t, workerURL, "sluice_worker_fetch_errors_total"))
	sum := load.stop(t)
	t.Logf("%d events acknowledged, %d retries", sum.AckedTotal, sum.Retries)
	checkRunning(t, s.ingest, w)
	s.landExactlyOnce(t, load)
	checkJetStreamEach(t, s.splitStack, load.ackLog.ackedIDs(t))
}

// checkOffsetsKept fails the test unless a group's committed offsets after
// the broker's restart are at least those read before it.
func checkOffsetsKept(t *testing.T, group string, before, after map[string]map[int]int64) {
	t.Helper()
	for topic, parts := range before {
		for p, off := range parts {
			if got := after[topic][p]; got < off {
				t.Errorf("group %s: %s/%d committed at %d before the broker restarted, %d after", group, topic, p, off, got)
			}
		}
	}
	t.Logf("group %s committed %v before the restart, %v after", group, before, after)
}

// TestWorkerStartsDuringNATSOutage kills the worker while NATS is down and
// starts another. It proves that the store does not wait for an output at
// start-up either: the new worker fills ClickHouse while NATS is still
// down, and everything lands once in both when NATS returns.
func TestWorkerStartsDuringNATSOutage(t *testing.T) {
	// Waits more than it works: run beside the others of its kind.
	t.Parallel()
	s := newRestartableStack(t, newTestDB(t))
	s.startIngest()
	w := s.startWorker()
	load := startLoad(t, s.ingestURL, 2000)
	time.Sleep(3 * time.Second)
	s.stopNATS()
	w.kill()
	t.Log("NATS stopped and the worker killed")
	w = s.startWorkerUnready()
	rows := sampleEvery(time.Second, int(outage/time.Second), func() uint64 { return storedRows(t, s.db) })
	checkRunning(t, s.ingest, w)
	s.startNATS(t)
	t.Logf("NATS started again; ClickHouse rows meanwhile: %v", rows)
	// The new member joins once the killed one's session expires (4 s).
	checkGrowing(t, "ClickHouse's row count in the second half of the NATS outage", rows[len(rows)/2:], 2)
	sum := load.stop(t)
	t.Logf("%d events acknowledged", sum.AckedTotal)
	s.landExactlyOnce(t, load)
	checkJetStreamEach(t, s.splitStack, load.ackLog.ackedIDs(t))
}

// TestWorkerStartsDuringClickHouseOutage kills the worker while ClickHouse
// is down and starts another. It proves that an output does not wait for
// the store at start-up: the new worker fills JetStream while ClickHouse is
// still down, and everything lands once in both when ClickHouse returns.
func TestWorkerStartsDuringClickHouseOutage(t *testing.T) {
	// Waits more than it works: run beside the others of its kind.
	t.Parallel()
	addr, stopCH, startCH := privateClickHouse(t)
	s := newSplitStack(t, newTestDBAt(t, addr))
	s.startIngest()
	w := s.startWorker()
	load := startLoad(t, s.ingestURL, 2000)
	time.Sleep(3 * time.Second)
	stopCH()
	w.kill()
	t.Log("ClickHouse stopped and the worker killed")
	w = s.startWorkerUnready()
	published := sampleEvery(time.Second, int(outage/time.Second), func() uint64 { return s.jetStreamMsgs(t) })
	checkRunning(t, s.ingest, w)
	startCH()
	t.Logf("ClickHouse started again; JetStream messages meanwhile: %v", published)
	checkGrowing(t, "JetStream's message count in the second half of the ClickHouse outage", published[len(published)/2:], 2)
	sum := load.stop(t)
	t.Logf("%d events acknowledged", sum.AckedTotal)
	s.landExactlyOnce(t, load)
	checkJetStreamEach(t, s, load.ackLog.ackedIDs(t))
}

// TestRebalanceDuringClickHouseOutage runs two workers and kills one while
// ClickHouse is down. It proves that a rebalance does not let the store hold
// the output back: once the survivor owns every partition, it publishes
// them all to NATS although none can be opened in ClickHouse yet.
func TestRebalanceDuringClickHouseOutage(t *testing.T) {
	addr, stopCH, startCH := privateClickHouse(t)
	s := newSplitStack(t, newTestDBAt(t, addr))
	s.startIngest()
	victim := s.startWorker()
	waitMetric(t, s, "sluice_worker_generations_total", 1)
	survivor := s.startWorker()
	waitMetric(t, s, "sluice_worker_generations_total", 1)
	load := startLoad(t, s.ingestURL, 2000)
	time.Sleep(5 * time.Second)
	stopCH()
	victim.kill()
	t.Log("ClickHouse stopped and one of two workers killed")
	published := sampleEvery(time.Second, int(outage/time.Second), func() uint64 { return s.jetStreamMsgs(t) })
	checkRunning(t, s.ingest, survivor)
	startCH()
	t.Logf("ClickHouse started again; JetStream messages meanwhile: %v", published)
	// The survivor's new generation starts after the victim's session
	// expires (4 s) and its own drain of the stuck INSERTs (5.3 s).
	checkGrowing(t, "JetStream's message count in the last 7 s of the ClickHouse outage", published[len(published)-8:], 2)
	sum := load.stop(t)
	t.Logf("%d events acknowledged", sum.AckedTotal)
	s.landExactlyOnce(t, load)
	checkJetStreamEach(t, s, load.ackLog.ackedIDs(t))
}
