package e2e

import (
	"context"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/loadgen"
)

// loadRun is loadgen running in the background until stopped.
type loadRun struct {
	cancel context.CancelFunc
	done   chan struct{}
	sum    loadgen.Summary
	err    error
	ackLog *syncBuffer
}

func startLoad(t *testing.T, url string, rate float64) *loadRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &loadRun{cancel: cancel, done: make(chan struct{}), ackLog: &syncBuffer{}}
	go func() {
		defer close(l.done)
		l.sum, l.err = loadgen.Run(ctx, loadgen.Config{
			URL:         url,
			Rate:        rate,
			Concurrency: 8,
			BatchSize:   50,
			Mix:         0.5,
			Devices:     200,
			AckLog:      l.ackLog,
			// Long enough for retries to outlast a restart of Sluice.
			Grace:      90 * time.Second,
			MaxBackoff: 500 * time.Millisecond,
		}, io.Discard)
	}()
	t.Cleanup(func() { l.cancel(); <-l.done })
	return l
}

// stop ends generation and waits until every request sent was acknowledged.
func (l *loadRun) stop(t *testing.T) loadgen.Summary {
	t.Helper()
	l.cancel()
	<-l.done
	if l.err != nil {
		t.Fatalf("loadgen: %v (summary %+v)", l.err, l.sum)
	}
	if l.sum.Unacked != 0 || l.sum.Abandoned != 0 || l.sum.Rejected != 0 {
		t.Fatalf("loadgen left events unacknowledged: %+v", l.sum)
	}
	return l.sum
}

// TestDevSIGTERMRestart stops `sluice dev` with SIGTERM while events are in
// flight and starts it again on the same data dir: every acknowledged event
// lands exactly once.
func TestDevSIGTERMRestart(t *testing.T) {
	db := newTestDB(t)
	dataDir := t.TempDir()
	httpAddr := freeAddr(t)
	url := "http://" + httpAddr
	args := []string{"dev", "--data-dir", dataDir, "--http-addr", httpAddr,
		"--kafka-addr", freeAddr(t), "--nats-addr", freeAddr(t),
		"--clickhouse-addr", clickhouseAddr(), "--clickhouse-database", db.Name,
		"--partitions", "4", "--batch-linger", "100ms",
		// The collectors that dev turns on by default, on free ports so
		// that the test never meets another process on the defaults.
		"--mqtt-addr", freeAddr(t), "--syslog-tcp-addr", freeAddr(t), "--syslog-udp-addr", freeAddr(t), "--relp-addr", freeAddr(t)}

	first := startProc(t, "dev-1", args...)
	waitReady(t, url, first.exited())
	load := startLoad(t, url, 3000)
	time.Sleep(3 * time.Second)

	first.signal(syscall.SIGTERM)
	if err := first.wait(t, 60*time.Second); err != nil {
		t.Fatalf("sluice dev did not exit cleanly on SIGTERM: %v", err)
	}
	second := startProc(t, "dev-2", args...)
	waitReady(t, url, second.exited())
	time.Sleep(3 * time.Second)
	sum := load.stop(t)
	if sum.AckedTotal < 5000 {
		t.Fatalf("only %d events acknowledged; the test needs load across the restart", sum.AckedTotal)
	}
	t.Logf("acknowledged %d events across the restart, %d retries", sum.AckedTotal, sum.Retries)

	acked := load.ackLog.ackedIDs(t)
	want := map[string]uint64{}
	for stream, ids := range acked {
		want[stream] = uint64(len(ids))
	}
	db.waitRows(t, want, 60*time.Second)
	checkExactlyOnce(t, db, acked)

	second.signal(syscall.SIGTERM)
	if err := second.wait(t, 60*time.Second); err != nil {
		t.Fatalf("second sluice dev did not exit cleanly: %v", err)
	}
}
