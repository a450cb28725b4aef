package httpapi

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/internal/tlsfiles"
)

// TestServerHTTPS serves the collector over HTTPS into an embedded Kafka:
// a client that trusts the CA gets 202, plain HTTP on the same port gets
// 400, a client that does not trust the CA fails its handshake; with a
// client CA, only clients with a certificate it signed are served.
func TestServerHTTPS(t *testing.T) {
	ca := testkit.NewCA(t)
	k := testkit.StartKafka(t)
	c := newTestCollector(t, testkit.NewKafkaProducer(t, k.Brokers), nil)
	trusting := func(withCert bool) *http.Client {
		cl := tlsfiles.Client{CA: ca.Path("ca.pem")}
		if withCert {
			cl.Cert, cl.Key = ca.Path("client.pem"), ca.Path("client-key.pem")
		}
		cfg, err := cl.Config("--test")
		if err != nil {
			t.Fatal(err)
		}
		return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	const event = `{"device_id":"d","ts":1795514400000,"metrics":{"x":1}}`
	post := func(client *http.Client, url string) (int, error) {
		resp, err := client.Post(url+"/v1/streams/iot_telemetry/events", "application/json", strings.NewReader(event))
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}

	var logs testkit.LogBuffer
	addr := serveTLS(t, c, ca, "", logs.Logger())
	if code, err := post(trusting(false), "https://"+addr); err != nil || code != http.StatusAccepted {
		t.Fatalf("HTTPS post: %d, %v; want 202", code, err)
	}
	if code, err := post(&http.Client{Timeout: 20 * time.Second}, "http://"+addr); err != nil || code != http.StatusBadRequest {
		t.Errorf("plain HTTP to the HTTPS port: %d, %v; want 400", code, err)
	}
	var unknown *tls.CertificateVerificationError
	if _, err := post(&http.Client{Timeout: 20 * time.Second}, "https://"+addr); !errors.As(err, &unknown) {
		t.Errorf("client without the CA: %v, want a certificate verification error", err)
	}

	// The server logs the failed handshake once it reads the client's
	// alert, which may be after the client gave up.
	const handshakeLogged = "level=DEBUG msg=\"http: TLS handshake error"
	for deadline := time.Now().Add(5 * time.Second); !logs.Contains(handshakeLogged) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if !logs.Contains(handshakeLogged) || logs.Contains("level=WARN") {
		t.Errorf("failed handshakes not logged at debug level:\n%s", logs.String())
	}

	mutual := serveTLS(t, c, ca, ca.Path("ca.pem"), testkit.FileLogger(t, "https-server.log"))
	if code, err := post(trusting(true), "https://"+mutual); err != nil || code != http.StatusAccepted {
		t.Errorf("HTTPS post with a client certificate: %d, %v; want 202", code, err)
	}
	if code, err := post(trusting(false), "https://"+mutual); err == nil {
		t.Errorf("HTTPS post without a client certificate: %d, want a TLS error", code)
	}
	if n := len(k.ReadTopic(t, testkit.StreamTopic("iot_telemetry"))); n != 2 {
		t.Errorf("%d events in Kafka, want the 2 accepted", n)
	}
}

// serveTLS serves h over HTTPS with the CA's server certificate (and
// clientCA's client certificates, when given), logging to log, until the
// test ends.
func serveTLS(t *testing.T, h http.Handler, ca *testkit.CA, clientCA string, log *slog.Logger) string {
	t.Helper()
	cfg, err := tlsfiles.Server("--http-tls", ca.Path("server.pem"), ca.Path("server-key.pem"), clientCA)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(ServerConfig{Handler: h, TLS: cfg, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, srv)
}
