package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

const secret = `s3cr"et,tok`

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// resolveTokens takes tokens whole from both sources, refuses empty ones,
// warns about flag values, and never shows a token.
func TestResolveTokens(t *testing.T) {
	tests := []struct {
		name     string
		flag     []string
		file     string // content; "" means no --token-file
		want     []string
		wantErr  string
		wantWarn bool
	}{
		{name: "none", want: nil},
		{name: "flag, comma kept", flag: []string{secret, "b"}, want: []string{secret, "b"}, wantWarn: true},
		{name: "file", file: "# ops team\n\n  " + secret + "  \r\nother\n#last\n", want: []string{secret, "other"}},
		{name: "both", flag: []string{"a"}, file: "b\n", want: []string{"a", "b"}, wantWarn: true},
		{name: "empty flag value", flag: []string{secret, ""}, wantErr: "value 2 is empty"},
		{name: "blank flag value", flag: []string{"  "}, wantErr: "value 1 is empty"},
		{name: "empty file", file: "\n", wantErr: "no token in it"},
		{name: "comments only", file: "# " + secret + "\n\n", wantErr: "no token in it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			f := pflag.NewFlagSet("test", pflag.ContinueOnError)
			var flagTokens []string
			var file string
			registerTokenFlags(f, &flagTokens, &file)
			args := []string{}
			for _, tok := range tt.flag {
				args = append(args, "--token", tok)
			}
			if tt.file != "" {
				args = append(args, "--token-file", writeFile(t, tt.file))
			}
			if err := f.Parse(args); err != nil {
				t.Fatal(err)
			}
			got, err := resolveTokens(f, flagTokens, file, log)
			if strings.Contains(logs.String(), secret) || (err != nil && strings.Contains(err.Error(), secret)) {
				t.Errorf("a token shows in the log %q or the error %v", logs.String(), err)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("tokens %q, want %q", got, tt.want)
			}
			if warned := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "--token-file"); warned != tt.wantWarn {
				t.Errorf("warning naming --token-file logged: %v, want %v (log: %s)", warned, tt.wantWarn, logs.String())
			}
		})
	}
}

// An empty token from any source fails `run` and `dev` at start-up,
// before anything is started, without showing the other tokens.
func TestEmptyTokenRefused(t *testing.T) {
	empty := writeFile(t, "# nothing yet\n")
	tests := []struct {
		name string
		args []string
		env  map[string]string
		file string // config file content
	}{
		{name: "flag", args: []string{"--token", secret, "--token", ""}},
		{name: "env", env: map[string]string{"SLUICE_TOKEN": ""}},
		{name: "config", file: "token: \"\"\n"},
		{name: "config null", file: "token:\n"},
		{name: "config empty list", file: "token: []\n"},
		{name: "empty token file", args: []string{"--token-file", empty}},
		{name: "empty token file from env", env: map[string]string{"SLUICE_TOKEN_FILE": empty}},
		{name: "empty token file path", env: map[string]string{"SLUICE_TOKEN_FILE": ""}},
	}
	for _, cmdName := range []string{"run", "dev"} {
		for _, tt := range tests {
			t.Run(cmdName+"/"+tt.name, func(t *testing.T) {
				for k, v := range tt.env {
					t.Setenv(k, v)
				}
				// A data dir that cannot be made: should the token check
				// pass, dev fails there instead of starting a broker.
				args := []string{cmdName, "--role", "nonsense"}
				if cmdName == "dev" {
					args = []string{cmdName, "--data-dir", "/proc/sluice-test"}
				}
				args = append(args, tt.args...)
				if tt.file != "" {
					args = append(args, "--config", writeFile(t, tt.file))
				}
				root := newRootCmd()
				root.SetArgs(args)
				err := root.Execute()
				if err == nil || !strings.Contains(err.Error(), "token") {
					t.Fatalf("error %v, want the empty token refused", err)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows a token: %v", err)
				}
			})
		}
	}
}

// Tokens are taken whole from every source: a comma or a quote in one
// neither splits it nor fails.
func TestTokensTakenWhole(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		file string
		want []string
	}{
		{name: "flags", args: []string{"--token", secret, "--token", "b"}, want: []string{secret, "b"}},
		{name: "env", env: map[string]string{"SLUICE_TOKEN": secret}, want: []string{secret}},
		{name: "config list", file: "token: [\"" + strings.ReplaceAll(secret, `"`, `\"`) + "\", b]\n", want: []string{secret, "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, err := resolveRun(t, tt.args, tt.env, tt.file)
			if err == nil || !strings.Contains(err.Error(), "--role") {
				t.Fatalf("error %v, want only the --role error", err)
			}
			got, gerr := cmd.Flags().GetStringArray("token")
			if gerr != nil {
				t.Fatal(gerr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("--token = %q, want %q", got, tt.want)
			}
		})
	}
}
