package testkit

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Mosquitto is a private Debian mosquitto broker for a test: its own config,
// port, persistence directory and log file (never the test's output). It
// raises max_queued_messages far above the default 1000, past which
// mosquitto silently drops QoS 1 messages for an offline persistent
// session: a test that kills a subscriber would otherwise lose messages to
// the broker, not to the code under test.
type Mosquitto struct {
	// Addr is host:port of the listener; URL is tcp://Addr.
	Addr, URL string
	// Dir holds the config, the persistence file and the log.
	Dir string
	// LogPath is mosquitto's log file.
	LogPath string

	t    testing.TB
	bin  string
	conf string
	cmd  *exec.Cmd
	exit chan error
}

// StartMosquitto starts mosquitto on a free loopback port, anonymous, with
// persistence in a temporary directory; extraConf lines are appended to
// its config. It is stopped when t ends.
func StartMosquitto(t testing.TB, extraConf string) *Mosquitto {
	t.Helper()
	m := &Mosquitto{t: t, bin: LookPath(t, "mosquitto"), Dir: t.TempDir()}
	m.Addr = FreeAddr(t)
	m.URL = "tcp://" + m.Addr
	m.LogPath = filepath.Join(m.Dir, "mosquitto.log")
	_, port, _ := net.SplitHostPort(m.Addr)
	conf := []string{
		"listener " + port + " 127.0.0.1",
		"allow_anonymous true",
		"persistence true",
		"persistence_location " + m.Dir + "/",
		"max_queued_messages 1000000",
		"max_queued_bytes 0",
		"max_inflight_messages 1000",
		"log_dest file " + m.LogPath,
		"log_type error",
		"log_type warning",
		"log_type notice",
		"log_type information",
	}
	if os.Geteuid() == 0 {
		// As root mosquitto switches to the user "mosquitto", which cannot
		// write into the test's private directory.
		if u, err := user.Current(); err == nil {
			conf = append(conf, "user "+u.Username)
		}
	}
	m.conf = filepath.Join(m.Dir, "mosquitto.conf")
	if err := os.WriteFile(m.conf, []byte(strings.Join(conf, "\n")+"\n"+extraConf+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m.Start()
	t.Cleanup(m.Stop)
	return m
}

// Start starts the broker (again, after Stop) on the same port and
// persistence, and waits until it accepts connections.
func (m *Mosquitto) Start() {
	m.t.Helper()
	if m.cmd != nil {
		m.t.Fatal("mosquitto already running")
	}
	cmd := exec.Command(m.bin, "-c", m.conf)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("start mosquitto: %v", err)
	}
	m.cmd, m.exit = cmd, make(chan error, 1)
	go func() { m.exit <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", m.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-m.exit:
			m.cmd = nil
			m.t.Fatalf("mosquitto exited: %v\n%s\n%s", err, stderr.String(), tailFile(m.LogPath, 20))
		default:
		}
		if time.Now().After(deadline) {
			m.Stop()
			m.t.Fatalf("mosquitto does not listen on %s\n%s", m.Addr, tailFile(m.LogPath, 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops the broker gracefully (SIGTERM, so that it saves its
// persistence file), killing it after 10 s.
func (m *Mosquitto) Stop() {
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exit:
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.exit
	}
	m.cmd = nil
}

// Publish runs `mosquitto_pub -q 1 -l` as one device: it publishes each
// line of lines to topic at QoS 1 (MQTT 3.1.1, like most devices) and
// returns once the broker has acknowledged them all, or fails the test.
func (m *Mosquitto) Publish(t testing.TB, topic string, lines []string) {
	t.Helper()
	if err := m.PublishCmd(t, topic, "").runLines(lines); err != nil {
		t.Errorf("mosquitto_pub to %s: %v", topic, err)
	}
}

// Publisher is one mosquitto_pub process.
type Publisher struct{ cmd *exec.Cmd }

// PublishCmd prepares `mosquitto_pub -q 1 -l -t topic` with a client id
// (empty: mosquitto_pub picks one); feed it with runLines or use Cmd.
func (m *Mosquitto) PublishCmd(t testing.TB, topic, clientID string) *Publisher {
	t.Helper()
	host, port, _ := net.SplitHostPort(m.Addr)
	args := []string{"-h", host, "-p", port, "-q", "1", "-l", "-t", topic}
	if clientID != "" {
		args = append(args, "-i", clientID)
	}
	return &Publisher{cmd: exec.Command(LookPath(t, "mosquitto_pub"), args...)}
}

// Cmd is the prepared command, for tests that stream into its stdin.
func (p *Publisher) Cmd() *exec.Cmd { return p.cmd }

func (p *Publisher) runLines(lines []string) error {
	var in bytes.Buffer
	for _, l := range lines {
		in.WriteString(l)
		in.WriteByte('\n')
	}
	p.cmd.Stdin = &in
	out, err := p.cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return "127.0.0.1:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
