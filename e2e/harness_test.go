// Package e2e holds the end-to-end tests: real ClickHouse (started by
// scripts/clickhouse.sh), the embedded Kafka-protocol broker, embedded NATS,
// and Sluice itself, in process or as the built binary.
package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/sluicehq/sluice/devstack"
	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/sinks/clickhouse"
)

// clickhouseAddr is where the tests expect ClickHouse; `make test` starts it.
func clickhouseAddr() string { return testkit.ClickHouseAddr() }

// sluiceBin returns the sluice binary: $SLUICE_BIN (set by `make test`) or
// one built with the race detector for this test run.
func sluiceBin(t *testing.T) string { return testkit.SluiceBin(t, "-race") }

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// testDB is a ClickHouse database of one test, dropped when it ends.
type testDB struct {
	Name string
	Addr string
	conn driver.Conn
}

func newTestDB(t *testing.T) *testDB { return newTestDBAt(t, clickhouseAddr()) }

func newTestDBAt(t *testing.T, addr string) *testDB {
	t.Helper()
	conn, err := ch.Open(&ch.Options{Addr: []string{addr}, Auth: ch.Auth{Database: "default", Username: "default"}})
	if err == nil {
		err = conn.Ping(context.Background())
	}
	if err != nil {
		t.Fatalf("ClickHouse at %s: %v (run scripts/clickhouse.sh start, or make test)", addr, err)
	}
	db := &testDB{Name: "sluice_e2e_" + randomSuffix(), Addr: addr, conn: conn}
	t.Cleanup(func() {
		if os.Getenv("SLUICE_KEEP_DB") == "" {
			_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db.Name)
		}
		conn.Close()
	})
	return db
}

func (db *testDB) options() clickhouse.Options {
	return clickhouse.Options{Addr: db.Addr, Database: db.Name, Username: "default"}
}

// alter runs an ALTER TABLE statement of a test. A pooled connection may
// have been dropped (a ClickHouse restarted, or one that closed it): such
// an error is retried on a fresh one. If the first attempt took effect
// before the connection dropped, the retry is refused as already done
// (code 15, the column exists; code 10 or 16, it does not), which counts
// as success.
func (db *testDB) alter(t *testing.T, q string) {
	t.Helper()
	var err error
	for attempt := range 5 {
		err = db.conn.Exec(context.Background(), q)
		if err == nil {
			return
		}
		var ex *ch.Exception
		if errors.As(err, &ex) {
			if attempt > 0 && (ex.Code == 15 || ex.Code == 10 || ex.Code == 16) {
				t.Logf("%s: %v, after a dropped connection: the first attempt took effect", q, err)
				return
			}
			break // the server answered: retrying would not change its mind
		}
		t.Logf("%s: %v; retrying on another connection", q, err)
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s: %v", q, err)
}

// counts returns count() and uniqExact(event_id) of a table.
func (db *testDB) counts(t *testing.T, table string) (rows, distinct uint64) {
	t.Helper()
	// A few attempts: the connection pool may hold a connection to a
	// ClickHouse that a test restarted.
	var err error
	for range 5 {
		row := db.conn.QueryRow(context.Background(), fmt.Sprintf("SELECT count(), uniqExact(event_id) FROM %s.%s", db.Name, table))
		if err = row.Scan(&rows, &distinct); err == nil {
			return rows, distinct
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("count %s: %v", table, err)
	return 0, 0
}

// waitRows waits until every table holds at least want[table] rows and no
// more rows arrive for a moment, then returns the counts.
func (db *testDB) waitRows(t *testing.T, want map[string]uint64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done := true
		for table, n := range want {
			if rows, _ := db.counts(t, table); rows < n {
				done = false
			}
		}
		if done {
			// Give a straggling duplicate the chance to show up.
			time.Sleep(2 * time.Second)
			return
		}
		if time.Now().After(deadline) {
			for table, n := range want {
				rows, distinct := db.counts(t, table)
				t.Logf("%s: %d rows, %d distinct, want %d", table, rows, distinct, n)
			}
			t.Fatalf("rows did not arrive within %s", timeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// stack is an in-process `sluice dev`: embedded broker and NATS plus the
// pipeline.
type stack struct {
	KafkaAddr string
	NATSURL   string
	HTTPURL   string
	cancel    context.CancelFunc
	done      chan error
	kafka     *devstack.Kafka
	nats      *devstack.NATS
}

func startStack(t *testing.T, db *testDB, tweak func(*pipeline.Config)) *stack {
	t.Helper()
	dir := t.TempDir()
	k, err := devstack.StartKafka(freeAddr(t), dir, false, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	n, err := devstack.StartNATS("127.0.0.1:-1", dir)
	if err != nil {
		closeKafka(k)
		t.Fatal(err)
	}
	httpAddr := freeAddr(t)
	cfg := pipeline.Config{
		Role:           pipeline.RoleAll,
		HTTPAddr:       httpAddr,
		KafkaBrokers:   []string{k.Addr()},
		NATSURL:        n.URL(),
		ClickHouse:     db.options(),
		Partitions:     4,
		Workers:        4,
		BatchLinger:    100 * time.Millisecond,
		SessionTimeout: 6 * time.Second,
		Logger:         testLogger(t),
	}
	if tweak != nil {
		tweak(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &stack{KafkaAddr: k.Addr(), NATSURL: n.URL(), HTTPURL: "http://" + httpAddr, cancel: cancel, done: make(chan error, 1), kafka: k, nats: n}
	go func() { s.done <- pipeline.Run(ctx, cfg) }()
	t.Cleanup(func() { s.stop(t) })
	waitReady(t, s.HTTPURL, s.done)
	return s
}

// stop ends the pipeline and waits for Run to return; a Run that does
// not within a minute fails the test with the pipeline's goroutines.
func (s *stack) stop(t *testing.T) {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case <-s.done:
	case <-time.After(time.Minute):
		t.Errorf("pipeline.Run did not return within a minute of its context ending; Sluice's goroutines:\n%s",
			testkit.Goroutines("github.com/sluicehq/sluice/"))
	}
	s.nats.Close()
	closeKafka(s.kafka)
}

// closeKafka stops an embedded broker at the end of a test. One that does
// not stop within devstack.CloseWait is left behind, and its goroutines go
// to standard error, where CI's log shows them: the test has checked what
// it checks by then, and waiting for ever would hang the whole run.
func closeKafka(k *devstack.Kafka) {
	if err := k.CloseWithin(devstack.CloseWait); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v; kfake's goroutines:\n%s", err, testkit.Goroutines("github.com/twmb/franz-go/pkg/kfake."))
	}
}

// waitReady polls /readyz until it answers 200.
func waitReady(t *testing.T, url string, exited <-chan error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("sluice exited before it was ready: %v", err)
		default:
		}
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s/readyz not ready within 60s", url)
}

// proc is a sluice process started from the binary.
type proc struct {
	// httpAddr is where the process serves HTTP, when known.
	httpAddr string
	cmd      *exec.Cmd
	done     chan struct{}
	err      error
	log      string
}

// startProc runs the sluice binary with args; its output goes to a log file
// shown when the test fails.
func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sluiceBin(t), args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			kept := keepLog(t, name, logPath)
			t.Logf("--- %s log (whole log kept in %s), last lines:\n%s", name, kept, tail(logPath, 40))
		}
	})
	return p
}

func (p *proc) signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

// wait waits for the process to exit, at most timeout.
func (p *proc) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		t.Fatalf("process %d did not exit within %s", p.cmd.Process.Pid, timeout)
		return nil
	}
}

func (p *proc) kill() {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) exited() <-chan error {
	ch := make(chan error, 1)
	go func() { <-p.done; ch <- p.err }()
	return ch
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// testLogger returns a logger writing to a file that outlives the test (so
// goroutines that log late cannot fail it); its tail is shown on failure.
func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	f, err := os.CreateTemp("", "sluice-e2e-*.log")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- pipeline log (%s), last lines:\n%s", f.Name(), tail(f.Name(), 60))
		} else {
			defer os.Remove(f.Name())
		}
	})
	return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// keepLog copies a failed test's process log out of its temporary directory,
// which is removed when the test ends, so the whole log can be read.
func keepLog(t *testing.T, name, path string) string {
	dir := filepath.Join(os.TempDir(), "sluice-e2e-logs", strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return path
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return path
	}
	dst := filepath.Join(dir, name+".log")
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		return path
	}
	return dst
}
