package testkit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RELPClient is a minimal RELP sender for tests and benchmarks: it opens a
// session and pipelines frames as omrelp does, numbering them 1, 2, ...
// It has no goroutines; the caller reads the answers.
type RELPClient struct {
	Conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	txnr int
}

// RELPFrame is a frame as the client reads it.
type RELPFrame struct {
	Txnr int
	Cmd  string
	Data string
}

// DialRELP connects to addr without opening a session.
func DialRELP(addr string) (*RELPClient, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("dial relp %s: %w", addr, err)
	}
	return &RELPClient{Conn: conn, br: bufio.NewReaderSize(conn, 64<<10), bw: bufio.NewWriterSize(conn, 64<<10)}, nil
}

// OpenRELP connects to addr and opens a session offering syslog; it fails
// t unless the server answers 200 and offers syslog. The connection is
// closed when t ends.
func OpenRELP(t testing.TB, addr string) *RELPClient {
	t.Helper()
	c, err := DialRELP(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Conn.Close() })
	if err := c.Open(); err != nil {
		t.Fatal(err)
	}
	return c
}

// Open sends "open" with librelp's offers and checks the answer.
func (c *RELPClient) Open() error {
	if err := c.Queue("open", []byte("relp_version=0\nrelp_software=testkit\ncommands=syslog")); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return err
	}
	_ = c.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer func() { _ = c.Conn.SetReadDeadline(time.Time{}) }()
	f, err := c.ReadFrame()
	if err != nil {
		return fmt.Errorf("relp open: %w", err)
	}
	if f.Cmd != "rsp" || f.Txnr != c.txnr || !strings.HasPrefix(f.Data, "200 OK\n") || !strings.Contains(f.Data, "commands=syslog") {
		return fmt.Errorf("relp open answered %+v", f)
	}
	return nil
}

// Queue buffers a frame with the next transaction number; Flush sends it.
func (c *RELPClient) Queue(cmd string, data []byte) error {
	c.txnr++
	_, err := c.bw.WriteString(strconv.Itoa(c.txnr) + " " + cmd + " " + strconv.Itoa(len(data)))
	if err == nil && len(data) > 0 {
		_ = c.bw.WriteByte(' ')
		_, err = c.bw.Write(data)
	}
	if err == nil {
		err = c.bw.WriteByte('\n')
	}
	return err
}

// Flush writes the queued frames.
func (c *RELPClient) Flush() error { return c.bw.Flush() }

// Txnr is the transaction number of the last frame queued.
func (c *RELPClient) Txnr() int { return c.txnr }

// ReadFrame reads one frame from the server.
func (c *RELPClient) ReadFrame() (RELPFrame, error) {
	var f RELPFrame
	head, err := c.br.ReadString(' ')
	if err != nil {
		return f, err
	}
	if f.Txnr, err = strconv.Atoi(strings.TrimSuffix(head, " ")); err != nil {
		return f, fmt.Errorf("bad txnr %q", head)
	}
	if f.Cmd, err = c.br.ReadString(' '); err != nil {
		return f, err
	}
	f.Cmd = strings.TrimSuffix(f.Cmd, " ")
	var n int
	for {
		b, err := c.br.ReadByte()
		if err != nil {
			return f, err
		}
		if b == '\n' && n == 0 {
			return f, nil
		}
		if b == ' ' {
			break
		}
		if b < '0' || b > '9' {
			return f, fmt.Errorf("bad datalen byte %q", b)
		}
		n = n*10 + int(b-'0')
	}
	data := make([]byte, n+1)
	if _, err := io.ReadFull(c.br, data); err != nil {
		return f, err
	}
	if data[n] != '\n' {
		return f, errors.New("frame without trailer")
	}
	f.Data = string(data[:n])
	return f, nil
}

// Rsyslog is a private rsyslogd (Debian's, with omrelp) that takes lines on
// a TCP port (imtcp) and forwards them over RELP with a disk-assisted
// queue that survives its own restarts. It never touches the system's
// rsyslog: config, work directory, pid file and log are in a temporary
// directory.
type Rsyslog struct {
	// TCPAddr is where lines are fed to it (newline-framed).
	TCPAddr string
	// Dir holds its config, work directory, pid file and log.
	Dir string
	// Log is the file its stdout and stderr go to.
	Log  string
	cmd  *exec.Cmd
	done chan struct{}
}

// StartRsyslog runs rsyslogd forwarding over RELP to relpAddr with omrelp's
// default window, and stops it when t ends.
func StartRsyslog(t testing.TB, relpAddr string) *Rsyslog {
	t.Helper()
	bin := LookPath(t, "rsyslogd")
	host, port, err := net.SplitHostPort(relpAddr)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r := &Rsyslog{Dir: dir, TCPAddr: FreeAddr(t), Log: filepath.Join(dir, "rsyslogd.log"), done: make(chan struct{})}
	_, tcpPort, _ := net.SplitHostPort(r.TCPAddr)
	if err := os.Mkdir(filepath.Join(dir, "work"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A ruleset of its own keeps rsyslogd's internal messages (start-up,
	// errors) out of what is forwarded.
	conf := fmt.Sprintf(`global(workDirectory=%q)
module(load="imtcp")
module(load="omrelp")
input(type="imtcp" address="127.0.0.1" port=%q ruleset="fwd")
ruleset(name="fwd") {
  action(type="omrelp" target=%q port=%q
         action.resumeRetryCount="-1" action.resumeInterval="1"
         queue.type="LinkedList" queue.filename="relpq" queue.saveOnShutdown="on"
         queue.size="200000")
}
`, filepath.Join(dir, "work"), tcpPort, host, port)
	confPath := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-N1", "-f", confPath).CombinedOutput(); err != nil {
		t.Fatalf("rsyslogd -N1 rejects the config: %v\n%s", err, out)
	}
	logf, err := os.Create(r.Log)
	if err != nil {
		t.Fatal(err)
	}
	r.cmd = exec.Command(bin, "-n", "-f", confPath, "-i", filepath.Join(dir, "rsyslogd.pid"))
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start rsyslogd: %v", err)
	}
	go func() {
		_ = r.cmd.Wait()
		logf.Close()
		close(r.done)
	}()
	t.Cleanup(func() {
		r.Stop()
		if t.Failed() {
			b, _ := os.ReadFile(r.Log)
			t.Logf("rsyslogd log %s:\n%s", r.Log, b)
		}
	})
	r.waitListening(t)
	return r
}

func (r *Rsyslog) waitListening(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-r.done:
			b, _ := os.ReadFile(r.Log)
			t.Fatalf("rsyslogd exited at start-up:\n%s", b)
		default:
		}
		if c, err := net.DialTimeout("tcp", r.TCPAddr, time.Second); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("rsyslogd not listening on %s within 15s", r.TCPAddr)
}

// Feed writes lines, newline-framed, to rsyslogd's TCP input.
func (r *Rsyslog) Feed(t testing.TB, lines []string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", r.TCPAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := bufio.NewWriter(c)
	for _, l := range lines {
		_, _ = w.WriteString(l)
		_ = w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		t.Fatalf("feed rsyslogd: %v", err)
	}
}

// Stop ends rsyslogd with SIGTERM (it saves its queue) and waits for it.
func (r *Rsyslog) Stop() {
	select {
	case <-r.done:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}
