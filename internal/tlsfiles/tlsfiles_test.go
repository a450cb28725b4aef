package tlsfiles_test

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/internal/tlsfiles"
)

func TestClientConfig(t *testing.T) {
	ca := testkit.NewCA(t)
	cfg, err := tlsfiles.Client{CA: ca.Path("ca.pem"), Cert: ca.Path("client.pem"), Key: ca.Path("client-key.pem")}.Config("--kafka-tls")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RootCAs == nil || len(cfg.Certificates) != 1 {
		t.Errorf("config without the CA or the client certificate: %+v", cfg)
	}
	for _, tc := range []struct {
		name string
		c    tlsfiles.Client
		want string
	}{
		{"cert without key", tlsfiles.Client{Cert: ca.Path("client.pem")}, "give both --kafka-tls-cert and --kafka-tls-key"},
		{"CA file without certificates", tlsfiles.Client{CA: ca.Path("client-key.pem")}, "--kafka-tls-ca: " + ca.Path("client-key.pem") + ": no PEM certificates"},
		{"missing CA", tlsfiles.Client{CA: ca.Path("nope.pem")}, "--kafka-tls-ca: open"},
		{"key of another certificate", tlsfiles.Client{Cert: ca.Path("client.pem"), Key: ca.Path("server-key.pem")}, "--kafka-tls-cert/--kafka-tls-key:"},
	} {
		_, err := tc.c.Config("--kafka-tls")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}

func TestServer(t *testing.T) {
	ca := testkit.NewCA(t)
	cfg, err := tlsfiles.Server("--http-tls", ca.Path("server.pem"), ca.Path("server-key.pem"), ca.Path("ca.pem"))
	if err != nil || cfg.ClientCAs == nil {
		t.Fatalf("Server: %v, %+v", err, cfg)
	}
	if _, err := tlsfiles.Server("--http-tls", ca.Path("server.pem"), "", ""); err == nil || !strings.Contains(err.Error(), "--http-tls-key") {
		t.Errorf("Server without a key: %v", err)
	}
}
