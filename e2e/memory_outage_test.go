package e2e

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testkit"
)

// chOutage is how long TestWorkerMemoryDuringClickHouseOutage keeps
// ClickHouse down: the 60 s.
const chOutage = 60 * time.Second

// TestWorkerMemoryDuringClickHouseOutage runs a collector and a worker as
// separate `sluice run --memory-limit 256MiB` processes under saturating
// load (loadgen as fast as the collector acknowledges), stops ClickHouse
// for 60 s and starts it again. It samples the worker's resident set every
// 100 ms from before the outage until everything has landed, and proves
// that it never passes the limit (VmHWM too) while the backlog piles up in
// Kafka and the worker keeps publishing to NATS, and that every
// acknowledged event then lands in ClickHouse and JetStream exactly once.
// The collector's resident set is sampled and logged, not asserted: the
// issue is about the worker.
func TestWorkerMemoryDuringClickHouseOutage(t *testing.T) {
	const limit = 256 << 20
	usePlainBinary(t)
	addr, stopCH, startCH := privateClickHouse(t)
	s := newSplitStack(t, newTestDBAt(t, addr))
	s.ingestArg = append(s.ingestArg, "--memory-limit", "256MiB")
	s.startIngest()
	w := s.startWorkerWith(true, "--memory-limit", "256MiB", "--pprof")
	workerRSS := testkit.WatchRSS(t, w.cmd.Process.Pid, limit, 100*time.Millisecond)
	ingestRSS := testkit.WatchRSS(t, s.ingest.cmd.Process.Pid, limit, 100*time.Millisecond)
	load := startLoad(t, s.ingestURL, 0)

	time.Sleep(5 * time.Second) // past the start-up, a backlog-free pipeline
	before := storedRows(t, s.db)
	stopCH()
	t.Logf("ClickHouse stopped with %d rows stored", before)
	time.Sleep(chOutage)
	checkRunning(t, s.ingest, w)
	atEnd := workerRSS.Report()
	if atEnd.Over > 0 {
		saveHeapProfile(t, "http://"+w.httpAddr)
	}
	startCH()
	t.Logf("ClickHouse started again after %s; worker so far: %s", chOutage, atEnd)
	time.Sleep(5 * time.Second) // load goes on while the worker catches up
	sum := load.stop(t)
	t.Logf("%d events acknowledged, %d retries (429/503)", sum.AckedTotal, sum.Retries)
	s.landExactlyOnce(t, load)
	checkRunning(t, s.ingest, w)

	workerRSS.Stop()
	ingestRSS.Stop()
	rep := workerRSS.Report()
	hwm := testkit.ProcStatusBytes(t, w.cmd.Process.Pid, "VmHWM")
	t.Logf("worker: %s, VmHWM %s", rep, testkit.MiB(hwm))
	t.Logf("collector: %s", ingestRSS.Report())
	if rep.Err != nil {
		t.Errorf("sampling the worker stopped early: %v", rep.Err)
	}
	if rep.Over > 0 || hwm > limit {
		t.Errorf("the worker's resident set passed the limit of 256MiB: %d samples over (the first %s), VmHWM %s",
			rep.Over, testkit.MiB(rep.FirstOver), testkit.MiB(hwm))
	}
	// A worker that read nothing would stay small too: the outage must
	// have left a backlog to hold back.
	if stored := storedRows(t, s.db); stored < before+50_000 {
		t.Errorf("only %d rows arrived after the outage began: the worker was not under load", stored-before)
	}
}

// saveHeapProfile keeps a process's heap profile (served with --pprof)
// beside the failed test's logs, for `go tool pprof`.
func saveHeapProfile(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Get(url + "/debug/pprof/heap")
	if err != nil {
		t.Logf("heap profile: %v", err)
		return
	}
	defer resp.Body.Close()
	dir := filepath.Join(os.TempDir(), "sluice-e2e-logs", strings.ReplaceAll(t.Name(), "/", "_"))
	path := filepath.Join(dir, "heap.pprof")
	b, err := io.ReadAll(resp.Body)
	if err == nil {
		if err = os.MkdirAll(dir, 0o755); err == nil {
			err = os.WriteFile(path, b, 0o644)
		}
	}
	if err != nil {
		t.Logf("heap profile: %v", err)
		return
	}
	t.Logf("heap profile kept in %s", path)
}
