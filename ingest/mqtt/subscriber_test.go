package mqtt

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/internal/testkit"
)

// running is a Subscriber started by a test, with its metrics.
type running struct {
	sub    *Subscriber
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

// startSubscriber runs a Subscriber against m with handler h; it is stopped
// when t ends unless the test stops it first.
func startSubscriber(t *testing.T, m *testkit.Mosquitto, h *Handler, tweak func(*SubscriberConfig)) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := SubscriberConfig{Broker: m.URL, Handler: h, ClientID: "sluice-test", ShareGroup: DefaultShareGroup,
		Grace: 500 * time.Millisecond, Logger: testkit.QuietLogger(), Registerer: reg}
	if tweak != nil {
		tweak(&cfg)
	}
	sub, err := NewSubscriber(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{sub: sub, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- sub.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	r.waitSubscribed(t)
	return r
}

// waitSubscribed waits until the subscriber is connected and its
// subscriptions are in place (published messages would be lost before).
func (r *running) waitSubscribed(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for testkit.Metric(t, r.reg, "sluice_mqtt_connected", nil) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("subscriber not connected after 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The SUBACK follows the CONNACK closely; the subscriber logs it but
	// has no metric, so give it a moment.
	time.Sleep(200 * time.Millisecond)
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("subscriber Run: %v", err)
		}
		r.done <- nil // a second stop returns at once
	case <-time.After(20 * time.Second):
		t.Error("subscriber did not stop within 20 s")
	}
}

// deviceLines is n telemetry payloads without device_id (the topic gives
// it), each distinct.
func deviceLines(n, offset int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = telemetry("", float64(offset+i))
	}
	return out
}

// waitEvents waits until the stream topic holds at least n events and
// returns them.
func waitEvents(t *testing.T, k *testkit.Kafka, stream string, n int, timeout time.Duration) []event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		evs := decodeEvents(t, k.ReadTopic(t, testkit.StreamTopic(stream)))
		if len(evs) >= n || time.Now().After(deadline) {
			return evs
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// publishAll runs one mosquitto_pub -q 1 -l per device concurrently.
func publishAll(t *testing.T, m *testkit.Mosquitto, byTopic map[string][]string) {
	t.Helper()
	var wg sync.WaitGroup
	for topic, lines := range byTopic {
		wg.Go(func() { m.Publish(t, topic, lines) })
	}
	wg.Wait()
}

// TestSubscriberDelivers: several mosquitto_pub devices publish QoS 1 to
// mosquitto; every event lands in Kafka exactly once with device_id from
// the topic, and an invalid payload lands in sluice.dlq with its topic.
func TestSubscriberDelivers(t *testing.T) {
	k := testkit.StartKafka(t)
	m := testkit.StartMosquitto(t, "")
	h := newTestHandler(t, k, true)
	r := startSubscriber(t, m, h, nil)

	const devices, perDevice = 4, 500
	byTopic := map[string][]string{}
	for d := range devices {
		byTopic[fmt.Sprintf("devices/dev-%d/telemetry", d)] = deviceLines(perDevice, d*perDevice)
	}
	byTopic["devices/broken/telemetry"] = []string{`{"device_id": "x", "metrics": `}
	publishAll(t, m, byTopic)

	evs := waitEvents(t, k, "iot_telemetry", devices*perDevice, 30*time.Second)
	ids := map[string]bool{}
	perDev := map[string]int{}
	for _, e := range evs {
		ids[e.EventID] = true
		perDev[e.DeviceID]++
	}
	if len(evs) != devices*perDevice || len(ids) != len(evs) {
		t.Errorf("%d events, %d distinct ids; want %d of each", len(evs), len(ids), devices*perDevice)
	}
	for d := range devices {
		if n := perDev[fmt.Sprintf("dev-%d", d)]; n != perDevice {
			t.Errorf("device dev-%d: %d events, want %d (by device: %v)", d, n, perDevice, perDev)
		}
	}
	dead := k.DeadLetters(t)
	if len(dead) != 1 || dead[0].Origin != "devices/broken/telemetry" || dead[0].Source != Source {
		t.Errorf("dead letters = %+v, want one from devices/broken/telemetry", dead)
	}
	r.stop(t)
	if v := testkit.Metric(t, r.reg, "sluice_mqtt_connected", nil); v != 0 {
		t.Errorf("sluice_mqtt_connected = %v after stop, want 0", v)
	}
	if got := testkit.Metric(t, r.reg, "sluice_mqtt_connects_total", nil); got != 1 {
		t.Errorf("sluice_mqtt_connects_total = %v, want 1", got)
	}
}

// TestSubscriberKafkaOutage: while Kafka refuses writes the subscriber
// holds at most max-inflight messages and acknowledges none, mosquitto
// keeps the rest; a subscriber stopped meanwhile leaves its messages with
// the broker, and once Kafka is back a new one (same client id) delivers
// every message exactly once.
func TestSubscriberKafkaOutage(t *testing.T) {
	k := testkit.StartKafka(t)
	out := kafkaOutage(k)
	m := testkit.StartMosquitto(t, "")
	h, hreg := newTestHandlerReg(t, k, true)
	const maxInflight = 50
	limit := func(c *SubscriberConfig) { c.MaxInflight = maxInflight }
	r := startSubscriber(t, m, h, limit)

	out.Down()
	const devices, perDevice = 4, 1000
	byTopic := map[string][]string{}
	for d := range devices {
		byTopic[fmt.Sprintf("devices/out-%d/telemetry", d)] = deviceLines(perDevice, d*perDevice)
	}
	// The publishers finish: the broker acknowledges them and queues the
	// messages for the session.
	publishAll(t, m, byTopic)
	time.Sleep(2 * time.Second)
	inflight := testkit.Metric(t, hreg, "sluice_mqtt_inflight_messages", nil)
	received := testkit.Metric(t, hreg, "sluice_mqtt_messages_received_total", nil)
	if inflight > maxInflight || received > maxInflight {
		t.Errorf("during the outage: %v messages in flight, %v received; want at most %d", inflight, received, maxInflight)
	}
	if inflight < maxInflight/2 {
		t.Errorf("during the outage: %v messages in flight, want about %d (is the broker sending?)", inflight, maxInflight)
	}
	if evs := decodeEvents(t, k.ReadTopic(t, testkit.StreamTopic("iot_telemetry"))); len(evs) != 0 {
		t.Errorf("%d events in Kafka during the outage, want 0", len(evs))
	}

	// Stopped during the outage: nothing acknowledged, all redelivered.
	r.stop(t)
	out.Up()
	startSubscriber(t, m, h, limit)
	evs := waitEvents(t, k, "iot_telemetry", devices*perDevice, 40*time.Second)
	ids := map[string]bool{}
	for _, e := range evs {
		ids[e.EventID] = true
	}
	if len(ids) != devices*perDevice {
		t.Errorf("%d distinct events in Kafka (%d records), want %d", len(ids), len(evs), devices*perDevice)
	}
	if len(evs) != len(ids) {
		t.Errorf("%d records for %d events: nothing was acked during the outage, so nothing should repeat", len(evs), len(ids))
	}
}

// TestSubscriberBrokerRestart: the subscriber reconnects after mosquitto
// restarts, resumes its persistent session and delivers what was published
// before and after. Mosquitto 2.0 restores plain subscriptions from its
// persistence file but not shared ones: with a share group, messages
// published after the restart and before the subscriber has reconnected
// (and subscribed again) are not delivered (docs/mqtt.md says so). The test
// publishes after the reconnection in both modes, and while reconnecting
// in the plain one.
func TestSubscriberBrokerRestart(t *testing.T) {
	for _, group := range []string{"", DefaultShareGroup} {
		t.Run("share="+group, func(t *testing.T) {
			k := testkit.StartKafka(t)
			m := testkit.StartMosquitto(t, "")
			h := newTestHandler(t, k, true)
			r := startSubscriber(t, m, h, func(c *SubscriberConfig) { c.ShareGroup = group })
			publishAll(t, m, map[string][]string{"devices/before/telemetry": deviceLines(100, 0)})
			waitEvents(t, k, "iot_telemetry", 100, 20*time.Second)

			m.Stop()
			waitGauge(t, r.reg, "sluice_mqtt_connected", 0)
			m.Start()
			want := map[string]int{"before": 100, "after": 100}
			if group == "" {
				publishAll(t, m, map[string][]string{"devices/during/telemetry": deviceLines(100, 200)})
				want["during"] = 100
			}
			waitGauge(t, r.reg, "sluice_mqtt_connects_total", 2)
			r.waitSubscribed(t)
			publishAll(t, m, map[string][]string{"devices/after/telemetry": deviceLines(100, 100)})
			evs := waitEvents(t, k, "iot_telemetry", 100*len(want), 30*time.Second)
			by := map[string]int{}
			for _, e := range evs {
				by[e.DeviceID]++
			}
			if fmt.Sprint(by) != fmt.Sprint(want) {
				t.Errorf("events by device = %v, want %v", by, want)
			}
		})
	}
}

// waitGauge waits up to 15 s for a metric to reach want.
func waitGauge(t *testing.T, g prometheus.Gatherer, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for testkit.Metric(t, g, name, nil) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v after 15 s, want %v", name, testkit.Metric(t, g, name, nil), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNewSubscriberChecksConfig(t *testing.T) {
	k := testkit.StartKafka(t)
	h := newTestHandler(t, k, true)
	for _, tt := range []struct {
		cfg SubscriberConfig
		err string
	}{
		{SubscriberConfig{Broker: "tcp://localhost:1883"}, "no handler"},
		{SubscriberConfig{Broker: "localhost:1883", Handler: h}, "want tcp://"},
		{SubscriberConfig{Broker: "http://localhost:1883", Handler: h}, "want tcp://"},
		{SubscriberConfig{Broker: "tcp://localhost", Handler: h}, "a host and a port"},
		{SubscriberConfig{Broker: "tcp://u:secret@localhost:1883", Handler: h}, "--mqtt-password-file"},
		{SubscriberConfig{Broker: "tcp://localhost:1883", Handler: h, MaxInflight: 70000}, "Receive Maximum"},
	} {
		_, err := NewSubscriber(tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("NewSubscriber(%s): err = %v, want one containing %q", tt.cfg.Broker, err, tt.err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("error shows the password: %v", err)
		}
	}
	s, err := NewSubscriber(SubscriberConfig{Broker: "ssl://localhost:8883", Handler: h, ShareGroup: "g",
		Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"$share/g/devices/+/telemetry", "$share/g/services/+/logs"}
	if got := s.Filters(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Filters() = %v, want %v", got, want)
	}
	if !IsTLS(s.broker) || s.cfg.ClientID != DefaultClientID() || s.cfg.MaxInflight != DefaultMaxInflight {
		t.Errorf("defaults not applied: %+v", s.cfg)
	}
}

// TestSubscriberAwayQueued: messages published while the collector is
// stopped wait in its persistent session and arrive when it comes back.
func TestSubscriberAwayQueued(t *testing.T) {
	for _, group := range []string{"", DefaultShareGroup} {
		t.Run("share="+group, func(t *testing.T) {
			k := testkit.StartKafka(t)
			m := testkit.StartMosquitto(t, "")
			h := newTestHandler(t, k, true)
			share := func(c *SubscriberConfig) { c.ShareGroup = group }
			r := startSubscriber(t, m, h, share)
			r.stop(t)
			publishAll(t, m, map[string][]string{"devices/away/telemetry": deviceLines(100, 0)})
			startSubscriber(t, m, h, share)
			if evs := waitEvents(t, k, "iot_telemetry", 100, 15*time.Second); len(evs) != 100 {
				t.Errorf("%d events, want the 100 published while the collector was away", len(evs))
			}
		})
	}
}
