package syslog

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testkit"
)

// TestLogger sends with util-linux logger, the real sender, over TCP
// (octet-counted and newline-delimited) and UDP, in RFC 5424 and RFC 3164,
// and checks every line against the SPEC's mapping.
func TestLogger(t *testing.T) {
	logger := testkit.LookPath(t, "logger")
	r := startRig(t, Config{DeriveIDs: true})
	_, tcpPort, _ := net.SplitHostPort(r.c.TCPAddr().String())
	_, udpPort, _ := net.SplitHostPort(r.c.UDPAddr().String())
	hostname, _ := os.Hostname()
	type tcase struct {
		name      string
		transport []string
		port      string
		rfc5424   bool
	}
	var cases []tcase
	for _, f := range []string{"rfc5424", "rfc3164"} {
		cases = append(cases,
			tcase{"tcp-octet-" + f, []string{"--tcp", "--octet-count"}, tcpPort, f == "rfc5424"},
			tcase{"tcp-newline-" + f, []string{"--tcp"}, tcpPort, f == "rfc5424"},
			tcase{"udp-" + f, []string{"--udp"}, udpPort, f == "rfc5424"},
		)
	}
	const perCase = 3
	for _, c := range cases {
		format := "--rfc3164"
		if c.rfc5424 {
			format = "--rfc5424"
		}
		args := append([]string{"-n", "127.0.0.1", "-P", c.port, format, "-t", "app-" + c.name,
			"-p", "local3.warning", "--id=4242", "--msgid", "MID-" + c.name,
			"--sd-id", "order@32473", "--sd-param", `id="A-17"`, "--sd-param", `note="two words"`}, c.transport...)
		cmd := exec.Command(logger, args...)
		var lines []string
		for i := range perCase {
			lines = append(lines, fmt.Sprintf("%s line %d", c.name, i))
		}
		cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("logger %v: %v\n%s", args, err, out)
		}
	}
	evs := byMessage(r.logs(t, perCase*len(cases)))
	for _, c := range cases {
		for i := range perCase {
			msg := fmt.Sprintf("%s line %d", c.name, i)
			ev := evs[msg]
			if ev == nil {
				t.Errorf("%s: %q missing", c.name, msg)
				continue
			}
			checkLoggerEvent(t, c.name, c.rfc5424, ev, hostname)
		}
	}
	if n := len(r.k.ReadTopic(t, testkit.StreamTopic(Stream))); n != perCase*len(cases) {
		t.Errorf("%d events in Kafka, want %d", n, perCase*len(cases))
	}
	if dl := r.k.DeadLetters(t); len(dl) != 0 {
		t.Errorf("dead letters: %+v", dl)
	}
}

func checkLoggerEvent(t *testing.T, name string, rfc5424 bool, ev map[string]any, hostname string) {
	t.Helper()
	if ev["service"] != "app-"+name || ev["level"] != "warn" {
		t.Errorf("%s: service %v, level %v", name, ev["service"], ev["level"])
	}
	if host, _ := ev["host"].(string); host == "" || !strings.HasPrefix(host, strings.Split(hostname, ".")[0]) {
		t.Errorf("%s: host %v, want %s", name, ev["host"], hostname)
	}
	ts, err := time.Parse(time.RFC3339Nano, ev["ts"].(string))
	if err != nil || time.Since(ts).Abs() > time.Minute {
		t.Errorf("%s: ts %v", name, ev["ts"])
	}
	if id, _ := ev["event_id"].(string); len(id) != 36 {
		t.Errorf("%s: event_id %v", name, ev["event_id"])
	}
	attrs, _ := ev["attrs"].(map[string]any)
	want := map[string]any{"facility": "local3", "procid": "4242"}
	if rfc5424 {
		// logger sends msgid and structured data in RFC 5424 only.
		want["msgid"] = "MID-" + name
		want["order@32473.id"] = "A-17"
		want["order@32473.note"] = "two words"
		want["timeQuality.tzKnown"] = "1"
	}
	for k, v := range want {
		if attrs[k] != v {
			t.Errorf("%s: attrs[%s] = %v, want %v (attrs %v)", name, k, attrs[k], v, attrs)
		}
	}
}
