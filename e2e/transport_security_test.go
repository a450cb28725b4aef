package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/sluicehq/sluice/devstack"
	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/internal/tlsfiles"
)

// TestClickHouseTLSAndHTTPS runs `sluice run` with the collector on HTTPS
// and ClickHouse reached on its TLS port as a user with a password from a
// file: events posted over HTTPS land in ClickHouse. Plain HTTP to the
// collector is refused, and the password is in no log line.
func TestClickHouseTLSAndHTTPS(t *testing.T) {
	chTLS := testkit.StartClickHouseTLS(t)
	db := newTestDBAt(t, chTLS.PlainAddr)
	ca := testkit.NewCA(t)
	k := startEmbeddedKafka(t)
	addr := freeAddr(t)
	p := startProc(t, "sluice", "run", "--role", "all", "--kafka-brokers", k.Addr(), "--nats-url", "",
		"--http-addr", addr, "--http-tls-cert", ca.Path("server.pem"), "--http-tls-key", ca.Path("server-key.pem"),
		"--clickhouse-addr", chTLS.Addr, "--clickhouse-tls-ca", chTLS.CA,
		"--clickhouse-user", chTLS.User, "--clickhouse-password-file", chTLS.PasswordFile,
		"--clickhouse-database", db.Name, "--partitions", "2", "--batch-linger", "100ms")
	client := httpsClient(t, ca)
	waitReadyWith(t, client, "https://"+addr, p.exited())

	const events = 50
	for i := range events {
		body := fmt.Sprintf(`{"device_id":"tls-%d","ts":1795514400000,"metrics":{"seq":%d}}`, i%5, i)
		resp, err := client.Post("https://"+addr+"/v1/streams/iot_telemetry/events", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("HTTPS post: %d, want 202", resp.StatusCode)
		}
	}
	db.waitRows(t, map[string]uint64{"iot_telemetry": events}, 60*time.Second)
	if rows, distinct := db.counts(t, "iot_telemetry"); rows != events || distinct != events {
		t.Errorf("iot_telemetry: %d rows, %d distinct, want %d", rows, distinct, events)
	}
	out, err := exec.Command(sluiceBin(t), "verify", "--kafka-brokers", k.Addr(), "--stream", "iot_telemetry",
		"--clickhouse-addr", chTLS.Addr, "--clickhouse-tls-ca", chTLS.CA,
		"--clickhouse-user", chTLS.User, "--clickhouse-password-file", chTLS.PasswordFile,
		"--clickhouse-database", db.Name, "--wait", "30s").CombinedOutput()
	if err != nil || strings.Contains(string(out), chTLS.Password(t)) {
		t.Errorf("sluice verify over TLS: %v (or the output shows the password)\n%s", err, out)
	}
	resp, err := http.Post("http://"+addr+"/v1/streams/iot_telemetry/events", "application/json", strings.NewReader(`{}`))
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the HTTPS port: %d, want 400", resp.StatusCode)
		}
	}
	p.signal(syscall.SIGTERM)
	if err := p.wait(t, 60*time.Second); err != nil {
		t.Errorf("sluice run: %v", err)
	}
	assertNotInLog(t, p.log, chTLS.Password(t))
}

// TestClickHouseRefusedAtStart: a wrong password, or a server certificate
// not trusted, stops `sluice run` at start-up with one line naming what
// failed and the flags to check, never the password.
func TestClickHouseRefusedAtStart(t *testing.T) {
	chTLS := testkit.StartClickHouseTLS(t)
	k := startEmbeddedKafka(t)
	wrong := filepath.Join(t.TempDir(), "wrong")
	const wrongPassword = "n0t-the-Passw0rd"
	if err := os.WriteFile(wrong, []byte(wrongPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	common := []string{"run", "--role", "work", "--kafka-brokers", k.Addr(), "--nats-url", "", "--http-addr", freeAddr(t),
		"--clickhouse-addr", chTLS.Addr, "--clickhouse-user", chTLS.User, "--clickhouse-database", "sluice_refused"}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"wrong password", []string{"--clickhouse-tls-ca", chTLS.CA, "--clickhouse-password-file", wrong},
			[]string{"refused the login", `user "` + chTLS.User + `"`, "--clickhouse-password-file"}},
		{"untrusted certificate", []string{"--clickhouse-tls", "--clickhouse-password-file", chTLS.PasswordFile},
			[]string{"TLS handshake failed", "not trusted", "--clickhouse-tls-ca"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := runRefused(t, append(common, tc.args...), tc.want)
			for _, secret := range []string{wrongPassword, chTLS.Password(t)} {
				if strings.Contains(out, secret) {
					t.Errorf("the output shows the password")
				}
			}
		})
	}
	// Given on the command line, the password still works, with a warning
	// naming the file flag; the output never shows it.
	t.Run("wrong password on the command line", func(t *testing.T) {
		out := runRefused(t, append(common, "--clickhouse-tls-ca", chTLS.CA, "--clickhouse-password", wrongPassword),
			[]string{"refused the login", "code 193 WRONG_PASSWORD"})
		if !strings.Contains(out, "use=--clickhouse-password-file") {
			t.Errorf("no warning naming --clickhouse-password-file:\n%s", out)
		}
		if strings.Contains(out, wrongPassword) {
			t.Errorf("the output shows the password")
		}
	})
}

// TestNATSTLSWithPassword runs `sluice run` publishing to a NATS server
// that requires TLS (a private CA) and a user whose password is in a file:
// every event posted arrives on NATS. A wrong password stops it at start
// with one line; the password is in no log line.
func TestNATSTLSWithPassword(t *testing.T) {
	ca := testkit.NewCA(t)
	const password = "nats-Passw0rd-s3cret"
	srv := testkit.StartSecureNATS(t, ca, testkit.NATSAuth{User: "sluice", Password: password}, false)
	pwFile := filepath.Join(t.TempDir(), "nats-password")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	received := countPublished(t, srv.URL(), natsgo.UserInfo("sluice", password), natsgo.RootCAs(ca.Path("ca.pem")))

	db := newTestDB(t)
	k := startEmbeddedKafka(t)
	addr := freeAddr(t)
	p := startProc(t, "sluice", "run", "--role", "all", "--kafka-brokers", k.Addr(), "--http-addr", addr,
		"--nats-url", srv.URL(), "--nats-user", "sluice", "--nats-password-file", pwFile, "--nats-tls-ca", ca.Path("ca.pem"),
		"--clickhouse-addr", db.Addr, "--clickhouse-database", db.Name, "--partitions", "2", "--batch-linger", "100ms")
	waitReady(t, "http://"+addr, p.exited())
	postAndAwaitNATS(t, p, addr, "n", 40, received)
	assertNotInLog(t, p.log, password)

	t.Run("wrong password", func(t *testing.T) {
		wrong := filepath.Join(t.TempDir(), "wrong")
		if err := os.WriteFile(wrong, []byte("n0t-"+password), 0o600); err != nil {
			t.Fatal(err)
		}
		line := runRefused(t, []string{"run", "--role", "work", "--kafka-brokers", k.Addr(), "--http-addr", freeAddr(t),
			"--nats-url", srv.URL(), "--nats-user", "sluice", "--nats-password-file", wrong, "--nats-tls-ca", ca.Path("ca.pem"),
			"--clickhouse-addr", db.Addr, "--clickhouse-database", db.Name},
			[]string{"nats nats://127.0.0.1:", "refused the login", "--nats-password-file"})
		if strings.Contains(line, password) {
			t.Errorf("the output shows the password")
		}
	})
	t.Run("password in the URL", func(t *testing.T) {
		url := "nats://sluice:" + password + "@" + srv.Addr
		for _, fromEnv := range []bool{true, false} {
			addr := freeAddr(t)
			args := []string{"run", "--role", "work", "--kafka-brokers", k.Addr(), "--http-addr", addr, "--nats-tls-ca", ca.Path("ca.pem"),
				"--clickhouse-addr", db.Addr, "--clickhouse-database", db.Name}
			if fromEnv {
				t.Setenv("SLUICE_NATS_URL", url)
			} else {
				args = append(args, "--nats-url", url)
			}
			w := startProc(t, fmt.Sprintf("url-env-%v", fromEnv), args...)
			waitReady(t, "http://"+addr, w.exited())
			for _, page := range []string{"/readyz", "/metrics"} {
				if body := getBody(t, "http://"+addr+page); strings.Contains(body, password) {
					t.Errorf("%s shows the password", page)
				}
			}
			if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", w.cmd.Process.Pid)); err != nil || (fromEnv && strings.Contains(string(cmdline), password)) {
				t.Errorf("ps shows the password given in the environment (or: %v)", err)
			}
			w.signal(syscall.SIGTERM)
			if err := w.wait(t, 60*time.Second); err != nil {
				t.Errorf("sluice run: %v", err)
			}
			assertNotInLog(t, w.log, password)
			if warned := logContains(t, w.log, "--nats-url holds credentials"); warned == fromEnv {
				t.Errorf("URL from the environment: %v; warned about ps: %v", fromEnv, warned)
			}
		}
	})
	t.Run("password in the URL, untrusted certificate", func(t *testing.T) {
		url := "nats://sluice:" + password + "@" + srv.Addr
		cmdLine := []string{"run", "--role", "work", "--kafka-brokers", k.Addr(), "--http-addr", freeAddr(t),
			"--clickhouse-addr", db.Addr, "--clickhouse-database", db.Name}
		line := runRefusedEnv(t, cmdLine, []string{"SLUICE_NATS_URL=" + url},
			[]string{"nats nats://redacted@127.0.0.1:", "TLS handshake failed", "--nats-tls-ca"})
		if strings.Contains(line, password) {
			t.Errorf("the output shows the password from the URL")
		}
	})
}

// runRefused runs sluice with args, expects it to exit non-zero within a
// minute, and checks that its last line holds every string of want. It
// returns the whole output.
func runRefused(t *testing.T, args, want []string) string {
	t.Helper()
	return runRefusedEnv(t, args, nil, want)
}

// runRefusedEnv is runRefused with extra environment variables.
func runRefusedEnv(t *testing.T, args, env, want []string) string {
	t.Helper()
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	start := time.Now()
	p := startProc(t, "refused", args...)
	err := p.wait(t, 60*time.Second)
	out, _ := os.ReadFile(p.log)
	if err == nil {
		t.Fatalf("sluice exited 0; output:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	last := lines[len(lines)-1]
	for _, w := range want {
		if !strings.Contains(last, w) {
			t.Errorf("last line %q lacks %q", last, w)
		}
	}
	if n := strings.Count(string(out), "refused") + strings.Count(string(out), "handshake failed"); n != 1 {
		t.Errorf("the refusal is reported %d times, want once:\n%s", n, out)
	}
	t.Logf("exited after %s with: %s", time.Since(start).Round(time.Millisecond), last)
	return string(out)
}

// assertNotInLog fails the test if secret appears in the log at path.
func assertNotInLog(t *testing.T, path, secret string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		t.Fatalf("log %s is empty: nothing was checked", path)
	}
	if strings.Contains(string(b), secret) {
		t.Errorf("the log %s shows a secret", path)
	}
}

// logContains reports whether the log at path holds s.
func logContains(t *testing.T, path, s string) bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(b), s)
}

// getBody returns the body of a GET of url.
func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// startEmbeddedKafka starts the embedded broker in a test directory, stopped when
// the test ends.
func startEmbeddedKafka(t *testing.T) *devstack.Kafka {
	t.Helper()
	k, err := devstack.StartKafka(freeAddr(t), t.TempDir(), false, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeKafka(k) })
	return k
}

// httpsClient trusts the CA's certificates.
func httpsClient(t *testing.T, ca *testkit.CA) *http.Client {
	t.Helper()
	cfg, err := tlsfiles.Client{CA: ca.Path("ca.pem")}.Config("--test")
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

// waitReadyWith polls url's /readyz with client until it answers 200.
func waitReadyWith(t *testing.T, client *http.Client, url string, exited <-chan error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		select {
		case err := <-exited:
			t.Fatalf("sluice exited before it was ready: %v", err)
		default:
		}
		if resp, err := client.Get(url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s/readyz not ready within 60s", url)
}

// TestNATSCreds runs `sluice run` publishing to a NATS server in operator
// mode with a credentials file (--nats-creds): every event posted arrives.
func TestNATSCreds(t *testing.T) {
	srv := testkit.StartOperatorNATS(t)
	received := countPublished(t, srv.URL(), natsgo.UserCredentials(srv.Creds))
	db := newTestDB(t)
	k := startEmbeddedKafka(t)
	addr := freeAddr(t)
	p := startProc(t, "sluice", "run", "--role", "all", "--kafka-brokers", k.Addr(), "--http-addr", addr,
		"--nats-url", srv.URL(), "--nats-creds", srv.Creds,
		"--clickhouse-addr", db.Addr, "--clickhouse-database", db.Name, "--partitions", "2", "--batch-linger", "100ms")
	waitReady(t, "http://"+addr, p.exited())
	postAndAwaitNATS(t, p, addr, "c", 20, received)
	seed := credsSeed(t, srv.Creds)
	assertNotInLog(t, p.log, seed)
}

// countPublished subscribes to every subject Sluice publishes on, with
// opts (the credentials under test), and returns the count of messages
// received, which goes up as they arrive. The subscription is in place
// when it returns.
func countPublished(t *testing.T, url string, opts ...natsgo.Option) *atomic.Int64 {
	t.Helper()
	nc, err := natsgo.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	received := new(atomic.Int64)
	if _, err := nc.Subscribe("sluice.>", func(*natsgo.Msg) { received.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return received
}

// postAndAwaitNATS posts events to the sluice run p at addr one request
// each (devices DEVICE-0..3), waits until received counts them all on NATS,
// and stops p.
func postAndAwaitNATS(t *testing.T, p *proc, addr, device string, events int64, received *atomic.Int64) {
	t.Helper()
	for i := range events {
		body := fmt.Sprintf(`{"device_id":"%s-%d","ts":1795514400000,"metrics":{"seq":%d}}`, device, i%4, i)
		resp, err := http.Post("http://"+addr+"/v1/streams/iot_telemetry/events", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("post: %d, want 202", resp.StatusCode)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for received.Load() < events && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := received.Load(); n != events {
		t.Errorf("NATS received %d events, want %d", n, events)
	}
	p.signal(syscall.SIGTERM)
	if err := p.wait(t, 60*time.Second); err != nil {
		t.Errorf("sluice run: %v", err)
	}
}

// credsSeed returns the nkey seed of a credentials file: the secret in it.
func credsSeed(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "SU") {
			return line
		}
	}
	t.Fatalf("no seed in %s", path)
	return ""
}
