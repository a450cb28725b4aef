package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestSecretValue: a secret comes from its file, the environment or the
// command line (with a warning naming the file flag); never both, never an
// empty file, and no error or log line shows it.
func TestSecretValue(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	if err := os.WriteFile(file, []byte("s3cret-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		args       []string
		want, err  string
		warnsAbout string
	}{
		{"file", []string{"--kafka-sasl-password-file", file}, "s3cret-from-file", "", ""},
		{"command line", []string{"--kafka-sasl-password", "s3cret-arg"}, "s3cret-arg", "", "--kafka-sasl-password-file"},
		{"both", []string{"--kafka-sasl-password", "s3cret-arg", "--kafka-sasl-password-file", file}, "", "not both", ""},
		{"empty file", []string{"--kafka-sasl-password-file", empty}, "", "is empty", ""},
		{"missing file", []string{"--kafka-sasl-password-file", filepath.Join(dir, "nope")}, "", "--kafka-sasl-password-file: open", ""},
		{"none", nil, "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := pflag.NewFlagSet("t", pflag.ContinueOnError)
			registerSecret(f, "kafka-sasl-password", "SASL password")
			if err := f.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			got, err := secretValue(f, "kafka-sasl-password", slog.New(slog.NewTextHandler(&logs, nil)))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error shows the secret: %v", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
			if tc.warnsAbout != "" && !strings.Contains(logs.String(), tc.warnsAbout) {
				t.Errorf("no warning naming %s: %q", tc.warnsAbout, logs.String())
			}
			if tc.warnsAbout == "" && logs.Len() > 0 {
				t.Errorf("unexpected log: %q", logs.String())
			}
			if strings.Contains(logs.String(), "s3cret") {
				t.Errorf("log shows the secret: %q", logs.String())
			}
		})
	}
}

// TestSecretFromEnvNotWarned: SLUICE_<FLAG> is a place for secrets (it is
// not in ps), so it gives no warning.
func TestSecretFromEnvNotWarned(t *testing.T) {
	t.Setenv("SLUICE_MQTT_PASSWORD", "s3cret-env")
	cmd := newRunCmd()
	if err := applyEnv(cmd); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	got, err := secretValue(cmd.Flags(), "mqtt-password", slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil || got != "s3cret-env" || logs.Len() > 0 {
		t.Errorf("got %q, %v, logs %q", got, err, logs.String())
	}
}
