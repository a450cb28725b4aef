package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/devstack"
)

// TestDedupeOutlivesSinkOutage proves that the dedupe window is measured on
// the events' receive time, not on the worker's clock. A producer re-sends
// acknowledged events (same event_ids) a few seconds after the originals,
// while ClickHouse is down; the store's lane is stuck behind a batch it
// cannot write, so it judges the retries only once ClickHouse is back,
// longer after the originals than --dedupe-window. They are still known
// as duplicates: nothing is stored twice, and verify is clean. A window
// kept on the wall clock would have forgotten the originals by then.
func TestDedupeOutlivesSinkOutage(t *testing.T) {
	// Waits more than it works: run beside the others of its kind.
	t.Parallel()
	const window = 30 * time.Second
	addr, stopCH, startCH := privateClickHouse(t)
	db := newTestDBAt(t, addr)
	s := newSplitStackPartitions(t, db, 1)
	s.startIngest()
	w := s.startWorkerWith(true, "--dedupe-window", window.String())
	wurl := "http://" + w.httpAddr

	originals := telemetry("dedupe-dev", seqIDs("original", 400)...)
	mustPost(t, s.ingestURL, "iot_telemetry", originals)
	db.waitRows(t, map[string]uint64{"iot_telemetry": 400}, 60*time.Second)

	stopCH()
	stopped := time.Now()
	t.Log("ClickHouse stopped")
	// New events the store's lane must write before it reaches the
	// retries: it waits on them until ClickHouse is back.
	fresh := seqIDs("fresh", 100)
	mustPost(t, s.ingestURL, "iot_telemetry", telemetry("dedupe-dev", fresh...))
	time.Sleep(time.Second) // the retries make batches of their own
	mustPost(t, s.ingestURL, "iot_telemetry", originals)
	time.Sleep(10 * time.Second)
	mustPost(t, s.ingestURL, "iot_telemetry", originals)
	time.Sleep(time.Until(stopped.Add(window + 10*time.Second)))
	if n := metric(t, wurl, "sluice_duplicates_skipped_total"); n != 0 {
		t.Fatalf("the store judged %v retries while ClickHouse was down; the test needs them judged after the window", n)
	}
	startCH()
	t.Logf("ClickHouse started again after %s", time.Since(stopped).Round(time.Second))

	// Both retries judged (as duplicates, or stored again).
	deadline := time.Now().Add(60 * time.Second)
	for {
		rows, _ := db.counts(t, "iot_telemetry")
		if metric(t, wurl, "sluice_duplicates_skipped_total")+float64(rows) >= 1300 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ClickHouse holds %d rows and %v retries were skipped; the retries were not all judged within 60s", rows, metric(t, wurl, "sluice_duplicates_skipped_total"))
		}
		time.Sleep(250 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // a straggling duplicate
	if rows, distinct := db.counts(t, "iot_telemetry"); rows != 500 || distinct != 500 {
		t.Errorf("count() = %d, uniqExact(event_id) = %d, want 500 (400 originals, 100 fresh): retries were stored again", rows, distinct)
	}
	want := map[string]bool{}
	for _, id := range append(seqIDs("original", 400), fresh...) {
		want[id] = true
	}
	s.checkJetStream(t, map[string]map[string]bool{"iot_telemetry": want})
	s.verify(t)
}

// TestKillDuringPoisonBisect proves that isolating the rows ClickHouse
// refuses survives SIGKILL. One iot_telemetry event in a hundred is
// refused (a throwIf column), so every large batch is halved again and
// again; the worker is killed at random moments while it is doing so (each
// kill after the worker saw a refused write), under load. In the end every
// refused event is in sluice.dlq, and every other acknowledged event is in
// ClickHouse exactly once.
func TestKillDuringPoisonBisect(t *testing.T) {
	r := chaosRand(t)
	db := newTestDB(t)
	s := newSplitStack(t, db)
	s.startIngest()
	poison := func(id string) bool { return strings.HasSuffix(id, "37") }
	first := s.startWorker() // creates the tables
	db.alter(t, "ALTER TABLE "+db.Name+".iot_telemetry ADD COLUMN guard UInt8 MATERIALIZED throwIf(event_id LIKE '%37')")
	// A backlog first, so that the worker's first batches are large.
	first.signal(syscall.SIGTERM)
	if err := first.wait(t, 60*time.Second); err != nil {
		t.Fatalf("worker did not stop cleanly: %v", err)
	}
	load := startLoad(t, s.ingestURL, 600)
	time.Sleep(5 * time.Second)
	w := s.startWorker()

	kills := chaosKills()
	for i := range kills {
		waitMetric(t, s, "sluice_worker_generations_total", 1)
		waitBisecting(t, w)
		time.Sleep(randomPause(r, 10*time.Millisecond, 1500*time.Millisecond))
		refused := metricWith(t, "http://"+w.httpAddr, "sluice_sink_errors_total", `sink="clickhouse"`, `kind="permanent"`)
		w.kill()
		t.Logf("kill %d/%d: worker SIGKILLed while isolating refused rows (%v writes refused so far)", i+1, kills, refused)
		w = s.startWorker()
	}
	time.Sleep(2 * time.Second)
	sum := load.stop(t)
	t.Logf("%d events acknowledged under %d worker kills", sum.AckedTotal, kills)
	start := time.Now()
	defer func() { t.Logf("caught up in %s", time.Since(start).Round(time.Second)) }()
	checkPoisonAccounted(t, s, load.ackLog.ackedIDs(t), poison)
}

// waitBisecting waits until the worker's store saw a write refused for its
// content: it is isolating refused rows.
func waitBisecting(t *testing.T, w *proc) {
	t.Helper()
	url := "http://" + w.httpAddr
	deadline := time.Now().Add(60 * time.Second)
	for metricWith(t, url, "sluice_sink_errors_total", `sink="clickhouse"`, `kind="permanent"`) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the worker saw no write refused for its content within 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkPoisonAccounted waits for the good acknowledged events and checks
// that ClickHouse holds each once, that every refused one is in sluice.dlq
// (never in neither place), and that verify is clean.
func checkPoisonAccounted(t *testing.T, s *splitStack, acked map[string]map[string]bool, poison func(string) bool) {
	t.Helper()
	good := map[string]map[string]bool{}
	bad := map[string]bool{}
	want := map[string]uint64{}
	for stream, ids := range acked {
		good[stream] = map[string]bool{}
		for id := range ids {
			if stream == "iot_telemetry" && poison(id) {
				bad[id] = true
			} else {
				good[stream][id] = true
			}
		}
		want[stream] = uint64(len(good[stream]))
	}
	if len(bad) == 0 {
		t.Fatal("no acknowledged event was refused: the test proves nothing")
	}
	s.db.waitRows(t, want, 180*time.Second)
	checkExactlyOnce(t, s.db, good)
	stored := s.db.storedIDs(t, "iot_telemetry")

	var missing []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		lettered := map[string]bool{}
		for _, rec := range s.readDLQ(t) {
			if strings.HasPrefix(rec.Reason, "rejected by clickhouse") {
				lettered[eventID(rec)] = true
			}
		}
		missing = missing[:0]
		for id := range bad {
			if !lettered[id] && stored[id] == 0 {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d refused events are neither in sluice.dlq nor in ClickHouse, e.g. %v", len(missing), len(bad), missing[:min(5, len(missing))])
	}
	t.Logf("%d refused events dead-lettered, %d good ones stored", len(bad), want["iot_telemetry"]+want["app_logs"])
	s.verify(t)
}

// TestReplayFromZero proves that each sink resumes from its own progress,
// not from the workers' consumer group. With the group's committed offsets
// deleted (as by an operator's reset, or a new group id) while
// sluice-workers.nats keeps the NATS progress, a new worker finds every
// partition without a commit; yet ClickHouse gets no row again and a NATS
// subscriber receives nothing it already had. A new event afterwards still
// reaches both, so the silence is not a dead worker.
func TestReplayFromZero(t *testing.T) {
	// Waits more than it works: run beside the others of its kind.
	t.Parallel()
	s := newSplitStack(t, newTestDB(t))
	s.startIngest()
	w := s.startWorker()
	load := startLoad(t, s.ingestURL, 1000)
	time.Sleep(5 * time.Second)
	sum := load.stop(t)
	t.Logf("%d events acknowledged", sum.AckedTotal)
	s.landExactlyOnce(t, load)

	// Stopped cleanly, the worker commits where the sinks are.
	w.signal(syscall.SIGTERM)
	if err := w.wait(t, 60*time.Second); err != nil {
		t.Fatalf("worker did not stop cleanly: %v", err)
	}
	topics := []string{"sluice.iot_telemetry", "sluice.app_logs"}
	for _, topic := range topics {
		if got := s.committedOffsets(t, "sluice-workers.nats", topic); len(got) != s.partitions {
			t.Fatalf("NATS progress of %s: %v, want every partition", topic, got)
		}
	}
	s.deleteGroup(t, "sluice-workers")
	for _, topic := range topics {
		if got := s.committedOffsets(t, "sluice-workers", topic); len(got) != 0 {
			t.Fatalf("group deleted, yet it holds offsets of %s: %v", topic, got)
		}
	}
	before := map[string][2]uint64{}
	for _, st := range []string{"iot_telemetry", "app_logs"} {
		rows, distinct := s.db.counts(t, st)
		before[st] = [2]uint64{rows, distinct}
	}
	js := s.jetStreamHeld(t)
	sub := countNATS(t, s.natsURL, "sluice.>")

	s.startWorker()
	waitMetric(t, s, "sluice_worker_generations_total", 1)
	time.Sleep(10 * time.Second)
	checkNothingReplayed(t, s, sub, before, js)
	s.checkGroupCommitted(t, topics)

	mustPost(t, s.ingestURL, "iot_telemetry", telemetry("replay-dev", "replay-after"))
	s.db.waitRows(t, map[string]uint64{"iot_telemetry": before["iot_telemetry"][0] + 1}, 60*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for len(sub.received()) == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if got := sub.received(); len(got) != 1 || got[0] != "replay-after" {
		t.Errorf("NATS subscriber received %v after a new event, want just replay-after", got)
	}
}

// checkNothingReplayed checks that ClickHouse, JetStream and a core NATS
// subscriber got nothing from a worker that started without the group's
// offsets.
func checkNothingReplayed(t *testing.T, s *splitStack, sub *natsCounter, before map[string][2]uint64, js uint64) {
	t.Helper()
	if got := sub.received(); len(got) > 0 {
		t.Errorf("NATS subscriber received %d events published before, e.g. %v", len(got), got[:min(5, len(got))])
	}
	for st, want := range before {
		if rows, distinct := s.db.counts(t, st); rows != want[0] || distinct != want[1] {
			t.Errorf("%s: count() %d, uniqExact %d after the replay, was %d, %d", st, rows, distinct, want[0], want[1])
		}
	}
	if got := s.jetStreamHeld(t); got != js {
		t.Errorf("JetStream holds %d messages after the replay, was %d", got, js)
	}
	s.verify(t)
}

// checkGroupCommitted checks that the group, deleted, has been committed
// again up to each partition's end: the lowest of the sinks' progress.
func (s *splitStack) checkGroupCommitted(t *testing.T, topics []string) {
	t.Helper()
	for _, topic := range topics {
		got := s.committedOffsets(t, "sluice-workers", topic)
		for p := range s.partitions {
			if _, end := s.offsetBounds(t, topic, p); got[p] != end {
				t.Errorf("group sluice-workers committed %s[%d] at %d, want its end %d (where both sinks are)", topic, p, got[p], end)
			}
		}
	}
}

// jetStreamHeld returns how many messages the SLUICE stream holds.
func (s *splitStack) jetStreamHeld(t *testing.T) uint64 {
	t.Helper()
	info, err := s.js.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// TestRetentionPressure proves both defences against Kafka deleting events
// that the store has not read. With ClickHouse down and the stream topics'
// retention.ms short, the backlog alarm fires while every unread event is
// still in Kafka: sluice_retention_alarm on the worker, a warning in the
// collector's /readyz, and the collector sheds (503, Retry-After, a reason
// naming the backlog). Once retention deleted unread events anyway, a
// restarted worker does not skip them silently: its /readyz fails naming
// the exact gap, sluice_worker_gap_messages counts it, and nothing past it
// is written until POST /gaps/accept; then later events land and sluice.dlq
// holds a record of the lost range.
func TestRetentionPressure(t *testing.T) {
	// Waits more than it works: run beside the others of its kind.
	t.Parallel()
	const retention = 40 * time.Second
	const topic = "sluice.iot_telemetry"
	s, stopCH, startCH := retentionStack(t, retention)
	db, w := s.db, s.workers[len(s.workers)-1]

	const stored = retentionStored
	mustPost(t, s.ingestURL, "iot_telemetry", telemetry("ret-dev", seqIDs("stored", stored)...))
	db.waitRows(t, map[string]uint64{"iot_telemetry": stored}, 60*time.Second)
	s.waitCommitted(t, topic, stored)
	stopCH()
	t.Log("ClickHouse stopped")
	mustPost(t, s.ingestURL, "iot_telemetry", telemetry("ret-dev", seqIDs("lost", 200)...))
	_, lostEnd := s.offsetBounds(t, topic, 0)
	probes := s.postUntilShed(t, w, stored, retention)

	s.waitLogStart(t, topic, lostEnd, retention+30*time.Second)
	w.kill()
	startCH()
	t.Log("worker killed, ClickHouse started again; starting a new worker")
	w = s.startWorkerWith(false)
	first, last := s.checkGapHolds(t, w, topic, stored, lostEnd)

	acceptGap(t, w)
	s.checkAfterAccept(t, w, probes, first, last)
}

// acceptGap is the operator's POST /gaps/accept for iot_telemetry/0.
func acceptGap(t *testing.T, w *proc) {
	t.Helper()
	resp, err := http.Post(fmt.Sprintf("http://%s/gaps/accept?stream=iot_telemetry&partition=0", w.httpAddr), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /gaps/accept: %d", resp.StatusCode)
	}
}

// retentionStored is how many events the retention tests store before
// ClickHouse stops.
const retentionStored = 50

// waitCommitted waits until the workers' group committed partition 0 of
// topic at offset.
func (s *splitStack) waitCommitted(t *testing.T, topic string, offset int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for s.committedOffsets(t, "sluice-workers", topic)[0] != offset {
		if time.Now().After(deadline) {
			t.Fatalf("group did not commit %s[0] at %d: %v", topic, offset, s.committedOffsets(t, "sluice-workers", topic))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// postUntilShed sends one event every half second until the collector
// sheds for the backlog, which must happen within half the retention and
// a few readings. Then it checks the alarm on the worker and in the
// collector's /readyz, and that no unread event has expired yet (the first
// unread one is at firstUnread). It returns the ids acknowledged.
func (s *splitStack) postUntilShed(t *testing.T, w *proc, firstUnread int64, retention time.Duration) []string {
	t.Helper()
	var acked []string
	deadline := time.Now().Add(retention/2 + 15*time.Second)
	for i := 0; ; i++ {
		id := fmt.Sprintf("probe-%03d", i)
		code, retryAfter, body := postRaw(t, s.ingestURL, "iot_telemetry", telemetry("ret-dev", id))
		if code == http.StatusAccepted {
			acked = append(acked, id)
			if time.Now().After(deadline) {
				t.Fatalf("the collector still accepts events after %s of backlog", retention/2+15*time.Second)
			}
			time.Sleep(500 * time.Millisecond)
			continue
		}
		if code != http.StatusServiceUnavailable || retryAfter == "" || !strings.Contains(body, "backlog") {
			t.Fatalf("collector answered %d (Retry-After %q): %s; want 503 with Retry-After for the backlog", code, retryAfter, body)
		}
		t.Logf("collector sheds after %d probes: 503, Retry-After %s: %s", len(acked), retryAfter, strings.TrimSpace(body))
		break
	}
	wurl := "http://" + w.httpAddr
	alarmBy := time.Now().Add(10 * time.Second)
	for metric(t, wurl, "sluice_retention_alarm") == 0 {
		if time.Now().After(alarmBy) {
			t.Fatal("sluice_retention_alarm stays 0 on the worker while the collector sheds")
		}
		time.Sleep(200 * time.Millisecond)
	}
	code, body := readyz(t, s.ingestURL)
	if warn := fmt.Sprint(body["warnings"]); code != http.StatusOK || !strings.Contains(warn, "backlog") {
		t.Errorf("collector /readyz %d %v: want ready with a backlog warning", code, body)
	} else {
		t.Logf("collector /readyz warns: %s", warn)
	}
	start, _ := s.offsetBounds(t, "sluice.iot_telemetry", 0)
	if start > firstUnread {
		t.Fatalf("log start offset is %d: unread events from offset %d expired before the alarm was seen", start, firstUnread)
	}
	t.Logf("alarm seen everywhere with the log start offset at %d (first unread %d)", start, firstUnread)
	return acked
}

// waitLogStart waits until Kafka deleted partition 0 of topic up to offset.
func (s *splitStack) waitLogStart(t *testing.T, topic string, offset int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		start, _ := s.offsetBounds(t, topic, 0)
		if start >= offset {
			t.Logf("retention deleted %s[0] up to offset %d", topic, start)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log start of %s[0] still %d after %s, want %d", topic, start, timeout, offset)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// checkGapHolds waits until the worker's /readyz fails naming the gap of
// iot_telemetry/0, checks it is the exact range lost, that the gap metric
// counts it, and that nothing past it is written meanwhile. It returns the
// gap's first and last offsets.
func (s *splitStack) checkGapHolds(t *testing.T, w *proc, topic string, stored, lostEnd int64) (first, last int64) {
	t.Helper()
	url := "http://" + w.httpAddr
	const named = "iot_telemetry/0: offsets "
	deadline := time.Now().Add(60 * time.Second)
	var text string
	for {
		code, body := readyz(t, url)
		text = fmt.Sprint(body["reason"])
		if all, ok := body["reasons"]; ok {
			text = fmt.Sprint(all)
		}
		if i := strings.Index(text, named); code == http.StatusServiceUnavailable && i >= 0 {
			if _, err := fmt.Sscanf(text[i+len(named):], "%d-%d", &first, &last); err != nil {
				t.Fatalf("gap in /readyz not as expected: %s", text)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker /readyz names no gap within 60s: %d %v", code, body)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("worker /readyz: %s", text)
	logStart, _ := s.offsetBounds(t, topic, 0)
	if first != stored || last+1 < lostEnd || last+1 > logStart {
		t.Errorf("gap %d-%d, want from %d (after what ClickHouse holds) to at least %d and below the log start %d", first, last, stored, lostEnd-1, logStart)
	}
	if got := metric(t, url, "sluice_worker_gap_messages"); got != float64(last-first+1) {
		t.Errorf("sluice_worker_gap_messages = %v, want %d", got, last-first+1)
	}
	for range 3 {
		if n := s.db.partitionRows(t, "iot_telemetry", 0); n != uint64(stored) {
			t.Fatalf("partition 0 holds %d rows while stopped at the gap, want the %d stored before", n, stored)
		}
		time.Sleep(time.Second)
	}
	return first, last
}

// checkAfterAccept checks that, past an accepted gap, the worker is ready
// again, the collector takes events again and they land, and sluice.dlq
// records the lost range.
func (s *splitStack) checkAfterAccept(t *testing.T, w *proc, probes []string, first, last int64) {
	t.Helper()
	later := seqIDs("later", 20)
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, _, body := postRaw(t, s.ingestURL, "iot_telemetry", telemetry("ret-dev", later...))
		if code == http.StatusAccepted {
			break
		}
		if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("collector after the gap was accepted: %d %s", code, body)
		}
		time.Sleep(time.Second)
	}
	waitReady(t, "http://"+w.httpAddr, w.exited())
	allowed := map[string]bool{}
	for _, id := range append(append(seqIDs("stored", retentionStored), probes...), later...) {
		allowed[id] = true
	}
	deadline = time.Now().Add(60 * time.Second)
	for {
		ids := s.db.storedIDs(t, "iot_telemetry")
		landed := 0
		for _, id := range later {
			landed += ids[id]
		}
		if landed == len(later) {
			for id, n := range ids {
				if n != 1 || !allowed[id] {
					t.Errorf("ClickHouse holds %s %d times; want only stored, probe and later events, once", id, n)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d later events landed after the gap was accepted", landed, len(later))
		}
		time.Sleep(250 * time.Millisecond)
	}
	// The gap may be recorded in pieces: what went on expiring while the
	// operator decided is recorded as part of the accepted loss. Together
	// the records must cover the gap, from its first offset, contiguously.
	recs := s.readDLQ(t)
	covered := first - 1
	for changed := true; changed; {
		changed = false
		for _, rec := range recs {
			if rec.Skip() && rec.Stream == "iot_telemetry" && rec.Partition == 0 && rec.Offset == covered+1 {
				t.Logf("sluice.dlq: skipped_by %s, offsets %d-%d: %s", rec.SkippedBy, rec.Offset, rec.SkippedThrough, rec.Reason)
				covered, changed = rec.SkippedThrough, true
			}
		}
	}
	if covered < last {
		t.Errorf("sluice.dlq records (skipped_by, skipped_through) cover the gap %d-%d only up to %d; it holds %+v", first, last, covered, recs)
	}
}

// retentionStack is a split stack of one partition whose broker applies
// retention every second, with the stream topics' retention.ms set (after
// the collector created them) and a worker started.
func retentionStack(t *testing.T, retention time.Duration) (s *splitStack, stopCH, startCH func()) {
	t.Helper()
	addr, stopCH, startCH := privateClickHouse(t)
	s = newSplitStackKafka(t, newTestDBAt(t, addr), 1, devstack.BrokerConfigs(map[string]string{"log.cleaner.backoff.ms": "1000"}))
	s.startIngest() // creates the topics
	s.setRetention(t, retention, "sluice.iot_telemetry", "sluice.app_logs")
	// The backlog watchers read retention.ms when they start (then once a
	// minute): the collector starts again to know it at once.
	s.ingest.kill()
	s.startIngest()
	s.startWorker()
	waitMetric(t, s, "sluice_worker_generations_total", 1)
	return s, stopCH, startCH
}

// TestRetentionGapWithoutProgress is TestRetentionPressure's gap for a
// partition of which ClickHouse holds nothing and the group never committed
// anything (a new stream, partitions just added, ClickHouse down from the
// start): retention deletes its first events, and the store's lane must
// stop at the gap from offset 0 like at any other, not start silently at
// the first offset Kafka still has.
func TestRetentionGapWithoutProgress(t *testing.T) {
	// Waits more than it works: run beside the others of its kind.
	t.Parallel()
	const topic = "sluice.iot_telemetry"
	s, stopCH, startCH := retentionStack(t, 20*time.Second)
	w := s.workers[len(s.workers)-1]
	stopCH()
	mustPost(t, s.ingestURL, "iot_telemetry", telemetry("ret-dev", seqIDs("lost", 200)...))
	_, lostEnd := s.offsetBounds(t, topic, 0)
	var probes []string
	for i := range 10 {
		id := fmt.Sprintf("probe-%03d", i)
		if code, _, _ := postRaw(t, s.ingestURL, "iot_telemetry", telemetry("ret-dev", id)); code == http.StatusAccepted {
			probes = append(probes, id)
		}
		time.Sleep(time.Second)
	}
	s.waitLogStart(t, topic, lostEnd, time.Minute)
	w.kill()
	startCH()
	w = s.startWorkerWith(false)
	first, last := s.checkGapHolds(t, w, topic, 0, lostEnd)
	acceptGap(t, w)
	s.checkAfterAccept(t, w, probes, first, last)
}

// TestRetentionGapAtPartitionEnd is TestRetentionPressure's gap when
// retention deleted every unread event of the partition, so that no message
// follows the gap: the store's lane must still stop there and say so, and
// the operator must be able to accept it; the collectors, which shed the
// stream for the expired offsets, take events again afterwards.
func TestRetentionGapAtPartitionEnd(t *testing.T) {
	// Waits more than it works: run beside the others of its kind.
	t.Parallel()
	const topic = "sluice.iot_telemetry"
	s, stopCH, startCH := retentionStack(t, 15*time.Second)
	w := s.workers[len(s.workers)-1]
	mustPost(t, s.ingestURL, "iot_telemetry", telemetry("ret-dev", seqIDs("stored", retentionStored)...))
	s.db.waitRows(t, map[string]uint64{"iot_telemetry": retentionStored}, 60*time.Second)
	s.waitCommitted(t, topic, retentionStored)
	stopCH()
	mustPost(t, s.ingestURL, "iot_telemetry", telemetry("ret-dev", seqIDs("lost", 200)...))
	_, end := s.offsetBounds(t, topic, 0)
	s.waitLogStart(t, topic, end, time.Minute)
	w.kill()
	startCH()
	w = s.startWorkerWith(false)
	first, last := s.checkGapHolds(t, w, topic, retentionStored, end)
	acceptGap(t, w)
	s.checkAfterAccept(t, w, nil, first, last)
}
