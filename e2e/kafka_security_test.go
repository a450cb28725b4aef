package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/devstack"
	"github.com/sluicehq/sluice/internal/testkit"
)

// kafkaPassword is the SASL password of the tests' broker; no log line or
// error of sluice may show it.
const kafkaPassword = "kafka-Pw-9f3e-secret"

// secureKafka is an embedded broker that wants SCRAM-SHA-256 over TLS, as
// managed Kafka does, with the files a client needs.
type secureKafka struct {
	addr   string
	ca     *testkit.CA
	pwFile string
}

func startSecureKafka(t *testing.T) *secureKafka {
	t.Helper()
	ca := testkit.NewCA(t)
	k := testkit.StartKafka(t, testkit.KafkaSASL("SCRAM-SHA-256", "sluice", kafkaPassword), testkit.KafkaTLS(ca))
	return &secureKafka{addr: k.Brokers[0], ca: ca, pwFile: kafkaTestFile(t, "kafka-password", kafkaPassword+"\n")}
}

func kafkaTestFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// config is a `sluice run` config file for the broker, in the form
// docs/security.md shows, with the CA and password file given.
func (k *secureKafka) config(t *testing.T, ca, pwFile string) string {
	t.Helper()
	return kafkaTestFile(t, "sluice.yaml", "kafka-brokers: ["+k.addr+"]\n"+
		"kafka-tls-ca: "+ca+"\n"+
		"kafka-sasl-mechanism: scram-sha-256\n"+
		"kafka-sasl-username: sluice\n"+
		"kafka-sasl-password-file: "+pwFile+"\n")
}

// TestKafkaSCRAMOverTLS runs `sluice run` against a broker that wants
// SCRAM-SHA-256 over TLS: events posted over HTTP land in ClickHouse, and
// `sluice verify` with the same settings finds them all.
func TestKafkaSCRAMOverTLS(t *testing.T) {
	k := startSecureKafka(t)
	db := newTestDB(t)
	// NATS too, so that its lane keeps its progress in Kafka offsets,
	// through the same SASL and TLS.
	n, err := devstack.StartNATS("127.0.0.1:-1", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	onNATS := countNATS(t, n.URL(), "sluice.>")
	httpAddr := freeAddr(t)
	p := startProc(t, "sluice", "run", "--config", k.config(t, k.ca.Path("ca.pem"), k.pwFile),
		"--nats-url", n.URL(), "--clickhouse-addr", db.Addr, "--clickhouse-database", db.Name, "--http-addr", httpAddr,
		"--partitions", "4", "--batch-linger", "100ms", "--session-timeout", "6s")
	url := "http://" + httpAddr
	waitReady(t, url, p.exited())
	ids := seqIDs("tls-scram", 200)
	mustPost(t, url, "iot_telemetry", telemetry("dev-1", ids[:100]...))
	mustPost(t, url, "iot_telemetry", telemetry("dev-2", ids[100:]...))
	db.waitRows(t, map[string]uint64{"iot_telemetry": 200}, 30*time.Second)
	if rows, distinct := db.counts(t, "iot_telemetry"); rows != 200 || distinct != 200 {
		t.Errorf("iot_telemetry: %d rows, %d distinct, want 200 and 200", rows, distinct)
	}

	for deadline := time.Now().Add(20 * time.Second); len(onNATS.received()) < len(ids) && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	if got := len(onNATS.received()); got != len(ids) {
		t.Errorf("NATS received %d events, want %d", got, len(ids))
	}

	out, err := exec.Command(sluiceBin(t), "verify", "--kafka-brokers", k.addr, "--kafka-tls-ca", k.ca.Path("ca.pem"),
		"--kafka-sasl-mechanism", "scram-sha-256", "--kafka-sasl-username", "sluice", "--kafka-sasl-password-file", k.pwFile,
		"--clickhouse-addr", db.Addr, "--clickhouse-database", db.Name, "--stream", "iot_telemetry", "--wait", "10s").CombinedOutput()
	if err != nil {
		t.Errorf("sluice verify: %v\n%s", err, out)
	}
	if strings.Contains(string(out), kafkaPassword) {
		t.Errorf("sluice verify shows the password:\n%s", out)
	}

	p.signal(syscall.SIGTERM)
	if err := p.wait(t, 30*time.Second); err != nil {
		t.Errorf("sluice run did not stop cleanly: %v", err)
	}
	b, err := os.ReadFile(p.log)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), kafkaPassword) {
		t.Error("the log of sluice run shows the password")
	}
	// A Kafka client left without SASL or TLS would retry and warn.
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			t.Errorf("sluice run logged: %s", line)
		}
	}
	if !strings.Contains(string(b), `TLS, SASL SCRAM-SHA-256 as \"sluice\"`) {
		t.Errorf("the log does not say how Kafka is connected to; last lines:\n%s", tail(p.log, 10))
	}
}

// TestKafkaRefusedAtStartup checks that a wrong password, and a broker
// certificate the given CA did not sign, end `sluice run` within seconds
// with a non-zero status and one line saying what failed, without the
// password; and that `sluice verify` says the same.
func TestKafkaRefusedAtStartup(t *testing.T) {
	k := startSecureKafka(t)
	wrongPw := kafkaTestFile(t, "wrong-password", "not-"+kafkaPassword+"\n")
	otherCA := testkit.NewCA(t)
	for _, tc := range []struct {
		name, ca, pwFile, want string
	}{
		{"wrong password", k.ca.Path("ca.pem"), wrongPw,
			`sluice: connect to Kafka: kafka: SASL authentication failed for user "sluice" (mechanism SCRAM-SHA-256) at ` + k.addr +
				`: check --kafka-sasl-username and --kafka-sasl-password-file`},
		{"untrusted CA", otherCA.Path("ca.pem"), k.pwFile,
			`sluice: connect to Kafka: kafka: TLS: the certificate of the broker at ` + k.addr + ` is not trusted (x509: certificate signed by unknown authority`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			p := startProc(t, "sluice", "run", "--config", k.config(t, tc.ca, tc.pwFile), "--nats-url", "",
				"--http-addr", freeAddr(t), "--clickhouse-addr", "127.0.0.1:1")
			err := p.wait(t, 20*time.Second)
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("sluice run: %v, want a non-zero exit", err)
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("sluice run took %s to give up, want a few seconds", took)
			}
			checkRefusal(t, readProcLog(t, p.log), tc.want)

			verifyArgs := []string{"verify", "--kafka-brokers", k.addr, "--kafka-tls-ca", tc.ca, "--kafka-sasl-mechanism", "scram-sha-256",
				"--kafka-sasl-username", "sluice", "--kafka-sasl-password-file", tc.pwFile, "--clickhouse-addr", clickhouseAddr()}
			out, err := exec.Command(sluiceBin(t), verifyArgs...).CombinedOutput()
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Errorf("sluice verify: %v, want exit status 2\n%s", err, out)
			}
			checkRefusal(t, string(out), strings.Replace(tc.want, "sluice: connect to Kafka:", "sluice verify:", 1))
		})
	}
}

// checkRefusal asserts that output has exactly one line containing want
// and nowhere the password.
func checkRefusal(t *testing.T, output, want string) {
	t.Helper()
	if strings.Contains(output, kafkaPassword) {
		t.Errorf("the output shows the password:\n%s", output)
	}
	n := 0
	for _, line := range strings.Split(output, "\n") {
		if strings.Contains(line, want) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d lines contain %q, want 1; output:\n%s", n, want, output)
	}
}

func readProcLog(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
