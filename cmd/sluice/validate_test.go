package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// runValidate runs `sluice validate` with args and returns its output
// (stdout and what main would print) and exit status.
func runValidate(t *testing.T, args ...string) (string, int) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"validate", "--log-level", "error"}, args...))
	cmd, err := root.ExecuteC()
	code := exitCode(cmd, err, &out)
	return out.String(), code
}

// uncommented is the reference config with every commented-out setting
// turned on at its default, except those whose default is empty: an empty
// token file or route list given explicitly is refused on purpose, which
// is no fault of the file.
func uncommented(t *testing.T) (string, int) {
	t.Helper()
	b, err := os.ReadFile("../../sluice.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	setting := regexp.MustCompile(`^#([a-z0-9-]+: .*)$`)
	var out []string
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSuffix(line, "\n")
		if m := setting.FindStringSubmatch(line); m != nil && !strings.HasSuffix(line, `: ""`) && !strings.HasSuffix(line, ": []") {
			out = append(out, m[1])
		}
	}
	return strings.Join(out, "\n") + "\n", len(out)
}

// TestValidateAccepts checks that validate accepts the reference config
// as shipped and with every default spelt out, and the compose stack's.
func TestValidateAccepts(t *testing.T) {
	out, code := runValidate(t, "--config", "../../sluice.example.yaml")
	if code != 0 || out != "ok: ../../sluice.example.yaml: 0 settings, 2 streams\n" {
		t.Errorf("sluice.example.yaml: exit %d:\n%s", code, out)
	}

	all, n := uncommented(t)
	if n < 60 {
		t.Fatalf("only %d settings uncommented in sluice.example.yaml", n)
	}
	path := writeConfig(t, all)
	out, code = runValidate(t, "--config", path)
	if want := "ok: " + path + ": " + strconv.Itoa(n) + " settings, 2 streams\n"; code != 0 || out != want {
		t.Errorf("sluice.example.yaml with every default uncommented: exit %d:\n%s\nwant %s", code, out, want)
	}

	out, code = runValidate(t, "--config", "../../compose/sluice.yaml", "--role", "ingest")
	if code != 0 || !strings.HasPrefix(out, "ok: ") {
		t.Errorf("compose/sluice.yaml: exit %d:\n%s", code, out)
	}
}

// TestValidateCountsStreams checks the streams count comes from the
// file's --schemas directory, and that nothing was started: dev's data
// directory is not made.
func TestValidateCountsStreams(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile("../../schemas/iot_telemetry.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "iot_telemetry.yaml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(t.TempDir(), "not-made")
	// Without app_logs, the default MQTT routes lead nowhere: dev's
	// embedded broker is turned off.
	path := writeConfig(t, "schemas: "+dir+"\ndata-dir: "+dataDir+"\nkafka-brokers: [192.0.2.1:9092]\nmqtt-addr: \"\"\n")
	out, code := runValidate(t, "--config", path)
	if code != 0 || out != "ok: "+path+": 4 settings, 1 streams\n" {
		t.Errorf("exit %d:\n%s", code, out)
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("validate made dev's data directory (%v): it started something", err)
	}
}

// TestValidateRejects checks that validate refuses broken files with exit
// status 2 and a message naming the bad setting.
func TestValidateRejects(t *testing.T) {
	brokenSchemas := t.TempDir()
	if err := os.WriteFile(filepath.Join(brokenSchemas, "bad.yaml"), []byte("name: bad\npartition_key: k\nfields:\n  - name: k\n    type: strnig\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, file string
		args       []string
		want       []string
	}{
		{name: "unknown key", file: "log-level: info\nclickhouse-adr: ch:9000\n",
			want: []string{"line 2", `unknown setting "clickhouse-adr"`, `did you mean "clickhouse-addr"?`}},
		{name: "bad duration", file: "batch-linger: 10\n", want: []string{"batch-linger", `missing unit in duration "10"`}},
		{name: "bad role", file: "role: boss\n", want: []string{"(for sluice run)", `--role: role "boss"`}},
		{name: "bad role on the command line", file: "role: work\n", args: []string{"--role", "boss"}, want: []string{`role "boss"`}},
		{name: "bad mqtt route", file: "mqtt-route: [devices/+/telemetry]\n", want: []string{"--mqtt-route", "want FILTER=STREAM"}},
		{name: "route to no stream", file: "mqtt-route: [devices/+/telemetry=nosuch]\nmqtt-broker: tcp://m:1883\n",
			want: []string{"(for sluice run)", `--mqtt-route devices/+/telemetry=nosuch: no stream "nosuch"`}},
		{name: "dev's route to no stream", file: "mqtt-route: [devices/+/telemetry=nosuch]\n",
			want: []string{"(for sluice dev)", `no stream "nosuch"`}},
		{name: "broken schema", file: "schemas: " + brokenSchemas + "\n", want: []string{"schemas in " + brokenSchemas, "strnig"}},
		{name: "memory limit too small", file: "memory-limit: 16MiB\n", want: []string{"--memory-limit", "below the minimum"}},
		{name: "wrong type", file: "workers: {n: 8}\n", want: []string{"workers: want a int value, got a mapping"}},
		{name: "not a number", file: "partitions: many\n", want: []string{"partitions", `"many"`}},
		{name: "conflicting secrets", file: "mqtt-broker: tcp://m:1883\nmqtt-password: x\nmqtt-password-file: /etc/pw\n",
			want: []string{"give --mqtt-password-file or --mqtt-password, not both"}},
		{name: "mqtt tls without ssl", file: "mqtt-broker: tcp://m:1883\nmqtt-tls-ca: /etc/ca.pem\n", want: []string{"--mqtt-tls-* given but --mqtt-broker"}},
		{name: "missing token file", file: "token-file: /nonexistent/tokens\n", want: []string{"--token-file", "no such file"}},
		{name: "bad ttl", file: "clickhouse-ttl: 90x\n", want: []string{"--clickhouse-ttl"}},
		{name: "verify's unknown stream", file: "stream: [nosuch]\n", want: []string{"(for sluice verify)", `--stream "nosuch"`}},
		{name: "loadgen's protocol", file: "protocol: pigeon\n", want: []string{"(for sluice loadgen)", `protocol "pigeon"`}},
		{name: "bench's value", file: "saturation: maybe\n", want: []string{"saturation", "(for sluice bench)"}},
		{name: "dev's setting", file: "mqtt-max-packet-bytes: 0\n", want: []string{"(for sluice dev)", "--mqtt-max-packet-bytes 0: must be positive"}},
		{name: "no file", want: []string{"--config FILE is required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.file != "" {
				args = append(args, "--config", writeConfig(t, tt.file))
			}
			out, code := runValidate(t, args...)
			if code != exitUsage {
				t.Errorf("exit status %d, want %d", code, exitUsage)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output %q lacks %q", out, w)
				}
			}
			if strings.Contains(out, "ok: ") {
				t.Errorf("output says ok: %q", out)
			}
		})
	}
}
