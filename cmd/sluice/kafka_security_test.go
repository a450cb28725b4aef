package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/sluicehq/sluice/internal/testkit"
)

// TestKafkaSecuritySettings runs `sluice run` up to its settings with the
// Kafka TLS and SASL flags given on the command line, in the environment
// and in a config file: valid ones get as far as the --role error, invalid
// ones fail naming the flag, and no error shows the password.
func TestKafkaSecuritySettings(t *testing.T) {
	const password = "pw-Zq81-not-for-errors"
	ca := testkit.NewCA(t)
	pwFile := filepath.Join(t.TempDir(), "kafka-password")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	scram := []string{"--kafka-sasl-mechanism", "scram-sha-256", "--kafka-sasl-username", "sluice"}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		file    string
		wantErr string // empty: valid, run stops at the --role error
	}{
		{name: "plaintext", args: nil},
		{name: "system roots", args: []string{"--kafka-tls"}},
		{name: "CA file", args: []string{"--kafka-tls-ca", ca.Path("ca.pem")}},
		{name: "mutual TLS", args: []string{"--kafka-tls-ca", ca.Path("ca.pem"), "--kafka-tls-cert", ca.Path("client.pem"), "--kafka-tls-key", ca.Path("client-key.pem")}},
		{name: "SCRAM, password file", args: append(scram, "--kafka-sasl-password-file", pwFile)},
		{name: "SCRAM, password in the environment", args: scram, env: map[string]string{"SLUICE_KAFKA_SASL_PASSWORD": password}},
		{name: "config file", file: "kafka-tls-ca: " + ca.Path("ca.pem") + "\nkafka-sasl-mechanism: SCRAM-SHA-512\nkafka-sasl-username: sluice\nkafka-sasl-password-file: " + pwFile + "\n"},
		{name: "unknown mechanism", args: []string{"--kafka-sasl-mechanism", "gssapi", "--kafka-sasl-username", "sluice", "--kafka-sasl-password-file", pwFile},
			wantErr: `--kafka-sasl-mechanism "gssapi": want plain, scram-sha-256 or scram-sha-512`},
		{name: "no password", args: scram, wantErr: "--kafka-sasl-mechanism scram-sha-256 needs --kafka-sasl-password-file"},
		{name: "no user", args: []string{"--kafka-sasl-mechanism", "plain", "--kafka-sasl-password-file", pwFile}, wantErr: "needs --kafka-sasl-username"},
		{name: "password without mechanism", env: map[string]string{"SLUICE_KAFKA_SASL_PASSWORD": password}, wantErr: "without --kafka-sasl-mechanism"},
		{name: "password twice", args: append(scram, "--kafka-sasl-password-file", pwFile), env: map[string]string{"SLUICE_KAFKA_SASL_PASSWORD": password},
			wantErr: "give --kafka-sasl-password-file or --kafka-sasl-password, not both"},
		{name: "missing CA", args: []string{"--kafka-tls-ca", ca.Path("nope.pem")}, wantErr: "--kafka-tls-ca: open"},
		{name: "key without cert", args: []string{"--kafka-tls-key", ca.Path("client-key.pem")}, wantErr: "give both --kafka-tls-cert and --kafka-tls-key"},
		{name: "missing password file", args: append(scram, "--kafka-sasl-password-file", pwFile+".nope"), wantErr: "--kafka-sasl-password-file: open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := resolveRun(t, tt.args, tt.env, tt.file)
			switch {
			case err == nil:
				t.Fatal("no error, want at least the --role one")
			case strings.Contains(err.Error(), password):
				t.Fatalf("error shows the password: %v", err)
			case tt.wantErr == "" && !strings.Contains(err.Error(), "--role"):
				t.Fatalf("error %v, want only the --role error", err)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestKafkaSecurityDocExamples checks that every key of the config file
// examples in docs/security.md's Kafka section is a setting of `sluice run`,
// so that the documentation cannot drift from the flags.
func TestKafkaSecurityDocExamples(t *testing.T) {
	b, err := os.ReadFile("../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Kafka\n")
	if !ok {
		t.Fatal("docs/security.md has no ## Kafka section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	run := newRunCmd()
	blocks := 0
	for _, part := range strings.Split(section, "```yaml\n")[1:] {
		block, _, _ := strings.Cut(part, "```")
		var settings map[string]any
		if err := yaml.Unmarshal([]byte(block), &settings); err != nil {
			t.Fatalf("example %d: %v", blocks+1, err)
		}
		for key := range settings {
			if run.Flags().Lookup(key) == nil {
				t.Errorf("example %d: %q is not a flag of sluice run", blocks+1, key)
			}
		}
		blocks++
	}
	if blocks < 2 {
		t.Errorf("%d config file examples found, want the MSK and Confluent ones", blocks)
	}
}

// TestReadmeProductionExample: the config file the README's "Run it in
// production" shows uses only settings of sluice run.
func TestReadmeProductionExample(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Run it in production\n")
	if !ok {
		t.Fatal("README has no ## Run it in production section")
	}
	_, block, ok := strings.Cut(section, "```yaml\n")
	if !ok {
		t.Fatal("the README's production section has no config file example")
	}
	block, _, _ = strings.Cut(block, "```")
	var settings map[string]any
	if err := yaml.Unmarshal([]byte(block), &settings); err != nil {
		t.Fatal(err)
	}
	run := newRunCmd()
	for key := range settings {
		if run.Flags().Lookup(key) == nil {
			t.Errorf("README example: %q is not a flag of sluice run", key)
		}
	}
	if len(settings) < 10 {
		t.Errorf("README example has %d settings, want the whole production example", len(settings))
	}
}
