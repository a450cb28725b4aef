package mqtt

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/internal/testkit"
)

// testCA issues certificates for a TLS test, written as PEM files in dir.
type testCA struct {
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	ca := &testCA{dir: t.TempDir()}
	ca.cert, ca.key = ca.issue(t, "ca", &x509.Certificate{IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true})
	return ca
}

// issue signs tmpl (self-signed for the CA) and writes NAME.pem and
// NAME-key.pem.
func (ca *testCA) issue(t *testing.T, name string, tmpl *x509.Certificate) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.Subject = pkix.Name{CommonName: "sluice-test-" + name}
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	parent, signer := tmpl, key
	if ca.cert != nil {
		parent, signer = ca.cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(file, typ string, b []byte) {
		if err := os.WriteFile(filepath.Join(ca.dir, file), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(name+".pem", "CERTIFICATE", der)
	write(name+"-key.pem", "EC PRIVATE KEY", kder)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func (ca *testCA) path(file string) string { return filepath.Join(ca.dir, file) }

// TestSubscriberTLSAndPassword: the subscriber reaches an ssl:// mosquitto
// listener that requires a client certificate and checks passwords, and
// delivers; a wrong password does not get in.
func TestSubscriberTLSAndPassword(t *testing.T) {
	ca := newTestCA(t)
	ca.issue(t, "server", &x509.Certificate{IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature})
	ca.issue(t, "client", &x509.Certificate{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature})
	passwd := ca.path("passwd")
	if out, err := exec.Command(testkit.LookPath(t, "mosquitto_passwd"), "-c", "-b", passwd, "sluice", "s3cret").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	tlsAddr := testkit.FreeAddr(t)
	_, tlsPort, _ := net.SplitHostPort(tlsAddr)
	// Anonymous clients (the test's mosquitto_pub) use the plain listener;
	// a client that gives a user name must give its password.
	m := testkit.StartMosquitto(t, "password_file "+passwd+"\n"+
		"listener "+tlsPort+" 127.0.0.1\n"+
		"cafile "+ca.path("ca.pem")+"\ncertfile "+ca.path("server.pem")+"\nkeyfile "+ca.path("server-key.pem")+"\n"+
		"require_certificate true\n")

	k := testkit.StartKafka(t)
	h := newTestHandler(t, k, true)
	tlsCfg, err := TLSConfig(ca.path("ca.pem"), ca.path("client.pem"), ca.path("client-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	startSubscriber(t, m, h, func(c *SubscriberConfig) {
		c.Broker, c.TLS, c.Username, c.Password = "ssl://"+tlsAddr, tlsCfg, "sluice", []byte("s3cret")
	})
	publishAll(t, m, map[string][]string{"devices/tls/telemetry": deviceLines(50, 0)})
	if evs := waitEvents(t, k, "iot_telemetry", 50, 15*time.Second); len(evs) != 50 {
		t.Errorf("%d events over TLS, want 50", len(evs))
	}

	// A wrong password: never connected.
	reg := prometheus.NewRegistry()
	sub, err := NewSubscriber(SubscriberConfig{Broker: "ssl://" + tlsAddr, Handler: h, TLS: tlsCfg, ClientID: "sluice-wrong",
		Username: "sluice", Password: []byte("wrong"), Logger: testkit.QuietLogger(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := sub.Run(ctx); err != nil {
		t.Errorf("Run with a wrong password: %v, want it to keep retrying until stopped", err)
	}
	if v := testkit.Metric(t, reg, "sluice_mqtt_connects_total", nil); v != 0 {
		t.Errorf("connected %v times with a wrong password", v)
	}

	if _, err := TLSConfig(ca.path("ca.pem"), ca.path("client.pem"), ""); err == nil {
		t.Error("TLSConfig accepted a certificate without its key")
	}
	if _, err := TLSConfig(ca.path("client-key.pem"), "", ""); err == nil {
		t.Error("TLSConfig accepted a CA file without certificates")
	}
}
