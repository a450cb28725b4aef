package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/devstack"
	natssink "github.com/sluicehq/sluice/sinks/nats"
)

// restartableStack is a split stack (see newSplitStack) whose embedded Kafka
// broker and NATS server the test can stop and start again on the same
// address and data directory, while the sluice processes keep running.
type restartableStack struct {
	*splitStack
	dir       string
	kafkaAddr string
	natsAddr  string
	kafka     *devstack.Kafka
	nats      *devstack.NATS
}

// newRestartableStack is newSplitStack (4 partitions, JetStream stream
// SLUICE capturing sluice.>) with the broker and server kept at hand.
func newRestartableStack(t *testing.T, db *testDB) *restartableStack {
	t.Helper()
	r := &restartableStack{dir: t.TempDir(), kafkaAddr: freeAddr(t), natsAddr: freeAddr(t)}
	r.startKafka(t)
	r.startNATS(t)
	// Whichever broker and server run at the end are closed then.
	t.Cleanup(func() { r.stopNATS(); r.stopKafka() })

	r.splitStack = newSplitStackOn(t, db, 4, r.kafka.Addr(), r.nats.URL())
	return r
}

// startKafka starts the broker on its address and data directory: a restart
// reloads the topics and committed offsets the last one persisted.
func (r *restartableStack) startKafka(t *testing.T) {
	t.Helper()
	k, err := devstack.StartKafka(r.kafkaAddr, r.dir, false, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	r.kafka = k
}

// stopKafka closes the broker, persisting its state.
func (r *restartableStack) stopKafka() {
	if r.kafka != nil {
		r.kafka.Close()
		r.kafka = nil
	}
}

// startNATS starts the server on its address with its JetStream store, so
// that the SLUICE stream (and its duplicate window) survives a restart.
func (r *restartableStack) startNATS(t *testing.T) {
	t.Helper()
	n, err := devstack.StartNATS(r.natsAddr, r.dir)
	if err != nil {
		t.Fatal(err)
	}
	r.nats = n
}

// stopNATS shuts the server down; connected clients see the connection drop.
func (r *restartableStack) stopNATS() {
	if r.nats != nil {
		r.nats.Close()
		r.nats = nil
	}
}

// checkRunning fails the test if one of the processes has exited: the
// outage tests leave them running throughout.
func checkRunning(t *testing.T, procs ...*proc) {
	t.Helper()
	for _, p := range procs {
		select {
		case <-p.done:
			t.Fatalf("%s exited: %v\n%s", p.log, p.err, tail(p.log, 5))
		default:
		}
	}
}

// startWorkerUnready starts one more worker process without waiting for it
// to be ready: one started during an outage may not be.
func (s *splitStack) startWorkerUnready() *proc {
	s.t.Helper()
	s.nworkers++
	addr := freeAddr(s.t)
	w := startProc(s.t, fmt.Sprintf("worker-%d", s.nworkers), append(s.common(), "--role", "work", "--http-addr", addr)...)
	w.httpAddr = addr
	s.workers = append(s.workers, w)
	return w
}

// storedRows is count() over both stream tables.
func storedRows(t *testing.T, db *testDB) uint64 {
	t.Helper()
	var total uint64
	for _, table := range []string{"iot_telemetry", "app_logs"} {
		rows, _ := db.counts(t, table)
		total += rows
	}
	return total
}

// jetStreamMsgs is the SLUICE stream's message count.
func (s *splitStack) jetStreamMsgs(t *testing.T) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := s.js.Info(ctx)
	if err != nil {
		t.Fatalf("JetStream stream info: %v", err)
	}
	return info.State.Msgs
}

// sampleEvery reads f n+1 times, period apart (the first at once), on a
// fixed schedule, so a slow read does not stretch the span.
func sampleEvery(period time.Duration, n int, f func() uint64) []uint64 {
	start := time.Now()
	out := make([]uint64, 0, n+1)
	for i := 0; i <= n; i++ {
		time.Sleep(time.Until(start.Add(time.Duration(i) * period)))
		out = append(out, f())
	}
	return out
}

// perSecond is the mean growth per second of samples taken period apart.
func perSecond(samples []uint64, period time.Duration) float64 {
	if len(samples) < 2 {
		return 0
	}
	span := period * time.Duration(len(samples)-1)
	return float64(samples[len(samples)-1]-samples[0]) / span.Seconds()
}

// checkGrowing fails the test unless every sample is above the one span
// samples before: the count never stood still for span sampling periods.
// (A span of one sample is too strict on a loaded machine, where a
// pipeline that is not blocked at all can still miss a second.)
func checkGrowing(t *testing.T, what string, samples []uint64, span int) {
	t.Helper()
	for i := span; i < len(samples); i++ {
		if samples[i] <= samples[i-span] {
			t.Errorf("%s did not grow between samples %d and %d: %v", what, i-span, i, samples)
			return
		}
	}
}

// waitCommitted waits until a consumer group has committed an offset for
// every partition of the stream topics, and returns the offsets.
func waitCommitted(t *testing.T, s *splitStack, group string, timeout time.Duration) map[string]map[int]int64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		offsets, missing := fetchGroupOffsets(t, s, group), 0
		for _, parts := range offsets {
			for _, off := range parts {
				if off < 0 {
					missing++
				}
			}
		}
		if missing == 0 {
			return offsets
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s has committed no offset for %d partitions after %s: %v", group, missing, timeout, offsets)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// fetchGroupOffsets returns a consumer group's committed offsets of the
// stream topics' partitions (-1 where none is committed).
func fetchGroupOffsets(t *testing.T, s *splitStack, group string) map[string]map[int]int64 {
	t.Helper()
	parts := make([]int, s.partitions)
	for i := range parts {
		parts[i] = i
	}
	topics := map[string][]int{"sluice.iot_telemetry": parts, "sluice.app_logs": parts}
	c := &kafka.Client{Addr: kafka.TCP(s.kafkaAddr), Timeout: 10 * time.Second}
	var err error
	for range 20 { // the broker may have just started
		var resp *kafka.OffsetFetchResponse
		if resp, err = c.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: group, Topics: topics}); err == nil {
			err = resp.Error
		}
		if err == nil {
			out := map[string]map[int]int64{}
			for topic, ps := range resp.Topics {
				out[topic] = map[int]int64{}
				for _, p := range ps {
					out[topic][p.Partition] = p.CommittedOffset
				}
			}
			return out
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("offsets of group %s: %v", group, err)
	return nil
}

// checkJetStreamEach reads the whole SLUICE stream and checks that it holds
// every acknowledged event exactly once, by Nats-Msg-Id, and nothing else:
// a stronger check than checkJetStream's count, which a loss and a
// duplicate would balance.
func checkJetStreamEach(t *testing.T, s *splitStack, acked map[string]map[string]bool) {
	t.Helper()
	want := map[string]bool{}
	for _, ids := range acked {
		for id := range ids {
			want[natssink.MsgID(id)] = true
		}
	}
	seen := readMsgIDs(t, s)
	missing, twice, unknown := 0, 0, 0
	for id, n := range seen {
		switch {
		case !want[id]:
			unknown++
		case n > 1:
			twice++
		}
	}
	for id := range want {
		if seen[id] == 0 {
			missing++
		}
	}
	if missing+twice+unknown > 0 {
		t.Errorf("JetStream: %d acknowledged events missing, %d held more than once, %d not acknowledged (%d distinct held, want %d)",
			missing, twice, unknown, len(seen), len(want))
	}
}

// readMsgIDs counts the Nats-Msg-Ids of every message in the SLUICE stream.
func readMsgIDs(t *testing.T, s *splitStack) map[string]int {
	t.Helper()
	total := s.jetStreamMsgs(t)
	cons, err := s.js.OrderedConsumer(context.Background(), jetstream.OrderedConsumerConfig{HeadersOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(5000))
	if err != nil {
		t.Fatal(err)
	}
	defer it.Stop()
	// Next waits for ever on an empty stream; Stop ends it.
	timer := time.AfterFunc(60*time.Second, it.Stop)
	defer timer.Stop()
	seen := map[string]int{}
	for read := uint64(0); read < total; read++ {
		m, err := it.Next()
		if err != nil {
			t.Fatalf("reading JetStream after %d of %d messages: %v", read, total, err)
		}
		seen[m.Headers().Get(jetstream.MsgIDHeader)]++
	}
	return seen
}
