package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/loadgen"
)

// TestDevStaysUnderMemoryLimit runs `sluice dev --memory-limit 256MiB`
// under saturating HTTP load (`sluice loadgen --rate 0`) for 20 s and
// checks that its resident set never exceeds the limit: sampled every
// 100 ms, and the kernel's own high-water mark (VmHWM) at the end, which
// catches a peak between samples.
func TestDevStaysUnderMemoryLimit(t *testing.T) {
	const limit = 256 << 20
	usePlainBinary(t)
	dev, url := startLimitedDev(t, "256MiB")
	pid := dev.cmd.Process.Pid

	load := exec.Command(sluiceBin(t), "loadgen", "--url", url, "--rate", "0", "--duration", "20s",
		"--report-interval", "-1s", "--json")
	var out, errOut bytes.Buffer
	load.Stdout, load.Stderr = &out, &errOut
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	loadDone := make(chan error, 1)
	go func() { loadDone <- load.Wait() }()

	var peak, samples int64
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var loadErr error
sampling:
	for {
		select {
		case loadErr = <-loadDone:
			break sampling
		case err := <-dev.exited():
			t.Fatalf("sluice dev exited under load: %v", err)
		case <-tick.C:
		}
		rss := testkit.ProcStatusBytes(t, pid, "VmRSS")
		samples++
		peak = max(peak, rss)
		if rss > limit {
			_ = load.Process.Kill()
			t.Fatalf("resident set %s over the limit of 256MiB after %d samples", testkit.MiB(rss), samples)
		}
	}
	hwm := testkit.ProcStatusBytes(t, pid, "VmHWM")
	if loadErr != nil {
		t.Fatalf("loadgen: %v\n%s", loadErr, errOut.String())
	}
	var sum loadgen.Summary
	if err := json.Unmarshal(out.Bytes(), &sum); err != nil {
		t.Fatalf("loadgen summary %q: %v", out.String(), err)
	}
	t.Logf("peak VmRSS %s in %d samples, VmHWM %s, limit 256MiB; %d events acknowledged, %d retries (429/503)",
		testkit.MiB(peak), samples, testkit.MiB(hwm), sum.AckedTotal, sum.Retries)
	if hwm > limit {
		t.Errorf("peak resident set (VmHWM) %s over the limit of 256MiB", testkit.MiB(hwm))
	}
	// A process that refused everything would stay small too: the load
	// must have gone through.
	// (Fewer samples than 200 are normal on a busy machine; a handful
	// would mean the sampling itself stalled.)
	if sum.AckedTotal < 10_000 || samples < 20 {
		t.Errorf("%d events acknowledged in %d samples: the process was not under load", sum.AckedTotal, samples)
	}
	if b, err := os.ReadFile(dev.log); err != nil || !strings.Contains(string(b), `msg="memory budget" limit=256MiB`) {
		t.Errorf("no memory budget line for 256MiB in the log (%v)", err)
	}
}
