package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOneConfigFileForEveryCommand gives one config file to `sluice dev`,
// `sluice loadgen`, `sluice verify` and `sluice validate`: each takes its
// own keys from it and ignores the others', dev logs in the file's format,
// and dev's /metrics carries sluice_build_info naming the same build as
// `sluice version`.
func TestOneConfigFileForEveryCommand(t *testing.T) {
	db := newTestDB(t)
	httpAddr, kafkaAddr := freeAddr(t), freeAddr(t)
	url := "http://" + httpAddr
	config := fmt.Sprintf(`# dev
data-dir: %s
http-addr: %s
kafka-addr: %s
nats-addr: %s
mqtt-addr: ""
syslog-tcp-addr: ""
syslog-udp-addr: ""
relp-addr: ""
partitions: 2
batch-linger: 100ms
# dev and verify
clickhouse-addr: %s
clickhouse-database: %s
# run and verify (dev has no such flag)
kafka-brokers: [%s]
role: work
# loadgen
url: %s
events: 300
rate: 0
report-interval: -1s
# verify
wait: 30s
# every command
log-format: json
`, t.TempDir(), httpAddr, kafkaAddr, freeAddr(t), clickhouseAddr(), db.Name, kafkaAddr, url)
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}

	if out, err := runBin(t, "validate", "--config", path); err != nil || !strings.HasPrefix(out, "ok: "+path+": 20 settings, 2 streams") {
		t.Fatalf("sluice validate: %v\n%s", err, out)
	}

	dev := startProc(t, "dev", "dev", "--config", path)
	waitReady(t, url, dev.exited())

	out, err := runBin(t, "loadgen", "--config", path)
	if err != nil {
		t.Fatalf("sluice loadgen with the file: %v\n%s", err, out)
	}
	out, err = runBin(t, "verify", "--config", path)
	if err != nil || !strings.Contains(out, "CLEAN: ClickHouse holds each of the 300 expected events exactly once") {
		t.Fatalf("sluice verify with the file: %v\n%s", err, out)
	}

	// The build on /metrics is the one `sluice version` reports.
	out, err = runBin(t, "version", "--json")
	if err != nil {
		t.Fatalf("sluice version: %v\n%s", err, out)
	}
	var info struct {
		Version, Revision string
		GoVersion         string `json:"go_version"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("sluice version --json: %v\n%s", err, out)
	}
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := fmt.Sprintf(`sluice_build_info{goversion=%q,revision=%q,version=%q} 1`, info.GoVersion, info.Revision, info.Version)
	if !strings.Contains(string(metrics), want) {
		t.Errorf("/metrics lacks %s", want)
	}

	// The file's log-format reached dev's logger: every line is JSON.
	f, err := os.Open(dev.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines := 0
	for sc := bufio.NewScanner(f); sc.Scan(); lines++ {
		if !json.Valid(sc.Bytes()) {
			t.Fatalf("dev log line %d is not JSON (log-format: json in the file): %s", lines+1, sc.Text())
		}
	}
	if lines == 0 {
		t.Error("dev logged nothing")
	}
}

// runBin runs the sluice binary to completion and returns its combined
// output.
func runBin(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, sluiceBin(t), args...).CombinedOutput()
	return string(out), err
}
