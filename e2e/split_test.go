package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/devstack"
)

// splitStack is Sluice as in production: Kafka and NATS outside (here: the
// embedded broker and server, run by the test), and collectors and workers
// as separate `sluice run` processes that the tests kill and restart.
type splitStack struct {
	t          *testing.T
	db         *testDB
	chAddr     string
	kafkaAddr  string
	natsURL    string
	js         jetstream.Stream
	ingestURL  string
	ingestArg  []string
	workers    []*proc
	ingest     *proc
	nworkers   int
	partitions int
}

// sessionTimeout is short so that a killed worker's partitions move on
// quickly; heartbeats go out at a quarter of it.
const sessionTimeout = "4s"

func newSplitStack(t *testing.T, db *testDB) *splitStack {
	t.Helper()
	return newSplitStackPartitions(t, db, 4)
}

func newSplitStackPartitions(t *testing.T, db *testDB, partitions int) *splitStack {
	t.Helper()
	return newSplitStackKafka(t, db, partitions)
}

// newSplitStackKafka is newSplitStackPartitions with options for the
// embedded broker (a short retention cleaner interval, say).
func newSplitStackKafka(t *testing.T, db *testDB, partitions int, opts ...devstack.KafkaOption) *splitStack {
	t.Helper()
	dir := t.TempDir()
	k, err := devstack.StartKafka(freeAddr(t), dir, false, testLogger(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeKafka(k) })
	n, err := devstack.StartNATS("127.0.0.1:-1", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return newSplitStackOn(t, db, partitions, k.Addr(), n.URL())
}

// newSplitStackOn is a split stack on a running broker and NATS server. A
// JetStream stream captures every event, so the workers publish with
// Nats-Msg-Id and the stream's message count is checked like ClickHouse.
// The test's own connection reconnects for ever, as the workers' does, so
// it outlives a NATS outage.
func newSplitStackOn(t *testing.T, db *testDB, partitions int, kafkaAddr, natsURL string) *splitStack {
	t.Helper()
	nc, err := natsgo.Connect(natsURL, natsgo.MaxReconnects(-1), natsgo.ReconnectWait(250*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: "SLUICE", Subjects: []string{"sluice.>"}, Duplicates: 10 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := &splitStack{t: t, db: db, chAddr: db.Addr, partitions: partitions, kafkaAddr: kafkaAddr, natsURL: natsURL, js: stream}
	addr := freeAddr(t)
	s.ingestURL = "http://" + addr
	s.ingestArg = append(s.common(), "--role", "ingest", "--http-addr", addr)
	return s
}

func (s *splitStack) common() []string {
	return []string{"run", "--kafka-brokers", s.kafkaAddr, "--nats-url", s.natsURL,
		"--clickhouse-addr", s.chAddr, "--clickhouse-database", s.db.Name,
		"--partitions", strconv.Itoa(s.partitions), "--batch-linger", "100ms", "--batch-max-events", "2000",
		"--session-timeout", sessionTimeout, "--rebalance-timeout", "8s", "--log-level", "info"}
}

func (s *splitStack) startIngest() {
	s.t.Helper()
	s.ingest = startProc(s.t, "ingest", s.ingestArg...)
	waitReady(s.t, s.ingestURL, s.ingest.exited())
}

// startWorker starts one more worker process and waits until it serves
// /readyz.
func (s *splitStack) startWorker() *proc {
	s.t.Helper()
	s.nworkers++
	addr := freeAddr(s.t)
	w := startProc(s.t, fmt.Sprintf("worker-%d", s.nworkers), append(s.common(), "--role", "work", "--http-addr", addr)...)
	w.httpAddr = addr
	waitReady(s.t, "http://"+addr, w.exited())
	s.workers = append(s.workers, w)
	return w
}

// checkJetStream asserts that the JetStream stream holds exactly the
// acknowledged events: a batch republished after a crash was deduplicated.
func (s *splitStack) checkJetStream(t *testing.T, acked map[string]map[string]bool) {
	t.Helper()
	want := 0
	for _, ids := range acked {
		want += len(ids)
	}
	deadline := time.Now().Add(30 * time.Second)
	var got uint64
	for {
		info, err := s.js.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got = info.State.Msgs
		if got >= uint64(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second)
	if info, err := s.js.Info(context.Background()); err == nil {
		got = info.State.Msgs
	}
	if got != uint64(want) {
		t.Errorf("JetStream holds %d events, want %d", got, want)
	}
}

// landExactlyOnce waits for the acknowledged events and checks ClickHouse
// (rollups included), JetStream and `sluice verify`.
func (s *splitStack) landExactlyOnce(t *testing.T, load *loadRun) {
	t.Helper()
	acked := load.ackLog.ackedIDs(t)
	want := map[string]uint64{}
	for stream, ids := range acked {
		want[stream] = uint64(len(ids))
	}
	s.db.waitRows(t, want, 180*time.Second)
	checkExactlyOnce(t, s.db, acked)
	checkRollups(t, s.db)
	s.checkJetStream(t, acked)
	s.verify(t)
}

// verify runs `sluice verify` against the stack and fails the test unless it
// reports Kafka and ClickHouse in agreement.
func (s *splitStack) verify(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, sluiceBin(t), "verify", "--kafka-brokers", s.kafkaAddr,
		"--clickhouse-addr", s.chAddr, "--clickhouse-database", s.db.Name, "--wait", "30s")
	// A verify that hangs prints its goroutines (SIGQUIT) into the error.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("sluice verify: %v\n%s", err, out)
		return
	}
	t.Logf("sluice verify:\n%s", lastLines(string(out), 12))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// privateClickHouse starts a ClickHouse of the test's own, which it may stop
// and start without disturbing other tests. It returns its address and
// functions to stop and start it.
func privateClickHouse(t *testing.T) (addr string, stop, start func()) {
	t.Helper()
	dir := t.TempDir()
	tcp := freeAddr(t)
	httpAddr := freeAddr(t)
	_, tcpPort, _ := strings.Cut(tcp, ":")
	_, httpPort, _ := strings.Cut(httpAddr, ":")
	script, err := filepath.Abs("../scripts/clickhouse.sh")
	if err != nil {
		t.Fatal(err)
	}
	run := func(arg string) {
		cmd := exec.Command(script, arg)
		cmd.Env = append(os.Environ(), "CLICKHOUSE_DIR="+dir, "CLICKHOUSE_TCP_PORT="+tcpPort, "CLICKHOUSE_HTTP_PORT="+httpPort)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("clickhouse.sh %s: %v\n%s", arg, err, out)
		}
	}
	run("start")
	t.Cleanup(func() { run("stop") })
	return tcp, func() { run("stop") }, func() { run("start") }
}
