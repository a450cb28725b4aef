package e2e

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/procstat"
	"github.com/sluicehq/sluice/internal/testkit"
)

// hostileConnsGrowth is the most the resident set of `sluice dev
// --memory-limit 256MiB` may grow by while hostile syslog, RELP and MQTT
// connections stall: the planned connections and their budgets come to
// about 10 MiB. Before the connections and the long messages were sized
// from the ceiling, the same connections took 73 MiB.
const hostileConnsGrowth = 32 << 20

// TestHostileConnectionsUnderMemoryLimit opens as many connections as the
// collectors took before --memory-limit sized them (1,024 syslog, 100
// RELP, 1,024 MQTT), each announcing the largest message its protocol
// takes and then stalling in it, against `sluice dev --memory-limit
// 256MiB`. The resident set grows by a bounded amount, the connections
// past the planned bounds are closed, and HTTP producers keep getting 202.
func TestHostileConnectionsUnderMemoryLimit(t *testing.T) {
	usePlainBinary(t)
	syslogAddr, relpAddr, mqttAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	dev, url := startLimitedDev(t, "256MiB", "--syslog-tcp-addr", syslogAddr, "--relp-addr", relpAddr, "--mqtt-addr", mqttAddr)
	pid := dev.cmd.Process.Pid
	before, err := procstat.StatusBytes(pid, "VmRSS")
	if err != nil {
		t.Fatal(err)
	}
	watch := testkit.WatchRSS(t, pid, 256<<20, 100*time.Millisecond)

	// The largest syslog message (64 KiB), octet-counted, a quarter sent.
	stall(t, syslogAddr, 1024, func(int) []byte {
		return append([]byte("65536 <14>1 - h app - - - "), bytes.Repeat([]byte("x"), 16000)...)
	})
	// The largest RELP frame (128 KiB), after the session's open.
	stall(t, relpAddr, 100, func(int) []byte {
		open := "relp_version=0\nrelp_software=librelp,1.2.13,http://librelp.adiscon.com\ncommands=syslog"
		return append([]byte(fmt.Sprintf("1 open %d %s\n2 syslog 131072 <14>1 - h app - - - ", len(open), open)), bytes.Repeat([]byte("y"), 30000)...)
	})
	// A 1 MB QoS 1 publish after CONNECT (MQTT 3.1.1).
	stall(t, mqttAddr, 1024, func(i int) []byte {
		id := fmt.Sprintf("hostile-%d", i)
		connect := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, byte(len(id))}, id...)
		pkt := append([]byte{0x10}, testkit.MQTTRemainingLength(len(connect))...)
		pkt = append(pkt, connect...)
		pkt = append(pkt, 0x32)
		pkt = append(pkt, testkit.MQTTRemainingLength(1_000_000)...)
		pkt = append(pkt, 0, 5, 'a', '/', 'b', '/', 'c', 0, 1)
		return append(pkt, bytes.Repeat([]byte("z"), 20000)...)
	})
	time.Sleep(3 * time.Second)

	if status, body := postEvents(t, url, "iot_telemetry", telemetry("hostile-conns", seqIDs("hostile-conns", 10)...)); status != http.StatusAccepted {
		t.Errorf("an HTTP batch while the connections stalled: %d %v, want 202", status, body)
	}
	watch.Stop()
	r := watch.Report()
	t.Logf("resident %s before the connections; with them %s", testkit.MiB(before), r)
	if r.Err != nil {
		t.Fatalf("sampling the resident set: %v", r.Err)
	}
	if r.Peak-before > hostileConnsGrowth || r.Over > 0 {
		t.Errorf("the stalled connections took the resident set from %s to %s: more than %s", testkit.MiB(before), testkit.MiB(r.Peak), testkit.MiB(hostileConnsGrowth))
	}
	for _, name := range []string{`sluice_syslog_connections_total{result="refused"}`, "sluice_relp_connections_refused_total",
		`sluice_mqtt_embedded_connections_closed_total{reason="max_connections"}`} {
		if metric(t, url, name) == 0 {
			t.Errorf("%s is 0: no connection was refused past the planned bound", name)
		}
	}
}

// stall opens n connections to addr, sends each what first(i) gives
// (without waiting for the server to read it) and leaves them open until
// the test ends. Connections the server refuses are counted by it.
func stall(t *testing.T, addr string, n int, first func(i int) []byte) {
	t.Helper()
	for i := range n {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatalf("connection %d to %s: %v", i, addr, err)
		}
		t.Cleanup(func() { _ = c.Close() })
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.Write(first(i)) // a refused connection may be closed already
	}
}
