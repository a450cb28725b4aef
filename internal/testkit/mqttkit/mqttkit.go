// Package mqttkit holds the MQTT test helpers that need package mqtt, apart
// from testkit so that package mqtt's own tests can use testkit.
package mqttkit

import (
	"testing"
	"time"

	"github.com/sluicehq/sluice/ingest/mqtt"
	"github.com/sluicehq/sluice/internal/testkit"
)

// EmbeddedOption changes the configuration of the broker, or of its
// handler, that StartEmbeddedMQTT starts.
type EmbeddedOption func(*mqtt.EmbeddedConfig, *mqtt.HandlerConfig)

// StartEmbeddedMQTT runs Sluice's embedded MQTT broker on a free loopback
// port, with the default routes, in front of a gate writing to k; it
// returns once the broker listens. maxInflight 0 takes the default; opts
// change the broker's or its handler's configuration.
func StartEmbeddedMQTT(t testing.TB, k *testkit.Kafka, maxInflight int, opts ...EmbeddedOption) (*mqtt.Embedded, *testkit.Running) {
	t.Helper()
	routes, err := mqtt.ParseRoutes(nil)
	if err != nil {
		t.Fatal(err)
	}
	hcfg := mqtt.HandlerConfig{Gate: testkit.NewGate(t, k, nil), Routes: routes, DeriveIDs: true, Logger: testkit.FileLogger(t, "handler.log")}
	ecfg := mqtt.EmbeddedConfig{Addr: "127.0.0.1:0", MaxInflight: maxInflight, Logger: testkit.FileLogger(t, "broker.log")}
	for _, o := range opts {
		o(&ecfg, &hcfg)
	}
	h, err := mqtt.NewHandler(hcfg)
	if err != nil {
		t.Fatal(err)
	}
	ecfg.Handler = h
	e, err := mqtt.NewEmbedded(ecfg)
	if err != nil {
		t.Fatal(err)
	}
	r := testkit.RunSource(t, e)
	select {
	case <-e.Ready():
	case err := <-r.Done():
		t.Fatalf("embedded broker stopped: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("embedded broker not listening after 10s")
	}
	return e, r
}
