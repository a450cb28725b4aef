package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testkit"
)

// `sluice bench` runs both roles as processes, drives them, waits until
// ClickHouse holds what was acknowledged and prints its table. The figures
// themselves are for the operator (docs/benchmarks.md); the test checks
// that they are there and consistent: every acknowledged event stored, CPU
// and memory measured for both roles.
func TestBenchCommand(t *testing.T) {
	t.Parallel()
	bin := testkit.SluiceBin(t) // without -race: the roles' cost is what is measured
	// Start-up, 3 s of load, a drain of up to 60 s, the roles' shutdown
	// and ClickHouse dropping the database (45 s seen under load).
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "bench", "--clickhouse-addr", testkit.ClickHouseAddr(),
		"--rate", "2000", "--duration", "3s", "--saturation=false", "--drain", "60s")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// A role outliving a killed bench must not hold the pipes, and Wait,
	// open.
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("sluice bench: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	t.Logf("\n%s", stdout.String())
	row := regexp.MustCompile(`(?m)^\s*2000/s\s+(\d+)\s+(\d+)\s+([\d.]+) ms\s+([\d.]+) ms\s+([\d.]+) ms\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+) MiB\s+(\d+) MiB`).FindStringSubmatch(stdout.String())
	if row == nil {
		t.Fatalf("no row for the 2000/s phase in:\n%s", stdout.String())
	}
	num := func(i int) float64 {
		v, err := strconv.ParseFloat(row[i], 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if acked := num(1); acked < 1000 || acked > 2500 {
		t.Errorf("acked %v/s at a rate of 2000/s", acked)
	}
	if num(6) <= 0 || num(7) <= 0 {
		t.Errorf("CPU per event not measured: ingest %v µs, work %v µs", num(6), num(7))
	}
	if num(9) <= 0 || num(10) <= 0 {
		t.Errorf("peak RSS not measured: ingest %v MiB, work %v MiB", num(9), num(10))
	}
	if !regexp.MustCompile(`phase 2000/s: (\d+) acked, (\d+) stored`).Match(stderr.Bytes()) {
		t.Errorf("no phase summary in the progress output:\n%s", stderr.String())
	}
	m := regexp.MustCompile(`phase 2000/s: (\d+) acked, (\d+) stored`).FindStringSubmatch(stderr.String())
	if m != nil {
		// Stored may exceed acked by events whose answer loadgen lost to
		// a timeout; never fall short of it.
		if acked, stored := atoi(t, m[1]), atoi(t, m[2]); stored < acked {
			t.Errorf("acked %d events but stored %d", acked, stored)
		}
	}
}

func atoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
