package verify

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks"
)

// TestLarge measures verify on a big topic, run as the binary so that its
// peak memory is its own and not the embedded broker's. It runs only when
// SLUICE_VERIFY_LARGE gives the number of events (e.g. 1000000), and
// SLUICE_VERIFY_LARGE_PARTITIONS the partitions (default 4).
func TestLarge(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("SLUICE_VERIFY_LARGE"))
	if n <= 0 {
		t.Skip("set SLUICE_VERIFY_LARGE=<events> to measure verify on a large topic")
	}
	parts, _ := strconv.Atoi(os.Getenv("SLUICE_VERIFY_LARGE_PARTITIONS"))
	if parts <= 0 {
		parts = 4
	}
	bin := sluiceBin(t)
	f := newFixtureN(t, parts)
	st := f.stream("iot_telemetry")

	start := time.Now()
	const chunk = 100_000
	for i := 0; i < n; i += chunk {
		evs := make([]schemas.Event, 0, chunk)
		for j := i; j < min(i+chunk, n); j++ {
			evs = append(evs, iotEvent(fmt.Sprintf("%08x-7d1e-4c3a-9b2f-%012d", j, j), fmt.Sprintf("sensor-%04d", j%1000), j))
		}
		f.produce("iot_telemetry", evs...)
	}
	t.Logf("produced %d events in %s", n, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	var rows []sinks.Row
	var partition int32
	flush := func() {
		if err := f.sink.Write(context.Background(), st, partition, rows); err != nil {
			t.Fatal(err)
		}
		rows = rows[:0]
	}
	f.scanBack("iot_telemetry", func(m stored) {
		if m.partition != partition || len(rows) == chunk {
			flush()
			partition = m.partition
		}
		rows = append(rows, sinks.Row{Offset: m.offset, Event: m.event})
	})
	flush()
	t.Logf("inserted into ClickHouse in %s", time.Since(start).Round(time.Millisecond))

	cmd := exec.Command(bin, "verify", "--stream", "iot_telemetry", "--kafka-brokers", strings.Join(f.brokers, ","),
		"--clickhouse-addr", chAddr(), "--clickhouse-database", f.db)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The child's rusage counts the memory it shared with this process
	// before exec, the broker's included; its own high-water mark is in
	// /proc while it runs.
	var peakKiB int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			if v := vmHWM(cmd.Process.Pid); v > 0 {
				peakKiB = v
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	err := cmd.Wait()
	took := time.Since(start)
	close(done)
	wg.Wait()
	if err != nil {
		t.Fatalf("verify: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	t.Logf("verify: %d events in %s: %.0f events/s, peak RSS %d MiB, CPU %s user %s sys",
		n, took.Round(time.Millisecond), float64(n)/took.Seconds(), peakKiB/1024,
		time.Duration(ru.Utime.Nano()).Round(time.Millisecond), time.Duration(ru.Stime.Nano()).Round(time.Millisecond))
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
}

// vmHWM returns the peak resident set of a running process, in KiB, or 0.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
