package main

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// writeConfig writes content to a config file in a temporary directory
// and returns its path.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// findCmd returns the command at path (e.g. "schema ddl") of a fresh root.
func findCmd(t *testing.T, path string) *cobra.Command {
	t.Helper()
	c, _, err := newRootCmd().Find(strings.Fields(path))
	if err != nil || c.Name() != strings.Fields(path)[len(strings.Fields(path))-1] {
		t.Fatalf("no command %q: %v", path, err)
	}
	return c
}

// TestConfigFileServesEveryCommand checks that one file configures every
// command: each takes the keys of its flags and skips the others' keys.
func TestConfigFileServesEveryCommand(t *testing.T) {
	path := writeConfig(t, `role: work
clickhouse-addr: ch:9000
kafka-brokers: [k1:9092, k2:9092]
rate: 5
stream: [app_logs]
data-dir: /var/lib/sluice
server-version: "25.3"
log-level: warn
`)
	want := map[string]map[string]string{
		"run":        {"role": "work", "clickhouse-addr": "ch:9000", "kafka-brokers": "[k1:9092,k2:9092]", "log-level": "warn"},
		"dev":        {"clickhouse-addr": "ch:9000", "data-dir": "/var/lib/sluice"},
		"verify":     {"clickhouse-addr": "ch:9000", "kafka-brokers": "[k1:9092,k2:9092]", "stream": "[app_logs]"},
		"loadgen":    {"rate": "5", "log-level": "warn"},
		"bench":      {"rate": "5", "clickhouse-addr": "ch:9000"},
		"schema ddl": {"server-version": "25.3"},
		"validate":   {"role": "work"},
	}
	for name, flags := range want {
		t.Run(name, func(t *testing.T) {
			c := findCmd(t, name)
			if err := applyConfigFile(c, path); err != nil {
				t.Fatal(err)
			}
			for flag, v := range flags {
				f := lookupFlag(c, flag)
				if got := f.Value.String(); got != v {
					t.Errorf("--%s = %q, want %q", flag, got, v)
				}
				if src := f.Annotations[sourceAnnotation]; len(src) != 1 || src[0] != "config" {
					t.Errorf("--%s source %v, want config", flag, src)
				}
			}
		})
	}
}

// TestConfigFilePrecedenceOtherCommands checks command line > environment
// > file > default for a command other than run, through the whole
// command (verify, stopped after its settings as validate runs it).
func TestConfigFilePrecedenceOtherCommands(t *testing.T) {
	path := writeConfig(t, "clickhouse-addr: file:1\nclickhouse-database: fromfile\ntopic-prefix: f.\n")
	t.Setenv("SLUICE_CLICKHOUSE_DATABASE", "fromenv")
	t.Setenv("SLUICE_TOPIC_PREFIX", "e.")
	cmd, err := resolveSettings(t.Context(), []string{"verify", "--config", path, "--topic-prefix", "c."})
	if err != nil {
		t.Fatal(err)
	}
	for flag, want := range map[string]string{"clickhouse-addr": "file:1", "clickhouse-database": "fromenv", "topic-prefix": "c.", "clickhouse-user": "default"} {
		if got := cmd.Flags().Lookup(flag).Value.String(); got != want {
			t.Errorf("--%s = %q, want %q", flag, got, want)
		}
	}
}

// TestConfigFileRefusals checks what a config file may not do, and that
// the error says where and why.
func TestConfigFileRefusals(t *testing.T) {
	tests := []struct {
		name, file string
		want       []string
	}{
		{"unknown key, suggestion", "http-addr: x:1\nkafka-broker: k:9092\n", []string{"line 2", `unknown setting "kafka-broker"`, `did you mean "kafka-brokers"?`}},
		{"unknown key, nothing near", "zzzzzzzzzz: 1\n", []string{`unknown setting "zzzzzzzzzz"`}},
		{"another command's misspelt key", "ratte: 5\n", []string{`did you mean "rate"?`}},
		{"help is no setting", "help: true\n", []string{`unknown setting "help"`}},
		{"config names a config", "config: other.yaml\n", []string{"config: a config file cannot name another"}},
		{"key twice", "workers: 1\nworkers: 2\n", []string{`"workers" is set twice (first on line 1)`}},
		{"mapping value", "http-addr: {host: a}\n", []string{"http-addr: want a string value, got a mapping"}},
		{"list for one value", "workers: [1, 2]\n", []string{"workers: want one int value, got a list of 2"}},
		{"list of lists", "kafka-brokers: [[a]]\n", []string{"kafka-brokers: want a list of values, got a list in it"}},
		{"not a mapping", "- a\n- b\n", []string{"want a mapping of settings"}},
		{"bad duration", "batch-linger: soon\n", []string{"line 1: batch-linger:", "invalid"}},
		{"secret not shown", "mqtt-password: [a, b]\n", []string{"mqtt-password: want one string value"}},
		{"bad yaml", "a: [\n", []string{"config "}},
		{"two documents", "workers: 1\n---\nworkers: 2\n", []string{"want one YAML document of settings, found more"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.file)
			err := applyConfigFile(findCmd(t, "run"), path)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "config "+path) {
				t.Errorf("error %q does not name the file first", err)
			}
		})
	}
}

// TestConfigFileValues checks how YAML values reach the flags.
func TestConfigFileValues(t *testing.T) {
	path := writeConfig(t, `partitions: 0x10
token: [a,b, "c d"]
mqtt-route: devices/+/t=iot_telemetry
kafka-brokers: one:1
http-addr: ~
memory-limit: 256MiB
anchor: &w 3
workers: *w
`)
	// "anchor" is nobody's key: take it out to test aliases.
	b, _ := os.ReadFile(path)
	b = bytes.Replace(b, []byte("anchor: &w 3\nworkers: *w\n"), []byte("batch-max-events: &w 3\nworkers: *w\n"), 1)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	c := findCmd(t, "run")
	if err := applyConfigFile(c, path); err != nil {
		t.Fatal(err)
	}
	for flag, want := range map[string]string{
		"partitions": "16", "token": "[a,b,c d]", "mqtt-route": "[devices/+/t=iot_telemetry]",
		"kafka-brokers": "[one:1]", "http-addr": "", "memory-limit": "256MiB", "workers": "3",
	} {
		if got := lookupFlag(c, flag).Value.String(); got != want {
			t.Errorf("--%s = %q, want %q", flag, got, want)
		}
	}
}

// TestConfigFileLogSettings checks that log-level and log-format from the
// file (or the environment) take effect for every command, not only run,
// and that a bad one is refused naming where it came from.
func TestConfigFileLogSettings(t *testing.T) {
	saved := slog.Default()
	t.Cleanup(func() { slog.SetDefault(saved) })

	root := newRootCmd()
	root.SetOut(new(bytes.Buffer))
	root.SetArgs([]string{"version", "--config", writeConfig(t, "log-format: json\nlog-level: warn\n")})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if _, ok := slog.Default().Handler().(*slog.JSONHandler); !ok {
		t.Errorf("log-format json in the file: handler %T", slog.Default().Handler())
	}
	if slog.Default().Enabled(t.Context(), slog.LevelInfo) || !slog.Default().Enabled(t.Context(), slog.LevelWarn) {
		t.Error("log-level warn in the file did not take effect")
	}

	path := writeConfig(t, "log-level: loud\n")
	for _, tt := range []struct {
		file string
		env  map[string]string
		want string
	}{
		{file: path, want: "config " + path + `: --log-level "loud"`},
		{file: writeConfig(t, "log-format: text\n"), env: map[string]string{"SLUICE_LOG_FORMAT": "xml"}, want: `SLUICE_LOG_FORMAT: --log-format "xml"`},
	} {
		for k, v := range tt.env {
			t.Setenv(k, v)
		}
		root := newRootCmd()
		root.SetArgs([]string{"loadgen", "--config", tt.file})
		cmd, err := root.ExecuteC()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("error %v, want %q", err, tt.want)
		}
		if code := exitCode(cmd, err, new(bytes.Buffer)); code != exitUsage {
			t.Errorf("exit status %d, want %d", code, exitUsage)
		}
	}
}

// TestExitCodes checks the exit statuses `sluice --help` promises.
func TestExitCodes(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want int
		msg  string
	}{
		{"help", []string{"--help"}, exitOK, ""},
		{"unknown command", []string{"rnu"}, exitUsage, `unknown command "rnu" for "sluice" (did you mean "run"?)`},
		{"unknown flag", []string{"run", "--htp-addr", "x"}, exitUsage, "Run 'sluice run --help' for usage."},
		{"bad flag value", []string{"loadgen", "--rate", "fast"}, exitUsage, "--rate"},
		{"stray argument", []string{"run", "now"}, exitUsage, "unknown command"},
		{"bad env value", []string{"dev"}, exitUsage, "SLUICE_WORKERS"},
		{"bad setting", []string{"run", "--role", "boss"}, exitUsage, "--role"},
		{"missing config file", []string{"version", "--config", "/nonexistent/sluice.yaml"}, exitUsage, "no such file"},
		{"verify usage", []string{"verify", "--wait", "long"}, exitUsage, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "bad env value" {
				t.Setenv("SLUICE_WORKERS", "many")
			}
			root := newRootCmd()
			var out bytes.Buffer
			root.SetOut(&out)
			root.SetErr(&out)
			root.SetArgs(tt.args)
			cmd, err := root.ExecuteC()
			var stderr bytes.Buffer
			if code := exitCode(cmd, err, &stderr); code != tt.want {
				t.Errorf("exit status %d, want %d (error %v)", code, tt.want, err)
			}
			if !strings.Contains(stderr.String()+out.String(), tt.msg) {
				t.Errorf("output %q lacks %q", stderr.String()+out.String(), tt.msg)
			}
		})
	}
	if code := exitCode(nil, errors.New("kafka went away"), new(bytes.Buffer)); code != exitFailed {
		t.Errorf("a run-time error: exit status %d, want %d", code, exitFailed)
	}
	if code := exitCode(nil, exitError{code: 1}, new(bytes.Buffer)); code != 1 {
		t.Errorf("verify's discrepancies: exit status %d, want 1", code)
	}
}

func TestSuggestion(t *testing.T) {
	known := map[string]bool{"http-addr": true, "kafka-brokers": true, "workers": true, "rate": true}
	for key, want := range map[string]string{
		"htp-addr": "http-addr", "kafka_brokers": "kafka-brokers", "worker": "workers", "HTTP-ADDR": "", "banana-split": "",
	} {
		got := suggestion(key, known)
		if want == "" && got != "" || want != "" && !strings.Contains(got, `"`+want+`"`) {
			t.Errorf("suggestion(%q) = %q, want %q", key, got, want)
		}
	}
	if d := editDistance("kitten", "sitting"); d != 3 {
		t.Errorf("editDistance(kitten, sitting) = %d, want 3", d)
	}
}

// TestConfigFileFromEnvironment checks that SLUICE_CONFIG names the file
// like --config, and that --config wins over it.
func TestConfigFileFromEnvironment(t *testing.T) {
	t.Setenv("SLUICE_CONFIG", writeConfig(t, "clickhouse-database: fromenvfile\n"))
	cmd, err := resolveSettings(t.Context(), []string{"verify"})
	if err != nil {
		t.Fatal(err)
	}
	if got := cmd.Flags().Lookup("clickhouse-database").Value.String(); got != "fromenvfile" {
		t.Errorf("--clickhouse-database = %q from the file SLUICE_CONFIG names, want fromenvfile", got)
	}
	cmd, err = resolveSettings(t.Context(), []string{"verify", "--config", writeConfig(t, "clickhouse-database: fromflagfile\n")})
	if err != nil {
		t.Fatal(err)
	}
	if got := cmd.Flags().Lookup("clickhouse-database").Value.String(); got != "fromflagfile" {
		t.Errorf("--clickhouse-database = %q, want fromflagfile: --config wins over SLUICE_CONFIG", got)
	}
}
