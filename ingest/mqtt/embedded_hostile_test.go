package mqtt_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/ingest/mqtt"
	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/internal/testkit/mqttkit"
)

// hostileRig is an embedded broker with the bounds a test chose, in front
// of an embedded Kafka, with its metrics in reg.
type hostileRig struct {
	k   *testkit.Kafka
	e   *mqtt.Embedded
	run *testkit.Running
	reg *prometheus.Registry
	n   int // events a normal device sent so far
}

// startHostile runs the embedded broker with mqttkit.StartEmbeddedMQTT,
// with cfg's bounds (Addr, Handler, Logger and Registerer are set there and
// here).
func startHostile(t *testing.T, cfg mqtt.EmbeddedConfig) *hostileRig {
	t.Helper()
	r := &hostileRig{k: testkit.StartKafka(t), reg: prometheus.NewRegistry()}
	r.e, r.run = mqttkit.StartEmbeddedMQTT(t, r.k, cfg.MaxInflight, func(ec *mqtt.EmbeddedConfig, _ *mqtt.HandlerConfig) {
		cfg.Addr, cfg.Logger, cfg.Registerer = ec.Addr, ec.Logger, r.reg
		*ec = cfg
	})
	return r
}

// metric sums the series of the broker's metric sluice_mqtt_embedded_NAME
// whose reason label is reason (any, if empty).
func (r *hostileRig) metric(t *testing.T, name, reason string) float64 {
	t.Helper()
	var labels map[string]string
	if reason != "" {
		labels = map[string]string{"reason": reason}
	}
	return testkit.Metric(t, r.reg, "sluice_mqtt_embedded_"+name, labels)
}

// closes fails t unless the broker counts n connections closed for
// reason within a second (it counts once mochi is done with one, a moment
// after the client sees it closed).
func (r *hostileRig) closes(t *testing.T, reason string, n int) {
	t.Helper()
	var got float64
	deadline := time.Now().Add(time.Second)
	for got = r.metric(t, "connections_closed_total", reason); got != float64(n) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		got = r.metric(t, "connections_closed_total", reason)
	}
	if got != float64(n) {
		t.Errorf("%s closes: %v, want %d", reason, got, n)
	}
}

// mosquittoPub publishes msg with QoS 1 as a real device; it returns once
// the broker acknowledged it.
func (r *hostileRig) mosquittoPub(t *testing.T, topic, msg string) error {
	t.Helper()
	pub := testkit.LookPath(t, "mosquitto_pub")
	host, port, _ := net.SplitHostPort(r.e.Addr())
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, pub, "-h", host, "-p", port, "-q", "1", "-V", "mqttv311", "-t", topic, "-m", msg).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mosquitto_pub -t %s: %w: %s", topic, err, out)
	}
	return nil
}

// deviceFlows fails t unless a normal device (mosquitto_pub -q 1) still
// gets a publish acknowledged and its event lands in Kafka.
func (r *hostileRig) deviceFlows(t *testing.T) {
	t.Helper()
	r.n++
	msg := fmt.Sprintf(`{"ts":"2026-11-30T10:00:00Z","metrics":{"n":%d}}`, r.n)
	if err := r.mosquittoPub(t, "devices/normal/telemetry", msg); err != nil {
		t.Fatal(err)
	}
	got := r.k.ReadTopic(t, testkit.StreamTopic("iot_telemetry"))
	found := false
	for _, m := range got { // across partitions: in no particular order
		found = found || bytes.Contains(m.Value, fmt.Appendf(nil, `"n":%d`, r.n))
	}
	if len(got) != r.n || !found {
		t.Fatalf("iot_telemetry holds %d events, want %d, one with n %d (found: %v)", len(got), r.n, r.n, found)
	}
}

func (r *hostileRig) dial(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", r.e.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// closedByServer waits up to d for the server to close conn, and reports
// whether it did (data it sends first, a CONNACK say, is skipped).
func closedByServer(conn net.Conn, d time.Duration) bool {
	_ = conn.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// connectPacket is an MQTT 3.1.1 CONNECT with a clean session.
func connectPacket(id string, keepalive uint16) []byte {
	var vh bytes.Buffer
	vh.Write([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02})
	_ = binary.Write(&vh, binary.BigEndian, keepalive)
	_ = binary.Write(&vh, binary.BigEndian, uint16(len(id)))
	vh.WriteString(id)
	return append([]byte{0x10, byte(vh.Len())}, vh.Bytes()...)
}

// connectRaw opens a connection and completes an MQTT 3.1.1 CONNECT on it.
func (r *hostileRig) connectRaw(t *testing.T, id string, keepalive uint16) net.Conn {
	t.Helper()
	c := r.dial(t)
	if _, err := c.Write(connectPacket(id, keepalive)); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("CONNACK %x: %v", ack, err)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c
}

// allocated is what the process allocated so far, freed or not.
func allocated() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

func heapAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestEmbeddedHostileGarbage: 1 MiB of random bytes, sent as the first
// bytes of a connection, after a CONNECT byte (so that they are read as a
// remaining length and a CONNECT), and after a whole CONNECT, closes the
// connection each time, for several seeds; the broker stays up and a
// normal device keeps flowing.
func TestEmbeddedHostileGarbage(t *testing.T) {
	r := startHostile(t, mqtt.EmbeddedConfig{ConnectTimeout: time.Minute, MaxKeepalive: time.Minute})
	for _, tc := range []struct {
		name    string
		connect bool
		prefix  []byte
	}{
		{"raw", false, nil},
		{"after a CONNECT byte", false, []byte{0x10}},
		{"after CONNECT", true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for seed := range uint64(8) {
				garbage := make([]byte, 1<<20)
				rng := rand.New(rand.NewPCG(seed, 1))
				for i := range garbage {
					garbage[i] = byte(rng.Uint32())
				}
				var c net.Conn
				if tc.connect {
					c = r.connectRaw(t, fmt.Sprintf("garbage-%d", seed), 0)
				} else {
					c = r.dial(t)
				}
				_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				_, _ = c.Write(append(tc.prefix, garbage...)) // fails once the broker closes
				if !closedByServer(c, 3*time.Second) {
					t.Errorf("seed %d (%x...): connection still open 3s after the garbage", seed, garbage[:4])
				}
			}
			r.deviceFlows(t)
		})
	}
}

// TestEmbeddedHostileHugeRemainingLength: a fixed header announcing the
// largest remaining length (256 MiB), in place of CONNECT or of a PUBLISH
// after it, closes the connection at once, and the broker allocates
// nothing like it.
func TestEmbeddedHostileHugeRemainingLength(t *testing.T) {
	r := startHostile(t, mqtt.EmbeddedConfig{ConnectTimeout: time.Minute, MaxKeepalive: time.Minute})
	r.deviceFlows(t) // Kafka's topics, connections and buffers are in place
	for _, tc := range []struct {
		name    string
		connect bool
		header  byte
	}{
		{"CONNECT", false, 0x10},
		{"PUBLISH", true, 0x32},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runtime.GC()
			heap, total := heapAlloc(), allocated()
			var c net.Conn
			if tc.connect {
				c = r.connectRaw(t, "huge", 0)
			} else {
				c = r.dial(t)
			}
			if _, err := c.Write([]byte{tc.header, 0xFF, 0xFF, 0xFF, 0x7F, 0, 1, 'x'}); err != nil {
				t.Fatal(err)
			}
			closed := closedByServer(c, 2*time.Second)
			grewHeap, allocd := int64(heapAlloc())-int64(heap), allocated()-total
			t.Logf("heap grew %d KiB, %d KiB allocated", grewHeap>>10, allocd>>10)
			if allocd > 64<<20 || grewHeap > 64<<20 {
				t.Errorf("the broker allocated %d MiB (heap grew %d MiB) for a packet it should have refused", allocd>>20, grewHeap>>20)
			}
			if !closed {
				t.Fatal("connection still open 2s after announcing 256 MiB")
			}
			r.deviceFlows(t)
		})
	}
	r.closes(t, "packet_too_large", 2)
}

// TestEmbeddedHostileBigPublish: a 10 MB PUBLISH, from paho (MQTT 5) and
// from a hand-built MQTT 3.1.1 stream, is never acknowledged: the broker
// closes the connection at its fixed header, MQTT 5 clients were told the
// bound, and a normal device keeps flowing.
func TestEmbeddedHostileBigPublish(t *testing.T) {
	const maxPacket = 256 << 10
	r := startHostile(t, mqtt.EmbeddedConfig{MaxPacketBytes: maxPacket})
	r.deviceFlows(t)
	big := `{"ts":"2026-11-30T10:00:00Z","metrics":{"x":1},"pad":"` + strings.Repeat("a", 10_000_000) + `"}`

	t.Run("paho", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", r.e.Addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c := paho.NewClient(paho.ClientConfig{ClientID: "big", Conn: conn, PacketTimeout: 10 * time.Second})
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		ca, err := c.Connect(ctx, &paho.Connect{ClientID: "big", CleanStart: true, KeepAlive: 30})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
		if mps := ca.Properties.MaximumPacketSize; mps == nil || *mps != maxPacket {
			t.Errorf("CONNACK maximum packet size %v, want %d", mps, maxPacket)
		}
		// paho notices the closed connection, but the publish waits for
		// its context all the same.
		pubCtx, cancelPub := context.WithTimeout(ctx, 3*time.Second)
		defer cancelPub()
		if err := publish(pubCtx, c, "devices/big/telemetry", big); err == nil {
			t.Fatal("10 MB publish acknowledged")
		}
		select {
		case <-c.Done():
		case <-time.After(time.Second):
			t.Fatal("paho's connection still open after its 10 MB publish")
		}
	})
	t.Run("hand-built", func(t *testing.T) {
		c := r.connectRaw(t, "big-raw", 30)
		var pk bytes.Buffer
		pk.WriteByte(0x32) // PUBLISH, QoS 1
		topic := "devices/big/telemetry"
		pk.Write(testkit.MQTTRemainingLength(2 + len(topic) + 2 + len(big)))
		_ = binary.Write(&pk, binary.BigEndian, uint16(len(topic)))
		pk.WriteString(topic)
		pk.Write([]byte{0, 1})
		pk.WriteString(big)
		acked := make(chan struct{})
		go func() { // a PUBACK would come before the broker closes
			defer close(acked)
			b := make([]byte, 4)
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if n, _ := io.ReadFull(c, b); n > 0 {
				t.Errorf("broker answered %x to a 10 MB publish", b[:n])
			}
		}()
		total := allocated()
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err := c.Write(pk.Bytes())
		<-acked
		if err == nil {
			t.Error("the broker took all 10 MB")
		}
		allocd := allocated() - total
		t.Logf("%d KiB allocated while the 10 MB were sent", allocd>>10)
		if allocd > 10<<20 {
			t.Errorf("%d MiB allocated meanwhile: the broker read the 10 MB packet", allocd>>20)
		}
	})
	r.closes(t, "packet_too_large", 2)
	r.deviceFlows(t)
	if n := len(r.k.DeadLetters(t)); n != 0 {
		t.Errorf("%d dead letters: the big publish reached the handler", n)
	}
}

// TestEmbeddedHostileStalls: a connection that sends nothing, or half a
// CONNECT, is closed after ConnectTimeout; one that connected with keep
// alive 0 and stalls in the middle of a PUBLISH is closed after 1.5
// MaxKeepalive (mochi would wait forever); MQTT 5 clients asking for keep
// alive 0 are told MaxKeepalive. A normal device flows meanwhile.
func TestEmbeddedHostileStalls(t *testing.T) {
	r := startHostile(t, mqtt.EmbeddedConfig{ConnectTimeout: time.Second, MaxKeepalive: 2 * time.Second})
	r.deviceFlows(t)
	start := time.Now()
	idle := r.dial(t)
	half := r.dial(t)
	if _, err := half.Write(connectPacket("half", 60)[:9]); err != nil {
		t.Fatal(err)
	}
	stalled := r.connectRaw(t, "stalled", 0)
	connected := time.Now()
	if _, err := stalled.Write([]byte{0x32, 100, 0, 21, 'd', 'e', 'v'}); err != nil {
		t.Fatal(err)
	}
	r.deviceFlows(t)
	for name, c := range map[string]net.Conn{"idle": idle, "half a CONNECT": half} {
		if !closedByServer(c, 5*time.Second) {
			t.Errorf("%s: still open after 5s", name)
		}
	}
	if d := time.Since(start); d < 900*time.Millisecond || d > 4*time.Second {
		t.Errorf("closed after %s, want the connect timeout, 1s", d)
	}
	if !closedByServer(stalled, 10*time.Second) {
		t.Error("half a PUBLISH after a keep alive of 0: still open after 10s")
	}
	if d := time.Since(connected); d < 2800*time.Millisecond {
		t.Errorf("half a PUBLISH: closed after %s, before 1.5 keep alives (3s)", d)
	}
	r.closes(t, "connect_timeout", 2)
	r.closes(t, "keepalive_timeout", 1)

	conn, err := net.DialTimeout("tcp", r.e.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{ClientID: "ka0", Conn: conn})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: "ka0", CleanStart: true, KeepAlive: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Disconnect(&paho.Disconnect{}) }()
	if ska := ca.Properties.ServerKeepAlive; ska == nil || *ska != 2 {
		t.Errorf("CONNACK server keep alive %v for a keep alive of 0, want 2", ska)
	}
	r.deviceFlows(t)
}

// TestEmbeddedHostileShutdownWithIdleConnection: a connection that never
// sent CONNECT does not hold up the broker's shutdown (mochi's Close
// waits for every connection, and closes only connected clients).
func TestEmbeddedHostileShutdownWithIdleConnection(t *testing.T) {
	r := startHostile(t, mqtt.EmbeddedConfig{ConnectTimeout: time.Minute})
	idle := r.dial(t)
	testkit.Eventually(t, 5*time.Second, "the connection is open", func() bool {
		return r.metric(t, "connections_open", "") == 1
	})
	r.run.Cancel()
	select {
	case err := <-r.run.Done():
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s while a connection had not sent CONNECT")
	}
	if !closedByServer(idle, time.Second) {
		t.Fatal("idle connection still open after Run returned")
	}
}

// TestEmbeddedHostileManyIdleConnections: 2,000 connections that send
// nothing: those beyond MaxConnections are closed at once, the rest after
// ConnectTimeout; meanwhile the broker's heap stays small and a device
// connected before keeps publishing, and afterwards new devices connect
// and publish again.
func TestEmbeddedHostileManyIdleConnections(t *testing.T) {
	const conns, maxConns = 2000, mqtt.DefaultMaxConnections
	// Long enough that the first connections are not closed before the
	// last are accepted, even on a slow machine.
	r := startHostile(t, mqtt.EmbeddedConfig{ConnectTimeout: 8 * time.Second})
	r.deviceFlows(t)
	dev := device(t, r.e.Addr(), "before-the-flood", nil)
	runtime.GC()
	heap := heapAlloc()
	idle := make([]net.Conn, 0, conns)
	for range conns {
		idle = append(idle, r.dial(t))
	}
	testkit.Eventually(t, 5*time.Second, "every connection accepted or refused", func() bool {
		return r.metric(t, "connections_open", "")+r.metric(t, "connections_closed_total", "max_connections") == conns+1
	})
	grew := int64(heapAlloc()) - int64(heap)
	t.Logf("heap grew %d MiB with %v connections open", grew>>20, r.metric(t, "connections_open", ""))
	if grew > 64<<20 {
		t.Errorf("heap grew %d MiB for idle connections", grew>>20)
	}
	if n := r.metric(t, "connections_open", ""); n != maxConns {
		t.Fatalf("%v connections open, want %d", n, maxConns)
	}
	if !closedByServer(r.dial(t), time.Second) {
		t.Error("a connection beyond the bound was not closed at once")
	}
	// The device connected before the flood is not affected.
	if err := publish(t.Context(), dev, "devices/before/telemetry", `{"ts":"2026-11-30T10:00:00Z","metrics":{"t":1}}`); err != nil {
		t.Fatalf("publish from a device connected before the flood: %v", err)
	}
	r.n++
	testkit.Eventually(t, 15*time.Second, "idle connections closed at the connect timeout", func() bool {
		return r.metric(t, "connections_open", "") == 1
	})
	r.closes(t, "connect_timeout", maxConns-1)
	r.deviceFlows(t)
}

// TestEmbeddedHostileOutOfFileDescriptors: while the process has no file
// descriptor left, accepting fails; the listener retries instead of
// stopping (mochi's stops for good), so devices connect again once
// descriptors are free. The limit is the whole test process's: the window
// is kept short, and nothing else in it opens files.
func TestEmbeddedHostileOutOfFileDescriptors(t *testing.T) {
	r := startHostile(t, mqtt.EmbeddedConfig{})
	r.deviceFlows(t)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	restore := func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Errorf("restore the file limit: %v", err)
		}
	}
	t.Cleanup(restore)
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	short := lim
	short.Cur = uint64(len(fds)) + 4 // a few connections' worth, client and server ends
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &short); err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	for range 10 { // until the test's own end of a connection cannot open
		c, err := net.DialTimeout("tcp", r.e.Addr(), time.Second)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	testkit.Eventually(t, 5*time.Second, "an accept failed", func() bool {
		return r.metric(t, "accept_errors_total", "") > 0
	})
	time.Sleep(100 * time.Millisecond) // a few retries
	for _, c := range conns {
		_ = c.Close()
	}
	restore()
	r.deviceFlows(t)
}

// TestEmbeddedHostileStalledLargePublishes: eight clients announce a 200
// KiB publish each and stall after a few bytes of it. With 1 MiB of read
// budget, two of them get their packet allocated (twice its size each)
// and the other six wait before the broker allocates anything for
// theirs; a normal device flows meanwhile. Once the stalled clients go
// away the budget is whole again, and a large publish gets through.
func TestEmbeddedHostileStalledLargePublishes(t *testing.T) {
	const maxPacket, size = 256 << 10, 200 << 10
	r := startHostile(t, mqtt.EmbeddedConfig{MaxPacketBytes: maxPacket, MaxReadBytes: 1 << 20})
	r.deviceFlows(t)
	topic := "devices/large/telemetry"
	header := append([]byte{0x30}, testkit.MQTTRemainingLength(2+len(topic)+size)...) // PUBLISH, QoS 0
	before := allocated()
	var stalled []net.Conn
	for i := range 8 {
		c := r.connectRaw(t, fmt.Sprintf("stalled-%d", i), 60)
		if _, err := c.Write(append(header, 0, byte(len(topic)))); err != nil {
			t.Fatal(err)
		}
		stalled = append(stalled, c)
	}
	testkit.Eventually(t, 5*time.Second, "six connections waiting for the read budget", func() bool {
		return r.metric(t, "read_budget_waits_total", "") >= 6
	})
	r.deviceFlows(t)
	if held := r.metric(t, "read_budget_bytes", ""); held != 2*2*(2+float64(len(topic))+size) {
		t.Errorf("read budget held: %v bytes, want two packets counted twice", held)
	}
	allocd := allocated() - before
	t.Logf("%d KiB allocated while eight 200 KiB packets were announced", allocd>>10)
	if allocd > 3<<20 {
		t.Errorf("%d KiB allocated: more than the two packets the budget allows (eight would be 3.2 MiB)", allocd>>10)
	}

	for _, c := range stalled {
		_ = c.Close()
	}
	testkit.Eventually(t, 10*time.Second, "the read budget given back", func() bool {
		return r.metric(t, "read_budget_bytes", "") == 0
	})
	c := r.connectRaw(t, "large", 60)
	body := `{"ts":"2026-11-30T10:00:00Z","metrics":{"x":1},"pad":"` + strings.Repeat("b", size-200) + `"}`
	var pk bytes.Buffer
	pk.WriteByte(0x32) // PUBLISH, QoS 1
	pk.Write(testkit.MQTTRemainingLength(2 + len(topic) + 2 + len(body)))
	_ = binary.Write(&pk, binary.BigEndian, uint16(len(topic)))
	pk.WriteString(topic)
	pk.Write([]byte{0, 1})
	pk.WriteString(body)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(pk.Bytes()); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil || ack[0] != 0x40 {
		t.Fatalf("PUBACK %x to a 200 KiB publish: %v", ack, err)
	}
}
