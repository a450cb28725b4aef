package mqtt

import (
	"context"
	"net"
	"os/exec"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/internal/tlsfiles"
)

// TestSubscriberTLSAndPassword: the subscriber reaches an ssl:// mosquitto
// listener that requires a client certificate and checks passwords, and
// delivers; a wrong password does not get in.
func TestSubscriberTLSAndPassword(t *testing.T) {
	ca := testkit.NewCA(t)
	passwd := ca.Path("passwd")
	if out, err := exec.Command(testkit.LookPath(t, "mosquitto_passwd"), "-c", "-b", passwd, "sluice", "s3cret").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	tlsAddr := testkit.FreeAddr(t)
	_, tlsPort, _ := net.SplitHostPort(tlsAddr)
	// Anonymous clients (the test's mosquitto_pub) use the plain listener;
	// a client that gives a user name must give its password.
	m := testkit.StartMosquitto(t, "password_file "+passwd+"\n"+
		"listener "+tlsPort+" 127.0.0.1\n"+
		"cafile "+ca.Path("ca.pem")+"\ncertfile "+ca.Path("server.pem")+"\nkeyfile "+ca.Path("server-key.pem")+"\n"+
		"require_certificate true\n")

	k := testkit.StartKafka(t)
	h := newTestHandler(t, k, true)
	tlsCfg, err := tlsfiles.Client{CA: ca.Path("ca.pem"), Cert: ca.Path("client.pem"), Key: ca.Path("client-key.pem")}.Config("--mqtt-tls")
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

}
