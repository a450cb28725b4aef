package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// resolveRun runs `sluice run` with args, the environment env and, when
// file is not empty, a config file holding it, and an invalid --role, which
// stops run right after its settings are resolved, before it connects to
// anything. It returns the run command, whose flags hold the settings, and
// run's error: the --role one when every setting was valid.
func resolveRun(t *testing.T, args []string, env map[string]string, file string) (*cobra.Command, error) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	args = append([]string{"run", "--role", "nonsense"}, args...)
	if file != "" {
		path := filepath.Join(t.TempDir(), "sluice.yaml")
		if err := os.WriteFile(path, []byte(file), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", path)
	}
	root := newRootCmd()
	root.SetArgs(args)
	cmd, _, _ := root.Find(args)
	return cmd, root.Execute()
}

// TestSettingsPrecedence checks that a setting comes from the command line,
// else the environment, else the config file, else the default.
func TestSettingsPrecedence(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		file    string
		want    string // --http-addr
		wantErr string
	}{
		{name: "default", want: "127.0.0.1:8080"},
		{name: "file", file: "http-addr: 0.0.0.0:1\n", want: "0.0.0.0:1"},
		{name: "env beats file", file: "http-addr: 0.0.0.0:1\n", env: map[string]string{"SLUICE_HTTP_ADDR": "0.0.0.0:2"}, want: "0.0.0.0:2"},
		{name: "flag beats env and file", args: []string{"--http-addr", "0.0.0.0:3"}, file: "http-addr: 0.0.0.0:1\n",
			env: map[string]string{"SLUICE_HTTP_ADDR": "0.0.0.0:2"}, want: "0.0.0.0:3"},
		{name: "list in file", file: "kafka-brokers: [a:1, b:2]\n", want: "127.0.0.1:8080"},
		{name: "unknown key", file: "htp-addr: x\n", wantErr: `unknown setting "htp-addr"`},
		{name: "bad value", file: "partitions: many\n", wantErr: "partitions"},
		{name: "bad log level in file", file: "log-level: nonsense\n", wantErr: `--log-level "nonsense"`},
		{name: "plan size not positive in file", file: "max-body-bytes: 0\n", wantErr: "--max-body-bytes 0: must be positive"},
		{name: "bad env value", env: map[string]string{"SLUICE_PARTITIONS": "many"}, wantErr: "SLUICE_PARTITIONS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, err := resolveRun(t, tt.args, tt.env, tt.file)
			var got string
			if f := cmd.Flags().Lookup("http-addr"); f != nil {
				got = f.Value.String()
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "--role") {
				t.Fatalf("error %v, want only the --role error", err)
			}
			if got != tt.want {
				t.Errorf("--http-addr = %q, want %q", got, tt.want)
			}
		})
	}
}
