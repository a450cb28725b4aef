package kafkaconn_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/internal/tlsfiles"
	"github.com/sluicehq/sluice/kafkaconn"
)

const secret = "s3cret-Pa55"

func TestSettingsSecurity(t *testing.T) {
	ca := testkit.NewCA(t)
	for _, tc := range []struct {
		name      string
		s         kafkaconn.Settings
		tls       bool
		mechanism string
	}{
		{"plaintext", kafkaconn.Settings{}, false, ""},
		{"system roots", kafkaconn.Settings{TLS: true}, true, ""},
		{"a CA implies TLS", kafkaconn.Settings{Files: tlsfiles.Client{CA: ca.Path("ca.pem")}}, true, ""},
		{"a client certificate implies TLS", kafkaconn.Settings{Files: tlsfiles.Client{Cert: ca.Path("client.pem"), Key: ca.Path("client-key.pem")}}, true, ""},
		{"plain", kafkaconn.Settings{Mechanism: "plain", Username: "u", Password: secret}, false, "PLAIN"},
		{"scram-sha-256 in capitals", kafkaconn.Settings{Mechanism: "SCRAM-SHA-256", Username: "u", Password: secret}, false, "SCRAM-SHA-256"},
		{"scram-sha-512 over TLS", kafkaconn.Settings{TLS: true, Mechanism: "scram-sha-512", Username: "u", Password: secret}, true, "SCRAM-SHA-512"},
	} {
		sec, err := tc.s.Security()
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if sec.TLS() != tc.tls || sec.Mechanism() != tc.mechanism {
			t.Errorf("%s: TLS %t, mechanism %q; want %t, %q", tc.name, sec.TLS(), sec.Mechanism(), tc.tls, tc.mechanism)
		}
		d := sec.Dialer("test", 0)
		if (d.TLS != nil) != tc.tls || (d.SASLMechanism != nil) != (tc.mechanism != "") {
			t.Errorf("%s: dialer TLS %v, SASL %v", tc.name, d.TLS, d.SASLMechanism)
		}
		tr := sec.Transport("test", 0)
		if (tr.TLS != nil) != tc.tls || (tr.SASL != nil) != (tc.mechanism != "") {
			t.Errorf("%s: transport TLS %v, SASL %v", tc.name, tr.TLS, tr.SASL)
		}
		// The mechanism holds the password: nothing that prints the
		// settings or the security may show it.
		for _, shown := range []string{fmt.Sprint(tc.s), fmt.Sprintf("%+v", tc.s), sec.String(), fmt.Sprintf("%+v", sec), sec.LogValue().String()} {
			if strings.Contains(shown, secret) {
				t.Errorf("%s: password shown in %q", tc.name, shown)
			}
		}
		sec.Close()
	}
}

func TestSettingsErrors(t *testing.T) {
	ca := testkit.NewCA(t)
	for _, tc := range []struct {
		name string
		s    kafkaconn.Settings
		want string
	}{
		{"unknown mechanism", kafkaconn.Settings{Mechanism: "gssapi", Username: "u", Password: secret}, `--kafka-sasl-mechanism "gssapi": want plain, scram-sha-256 or scram-sha-512`},
		{"no user", kafkaconn.Settings{Mechanism: "scram-sha-256", Password: secret}, "--kafka-sasl-mechanism scram-sha-256 needs --kafka-sasl-username"},
		{"no password", kafkaconn.Settings{Mechanism: "plain", Username: "u"}, "--kafka-sasl-mechanism plain needs --kafka-sasl-password-file"},
		{"user without mechanism", kafkaconn.Settings{Username: "u"}, "given without --kafka-sasl-mechanism"},
		{"password without mechanism", kafkaconn.Settings{Password: secret}, "given without --kafka-sasl-mechanism"},
		{"missing CA file", kafkaconn.Settings{Files: tlsfiles.Client{CA: ca.Path("nope.pem")}}, "--kafka-tls-ca: open"},
		{"cert without key", kafkaconn.Settings{TLS: true, Files: tlsfiles.Client{Cert: ca.Path("client.pem")}}, "give both --kafka-tls-cert and --kafka-tls-key"},
	} {
		_, err := tc.s.Security()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error shows the password: %v", tc.name, err)
		}
	}
}
