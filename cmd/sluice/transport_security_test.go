package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/sinks"
)

// TestTransportSecurityFlags: TLS files and credentials that cannot work
// are refused before anything starts, naming the flag, never the secret.
func TestTransportSecurityFlags(t *testing.T) {
	ca := testkit.NewCA(t)
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, tc := range []struct {
		name string
		args []string
		want string // empty: valid
	}{
		{"clickhouse TLS with a CA", []string{"--clickhouse-tls-ca", ca.Path("ca.pem"), "--clickhouse-password-file", pwFile}, ""},
		{"clickhouse CA missing", []string{"--clickhouse-tls-ca", missing}, "--clickhouse-tls-ca: open"},
		{"clickhouse cert without key", []string{"--clickhouse-tls-cert", ca.Path("client.pem")}, "give both --clickhouse-tls-cert and --clickhouse-tls-key"},
		{"clickhouse password twice", []string{"--clickhouse-password", "s3cret", "--clickhouse-password-file", pwFile}, "not both"},
		{"https", []string{"--http-tls-cert", ca.Path("server.pem"), "--http-tls-key", ca.Path("server-key.pem")}, ""},
		{"https without key", []string{"--http-tls-cert", ca.Path("server.pem")}, "give both --http-tls-cert and --http-tls-key"},
		{"https client CA without certificate", []string{"--http-tls-client-ca", ca.Path("ca.pem")}, "--http-tls-key"},
		{"nats user and password", []string{"--nats-user", "u", "--nats-password-file", pwFile, "--nats-tls-ca", ca.Path("ca.pem")}, ""},
		{"nats user without password", []string{"--nats-user", "u"}, "give --nats-user and --nats-password-file together"},
		{"nats credentials twice", []string{"--nats-url", "nats://u:s3cret@127.0.0.1:4222", "--nats-user", "u", "--nats-password-file", pwFile}, "more than one way"},
		{"nats creds missing", []string{"--nats-creds", missing}, "--nats-creds: open"},
		{"nats CA missing", []string{"--nats-tls-ca", missing}, "--nats-tls-ca: open"},
		{"nats settings without a URL", []string{"--nats-url", "", "--nats-user", "u", "--nats-password-file", pwFile}, "need --nats-url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := resolveRun(t, tc.args, nil, "")
			if tc.want == "" {
				if err == nil || !strings.Contains(err.Error(), "--role") {
					t.Fatalf("error %v, want only the --role error", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error shows the secret: %v", err)
			}
		})
	}
}

// TestExplainRefusal: a server's refusal becomes one line naming the flags
// to check, without the client library's error (which could quote what
// the server was sent).
func TestExplainRefusal(t *testing.T) {
	r := &sinks.RefusedError{Sink: "clickhouse", Addr: "db:9440", Reason: sinks.RefusedLogin,
		Detail: `user "sluice": code 516 AUTHENTICATION_FAILED`, Err: errors.New("driver said s3cret")}
	err := explainRefusal(errors.Join(errors.New("start"), r))
	want := `clickhouse db:9440 refused the login: user "sluice": code 516 AUTHENTICATION_FAILED: check --clickhouse-user and --clickhouse-password-file`
	if err.Error() != want || !errors.Is(err, r.Err) {
		t.Errorf("got %q, want %q", err, want)
	}
	other := errors.New("kafka down")
	if explainRefusal(other) != other {
		t.Error("an error that is no refusal was changed")
	}
}

func TestURLHasCredentials(t *testing.T) {
	for url, want := range map[string]bool{
		"nats://127.0.0.1:4222":            false,
		"tls://nats.example.com:4222":      false,
		"nats://u:p@127.0.0.1:4222":        true,
		"nats://token@127.0.0.1:4222":      true,
		"nats://a:4222, nats://u:p@b:4222": true,
		"nats://u:p%zz@bad":                true,
		"":                                 false,
	} {
		if got := urlHasCredentials(url); got != want {
			t.Errorf("urlHasCredentials(%q) = %v, want %v", url, got, want)
		}
	}
}
