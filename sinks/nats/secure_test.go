package nats

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
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
			var logs testkit.LogBuffer
			tc.o.Logger = logs.Logger()
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

// TestGivesUpOnRefusalLogged: when a server the Publisher reconnects to
// refuses the login (the password was changed), nats.go gives up after
// two refusals; that is logged at error level, without the password.
func TestGivesUpOnRefusalLogged(t *testing.T) {
	const password = "s3cret-first"
	srv := startServer(t, func(o *natsserver.Options) { o.Username, o.Password = "sluice", password })
	var logs testkit.LogBuffer
	pub, err := Connect(Options{URL: srv.URL(), User: "sluice", Password: password, Logger: logs.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	srv.stop()
	srv.opts.Password = "s3cret-second"
	srv.start()
	deadline := time.Now().Add(20 * time.Second)
	for !logs.Contains("connection closed for good") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !logs.Contains("level=ERROR") || !strings.Contains(strings.ToLower(logs.String()), "authorization violation") {
		t.Fatalf("no error logged for the refused reconnects:\n%s", logs.String())
	}
	if logs.Contains("s3cret") {
		t.Errorf("the log shows the password:\n%s", logs.String())
	}
}
