package verify

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/testkit"
)

// sluiceBin returns the sluice binary: $SLUICE_BIN (set by `make test`) or
// one built for this test run.
func sluiceBin(t *testing.T) string { return testkit.SluiceBin(t) }

// TestCommand runs `sluice verify` as a user would, for its exit status and
// output.
func TestCommand(t *testing.T) {
	bin := sluiceBin(t)
	clean := newFixture(t)
	seed(clean)
	clean.deliver("iot_telemetry")
	clean.deliver("app_logs")
	broken := newFixture(t)
	seed(broken)
	broken.deliver("iot_telemetry", "iot-3")
	broken.deliver("app_logs")

	args := func(f *fixture, extra ...string) []string {
		return append([]string{"verify", "--kafka-brokers", strings.Join(f.brokers, ","),
			"--clickhouse-addr", chAddr(), "--clickhouse-database", f.db}, extra...)
	}
	tests := []struct {
		name      string
		args      []string
		env       []string
		code      int
		stdout    []string // substrings
		stderr    []string
		checkJSON func(t *testing.T, rep map[string]any)
	}{
		{name: "clean", args: args(clean), code: 0,
			stdout: []string{"iot_telemetry/0", "app_logs/2", "TOTAL", "CLEAN: ClickHouse holds each of the 60 expected events exactly once"}},
		{name: "missing", args: args(broken), code: 1,
			stdout: []string{"NOT CLEAN: 1 missing, 0 duplicated (0 extra rows), 0 unexpected", `event_id "iot-3"`, "--wait"}},
		{name: "one stream, clean", args: args(broken, "--stream", "app_logs"), code: 0, stdout: []string{"CLEAN"}},
		{name: "json", args: args(broken, "--json", "--examples", "1"), code: 1,
			checkJSON: func(t *testing.T, rep map[string]any) {
				totals := rep["totals"].(map[string]any)
				if rep["clean"] != false || totals["missing"] != 1.0 || totals["expected"] != 60.0 {
					t.Errorf("clean %v, totals %v", rep["clean"], totals)
				}
			}},
		{name: "settings from the environment", args: []string{"verify", "--stream", "iot_telemetry"}, code: 1,
			env:    []string{"SLUICE_KAFKA_BROKERS=" + strings.Join(broken.brokers, ","), "SLUICE_CLICKHOUSE_ADDR=" + chAddr(), "SLUICE_CLICKHOUSE_DATABASE=" + broken.db},
			stdout: []string{"NOT CLEAN"}},
		{name: "ClickHouse unreachable", args: append(args(clean), "--clickhouse-addr", "127.0.0.1:1"), code: 2,
			stderr: []string{"sluice verify: clickhouse: ping 127.0.0.1:1"}},
		{name: "unknown stream", args: args(clean, "--stream", "nope"), code: 2, stderr: []string{`--stream "nope": no such stream`}},
		{name: "unknown flag", args: args(clean, "--nope"), code: 2, stderr: []string{"unknown flag: --nope"}},
		{name: "bad setting in the environment", args: args(clean), env: []string{"SLUICE_WAIT=soon"}, code: 2, stderr: []string{"SLUICE_WAIT"}},
		{name: "arguments", args: args(clean, "extra"), code: 2, stderr: []string{"unexpected arguments"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, tt.args...)
			cmd.Env = append(os.Environ(), tt.env...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code {
				t.Errorf("exit status %d, want %d", code, tt.code)
			}
			for _, s := range tt.stdout {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout lacks %q", s)
				}
			}
			for _, s := range tt.stderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q", s)
				}
			}
			if tt.checkJSON != nil {
				var rep map[string]any
				if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
					t.Fatalf("stdout is not JSON: %v", err)
				}
				tt.checkJSON(t, rep)
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			}
		})
	}
}
