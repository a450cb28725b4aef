package nats

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/internal/tlsfiles"
	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks"
)

// TestConnectSecure connects to an embedded server that requires TLS and a
// login, and checks that a refused login or certificate fails at once with
// a RefusedError that never shows the secret, in the error or the log.
func TestConnectSecure(t *testing.T) {
	ca := testkit.NewCA(t)
	const password, token = "s3cret-pw", "s3cret-token"
	withPassword := testkit.StartSecureNATS(t, ca, testkit.NATSAuth{User: "sluice", Password: password}, false)
	withToken := testkit.StartSecureNATS(t, ca, testkit.NATSAuth{Token: token}, false)
	mutual := testkit.StartSecureNATS(t, ca, testkit.NATSAuth{User: "sluice", Password: password}, true)
	trusted, err := tlsfiles.Client{CA: ca.Path("ca.pem")}.Config("--nats-tls")
	if err != nil {
		t.Fatal(err)
	}
	withCert, err := tlsfiles.Client{CA: ca.Path("ca.pem"), Cert: ca.Path("client.pem"), Key: ca.Path("client-key.pem")}.Config("--nats-tls")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		o      Options
		reason string // empty: connects
	}{
		{"user and password", Options{URL: withPassword.URL(), User: "sluice", Password: password, TLS: trusted}, ""},
		{"credentials in the URL", Options{URL: "nats://sluice:" + password + "@" + withPassword.Addr, TLS: trusted}, ""},
		{"token in the URL", Options{URL: "nats://" + token + "@" + withToken.Addr, TLS: trusted}, ""},
		{"client certificate", Options{URL: mutual.URL(), User: "sluice", Password: password, TLS: withCert}, ""},
		{"wrong password", Options{URL: withPassword.URL(), User: "sluice", Password: "not-" + password, TLS: trusted}, sinks.RefusedLogin},
		{"wrong password in the URL", Options{URL: "nats://sluice:not-" + password + "@" + withPassword.Addr, TLS: trusted}, sinks.RefusedLogin},
		{"wrong token", Options{URL: "nats://not-" + token + "@" + withToken.Addr, TLS: trusted}, sinks.RefusedLogin},
		{"system roots", Options{URL: withPassword.URL(), User: "sluice", Password: password, TLS: &tls.Config{MinVersion: tls.VersionTLS12}}, sinks.RefusedTLS},
		{"no client certificate", Options{URL: mutual.URL(), User: "sluice", Password: password, TLS: trusted}, sinks.RefusedTLS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			tc.o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			pub, err := Connect(tc.o)
			if err == nil {
				defer pub.Close()
				if !pub.nc.IsConnected() {
					t.Errorf("connected = false")
				}
			}
			var r *sinks.RefusedError
			switch {
			case tc.reason == "" && err != nil:
				t.Fatalf("Connect: %v", err)
			case tc.reason != "" && (!errors.As(err, &r) || r.Reason != tc.reason):
				t.Fatalf("Connect: %v, want a %s RefusedError; log:\n%s", err, tc.reason, logs.String())
			}
			if err != nil && (strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "127.0.0.1")) {
				t.Errorf("error shows a secret or not the server: %v", err)
			}
			if strings.Contains(logs.String(), "s3cret") {
				t.Errorf("log shows a secret: %s", logs.String())
			}
			t.Logf("%s: %v\n%s", tc.name, err, logs.String())
		})
	}
}

// TestConnectCreds logs in to a server in operator mode with a real
// credentials file (user JWT and nkey seed), publishes and receives; a
// user of an account the server does not know is refused at once.
func TestConnectCreds(t *testing.T) {
	srv := testkit.StartOperatorNATS(t)
	pub, err := Connect(Options{URL: srv.URL(), CredsFile: srv.Creds, Logger: testkit.QuietLogger()})
	if err != nil {
		t.Fatalf("Connect with creds: %v", err)
	}
	defer pub.Close()
	sub := subscribe(t, srv.URL(), natsgo.UserCredentials(srv.Creds))
	st := testkit.Stream(t, "iot_telemetry")
	rows := []sinks.Row{{Offset: 1, Event: schemas.Event{ID: "e1", Key: "d1"}, Value: []byte(`{"event_id":"e1"}`)}}
	if err := pub.Publish(context.Background(), st, 0, rows); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if msg, err := sub.NextMsg(10 * time.Second); err != nil || string(msg.Data) != `{"event_id":"e1"}` {
		t.Fatalf("received %v, %v", msg, err)
	}

	_, err = Connect(Options{URL: srv.URL(), CredsFile: srv.Stranger, Logger: testkit.QuietLogger()})
	var r *sinks.RefusedError
	if !errors.As(err, &r) || r.Reason != sinks.RefusedLogin {
		t.Fatalf("Connect with another operator's creds: %v, want a login RefusedError", err)
	}
	t.Logf("refused: %v", err)
}
