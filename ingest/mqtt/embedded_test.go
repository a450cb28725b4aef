package mqtt_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/ingest/mqtt"
	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/internal/testkit/mqttkit"
)

// device connects an MQTT 5 client, disconnected when t ends.
func device(t *testing.T, addr, id string, onPublish func(paho.PublishReceived) (bool, error)) *paho.Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cfg := paho.ClientConfig{ClientID: id, Conn: conn, PacketTimeout: time.Minute}
	if onPublish != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){onPublish}
	}
	c := paho.NewClient(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c
}

func publish(ctx context.Context, c *paho.Client, topic, payload string) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	resp, err := c.Publish(ctx, &paho.Publish{QoS: 1, Topic: topic, Payload: []byte(payload)})
	if err == nil && resp.ReasonCode >= 0x80 {
		err = errors.New("PUBACK with error reason code")
	}
	return err
}

// Real devices: mosquitto_pub publishes with QoS 1 and exits only once
// acknowledged; what it sent is then in Kafka, device_id taken from the
// topic, and an invalid payload is dead-lettered with its topic.
func TestEmbeddedMosquittoPubToKafka(t *testing.T) {
	pub := testkit.LookPath(t, "mosquitto_pub")
	k := testkit.StartKafka(t)
	e, _ := mqttkit.StartEmbeddedMQTT(t, k, 8)
	host, port, _ := net.SplitHostPort(e.Addr())

	run := func(topic, msg string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, pub, "-h", host, "-p", port, "-q", "1", "-V", "mqttv311", "-t", topic, "-m", msg).CombinedOutput()
		if err != nil {
			t.Fatalf("mosquitto_pub -t %s: %v: %s", topic, err, out)
		}
	}
	run("devices/sensor-7/telemetry", `[{"ts":"2026-11-24T10:00:00Z","metrics":{"t":1}},{"ts":1764000000000,"metrics":{"t":2}}]`)
	run("services/checkout/logs", `{"ts":"2026-11-24T10:00:00Z","level":"nope","message":"x"}`)
	run("not/routed", `anything`) // plain MQTT: acknowledged, not for Kafka

	got := k.ReadTopic(t, testkit.StreamTopic("iot_telemetry"))
	if len(got) != 2 {
		t.Fatalf("iot_telemetry holds %d events, want 2", len(got))
	}
	for _, m := range got {
		var ev struct {
			DeviceID string `json:"device_id"`
			EventID  string `json:"event_id"`
		}
		if err := json.Unmarshal(m.Value, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.DeviceID != "sensor-7" || ev.EventID == "" {
			t.Errorf("event %s: want device_id sensor-7 from the topic and an event_id", m.Value)
		}
	}
	if n := len(k.ReadTopic(t, testkit.StreamTopic("app_logs"))); n != 0 {
		t.Errorf("app_logs holds %d events, want 0 (the only one was invalid)", n)
	}
	dl := k.DeadLetters(t)
	if len(dl) != 1 || dl[0].Origin != "services/checkout/logs" || dl[0].Stream != "app_logs" || !strings.Contains(dl[0].Reason, "level") {
		t.Fatalf("dead letters = %+v, want one for app_logs from services/checkout/logs naming level", dl)
	}
}

// holdProduce makes the embedded Kafka hold the next produce request until
// release is closed; held is closed when it arrives.
func holdProduce(k *testkit.Kafka) (held <-chan struct{}, release func()) {
	h, r := make(chan struct{}), make(chan struct{})
	k.Cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		close(h)
		<-r
		return nil, nil, false // then handle it as usual
	})
	var once sync.Once
	return h, func() { once.Do(func() { close(r) }) }
}

// The device's PUBACK waits for Kafka: while Kafka holds the produce
// request, the publish stays unacknowledged.
func TestEmbeddedPubackWaitsForKafka(t *testing.T) {
	k := testkit.StartKafka(t)
	e, _ := mqttkit.StartEmbeddedMQTT(t, k, 8)
	c := device(t, e.Addr(), "dev-1", nil)
	// A first publish so that metadata and connections are in place.
	if err := publish(t.Context(), c, "devices/d1/telemetry", `{"ts":"2026-11-24T10:00:00Z","metrics":{"t":1}}`); err != nil {
		t.Fatal(err)
	}

	held, release := holdProduce(k)
	t.Cleanup(release)
	acked := make(chan error, 1)
	go func() {
		acked <- publish(context.Background(), c, "devices/d1/telemetry", `{"ts":"2026-11-24T10:00:00Z","metrics":{"t":2}}`)
	}()
	select {
	case <-held:
	case err := <-acked:
		t.Fatalf("publish acknowledged (err %v) before its produce request reached Kafka", err)
	case <-time.After(10 * time.Second):
		t.Fatal("produce request did not reach Kafka within 10s")
	}
	select {
	case err := <-acked:
		t.Fatalf("publish acknowledged (err %v) while Kafka held its events", err)
	case <-time.After(500 * time.Millisecond):
	}
	release()
	if err := <-acked; err != nil {
		t.Fatalf("publish after Kafka acknowledged: %v", err)
	}
	if n := len(k.ReadTopic(t, testkit.StreamTopic("iot_telemetry"))); n != 2 {
		t.Fatalf("iot_telemetry holds %d events, want 2", n)
	}
	if dl := k.DeadLetters(t); len(dl) != 0 {
		t.Fatalf("dead letters: %+v", dl)
	}
}

// At shutdown a publish still waiting for Kafka gets no success
// acknowledgement, and Run returns without waiting for Kafka.
func TestEmbeddedShutdownDoesNotAcknowledge(t *testing.T) {
	k := testkit.StartKafka(t)
	e, run := mqttkit.StartEmbeddedMQTT(t, k, 8)
	c := device(t, e.Addr(), "dev-2", nil)
	if err := publish(t.Context(), c, "devices/d2/telemetry", `{"ts":"2026-11-24T10:00:00Z","metrics":{"t":1}}`); err != nil {
		t.Fatal(err)
	}
	held, release := holdProduce(k)
	t.Cleanup(release)
	// paho notices no broken connection for a publish in flight: its
	// timeout ends the wait, after Run returned.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	acked := make(chan error, 1)
	go func() {
		acked <- publish(ctx, c, "devices/d2/telemetry", `{"ts":"2026-11-24T10:00:00Z","metrics":{"t":2}}`)
	}()
	<-held
	run.Cancel()
	select {
	case err := <-run.Done():
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of its context ending while Kafka was held")
	}
	if err := <-acked; err == nil {
		t.Fatal("publish acknowledged as a success although Kafka never acknowledged it")
	}
}

// Topics no route matches are plain MQTT: subscribers get them.
func TestEmbeddedUnroutedTopicsReachSubscribers(t *testing.T) {
	k := testkit.StartKafka(t)
	e, _ := mqttkit.StartEmbeddedMQTT(t, k, 8)
	got := make(chan string, 1)
	sub := device(t, e.Addr(), "sub", func(p paho.PublishReceived) (bool, error) {
		got <- string(p.Packet.Payload)
		return true, nil
	})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "lights/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	pub := device(t, e.Addr(), "pub", nil)
	if err := publish(ctx, pub, "lights/kitchen", "on"); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if p != "on" {
			t.Fatalf("subscriber got %q, want on", p)
		}
	case <-ctx.Done():
		t.Fatal("subscriber got nothing")
	}
}

// The embedded broker weighs the publishes it handles by their size: with
// bytes for two in flight, a third device's publish waits, unread, until
// one is done, though the count would allow a hundred.
func TestEmbeddedInflightBytes(t *testing.T) {
	k := testkit.StartKafka(t)
	const payload = `{"ts":"2026-11-24T10:00:00Z","metrics":{"t":1}}`
	reg := prometheus.NewRegistry()
	e, _ := mqttkit.StartEmbeddedMQTT(t, k, 100, func(ec *mqtt.EmbeddedConfig, hc *mqtt.HandlerConfig) {
		ec.MaxInflightBytes = 2*(int64(len(payload))+1<<10) + 100 // two publishes, not three
		hc.Registerer = reg
	})
	devs := make([]*paho.Client, 3)
	for i := range devs {
		devs[i] = device(t, e.Addr(), fmt.Sprintf("dev-%d", i), nil)
	}
	// A first publish so that metadata and connections are in place.
	if err := publish(t.Context(), devs[0], "devices/d0/telemetry", payload); err != nil {
		t.Fatal(err)
	}

	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	k.Cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		k.Cluster.KeepControl()
		<-release
		return nil, nil, false
	})
	acked := make(chan error, len(devs))
	for i, c := range devs {
		go func() { acked <- publish(context.Background(), c, fmt.Sprintf("devices/d%d/telemetry", i), payload) }()
	}
	inflight := func() float64 { return testkit.Metric(t, reg, "sluice_mqtt_inflight_messages", nil) }
	testkit.Eventually(t, 10*time.Second, "two publishes handled", func() bool { return inflight() == 2 })
	time.Sleep(300 * time.Millisecond)
	if n := inflight(); n != 2 {
		t.Fatalf("%v publishes handled at once, want 2 (the bytes for two)", n)
	}
	once.Do(func() { close(release) })
	for range devs {
		if err := <-acked; err != nil {
			t.Errorf("publish once Kafka answered: %v", err)
		}
	}
}
