package testkit

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// BenchBinary skips t unless the environment variable gate is set, and
// returns the sluice binary of $SLUICE_BIN, which a throughput test of the
// collector as deployed runs.
func BenchBinary(t testing.TB, gate string) string {
	t.Helper()
	if os.Getenv(gate) == "" {
		t.Skipf("a benchmark: set %s=1 (and SLUICE_BIN)", gate)
	}
	bin := os.Getenv("SLUICE_BIN")
	if bin == "" {
		t.Fatal("set SLUICE_BIN to a sluice binary (go build -o /tmp/sluice ./cmd/sluice)")
	}
	return bin
}

// EnvInt is the integer in environment variable name, or def when unset.
func EnvInt(t testing.TB, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, s, err)
	}
	return n
}

// Collector is a `sluice run --role ingest` process that a throughput test
// runs against k, so that what it measures (rate, peak RSS) is the
// collector as deployed, apart from the test's own broker and senders.
type Collector struct {
	Cmd *exec.Cmd
	// URL is its HTTP address (probes, metrics, pprof).
	URL string
	// Log is the file its output goes to.
	Log string
}

// StartCollector runs bin (a sluice binary) as a collector writing to k,
// with args added (the collectors' addresses), and returns once it is
// ready. It is killed when t ends, and dies with the test binary.
func StartCollector(t testing.TB, bin string, k *Kafka, args ...string) *Collector {
	t.Helper()
	httpAddr := FreeAddr(t)
	logPath := filepath.Join(t.TempDir(), "sluice.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	cmd := exec.Command(bin, "run", "--role", "ingest", "--kafka-brokers", k.Brokers[0], "--http-addr", httpAddr,
		"--pprof", "--log-level", "warn")
	cmd.Args = append(cmd.Args, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	c := &Collector{Cmd: cmd, URL: "http://" + httpAddr, Log: logPath}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(c.URL + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("collector not ready in 30 s (log: %s)", logPath)
		}
	}
}

// PeakRSS is the collector's peak resident set (VmHWM), as /proc says it.
func (c *Collector) PeakRSS() string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.Cmd.Process.Pid))
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// SaveProfile writes a 10 s CPU profile of the collector to path, taken a
// second from now.
func (c *Collector) SaveProfile(t testing.TB, path string) {
	time.Sleep(time.Second)
	resp, err := http.Get(c.URL + "/debug/pprof/profile?seconds=10")
	if err != nil {
		t.Errorf("profile: %v", err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		t.Errorf("profile: %v", err)
		return
	}
	defer f.Close()
	_, _ = io.Copy(f, resp.Body)
}

// TopicSize sums the end offsets of a topic's partitions: how many
// messages it holds.
func (k *Kafka) TopicSize(t testing.TB, topic string) int64 {
	t.Helper()
	var sum int64
	for p := range Partitions {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := kafka.DialLeader(ctx, "tcp", k.Brokers[0], topic, p)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		last, err := c.ReadLastOffset()
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		sum += last
	}
	return sum
}

// WaitTopicSize polls until topic holds want messages or timeout passes,
// and returns when the first message arrived and how many there are.
func (k *Kafka) WaitTopicSize(t testing.TB, topic string, want int64, timeout time.Duration) (first time.Time, got int64) {
	t.Helper()
	for deadline := time.Now().Add(timeout); got < want && time.Now().Before(deadline) && !t.Failed(); {
		time.Sleep(100 * time.Millisecond)
		got = k.TopicSize(t, topic)
		if got > 0 && first.IsZero() {
			first = time.Now()
		}
	}
	return first, got
}
