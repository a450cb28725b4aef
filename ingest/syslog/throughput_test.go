package syslog_test

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testkit"
)

// TestThroughput measures the syslog TCP collector as deployed: the sluice
// binary (`sluice run --role ingest --syslog-tcp-addr`, from $SLUICE_BIN)
// fed by `sluice loadgen --protocol syslog` (RFC 5424, octet counting, four
// connections), into an embedded Kafka (acks=all) run by the test, all on
// this machine. It reports lines/s into Kafka and the collector's peak
// RSS. It runs only with SLUICE_SYSLOG_BENCH=1:
//
//	go build -o /tmp/sluice ./cmd/sluice
//	SLUICE_SYSLOG_BENCH=1 SLUICE_BIN=/tmp/sluice go test ./ingest/syslog -run Throughput -v
//
// SLUICE_SYSLOG_BENCH_LINES sets the lines (default 1,000,000);
// SLUICE_SYSLOG_BENCH_PROFILE=FILE saves a 10 s CPU profile of the
// collector taken mid-run. BenchmarkTCP measures the same path in one
// process, without the binary.
func TestThroughput(t *testing.T) {
	bin := testkit.BenchBinary(t, "SLUICE_SYSLOG_BENCH")
	lines := testkit.EnvInt(t, "SLUICE_SYSLOG_BENCH_LINES", 1_000_000)
	k := testkit.StartKafka(t)
	addr := testkit.FreeAddr(t)
	c := testkit.StartCollector(t, bin, k, "--syslog-tcp-addr", addr)
	if p := os.Getenv("SLUICE_SYSLOG_BENCH_PROFILE"); p != "" {
		go c.SaveProfile(t, p)
	}
	load := exec.Command(bin, "loadgen", "--protocol", "syslog", "--syslog-addr", addr, "--rate", "0",
		"--concurrency", "4", "--batch-size", "1000", "--events", strconv.Itoa(lines), "--report-interval", "-1s")
	load.Stdout, load.Stderr = nil, nil
	start := time.Now()
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = load.Process.Kill(); _ = load.Wait() }()
	_, got := k.WaitTopicSize(t, testkit.StreamTopic("app_logs"), int64(lines), 5*time.Minute)
	secs := time.Since(start).Seconds()
	if got < int64(lines) {
		t.Fatalf("%d of %d lines in Kafka after 5 minutes (collector log: %s)", got, lines, c.Log)
	}
	t.Log(fmt.Sprintf("%d lines over 4 TCP connections: %.1f s; %.0f lines/s into Kafka; collector peak RSS %s",
		lines, secs, float64(lines)/secs, c.PeakRSS()))
}
