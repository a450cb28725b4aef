package testkit

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/hostaddr"
)

// ClickHouseTLS is a ClickHouse whose native protocol is also served over
// TLS, with a user that has a password, as scripts/clickhouse.sh sets it
// up.
type ClickHouseTLS struct {
	// Addr is the host:port of the TLS port; PlainAddr is the same
	// server's plain native port, where the user "default" has no password.
	Addr, PlainAddr string
	// CA is the PEM file of the authority that signed the server's
	// certificate (for 127.0.0.1 and localhost).
	CA string
	// User logs in with the password held in PasswordFile.
	User, PasswordFile string
}

// StartClickHouseTLS returns the TLS port of the shared ClickHouse (what
// `scripts/clickhouse.sh tls-env` prints) or, when the shared server has
// none (an older copy of the script, or another program, started it), a
// private server with one, started by the script in a test directory and
// stopped when the test ends. The private server takes about a second to
// start and never disturbs the shared one.
func StartClickHouseTLS(t testing.TB) ClickHouseTLS {
	t.Helper()
	script := scriptPath(t, "clickhouse.sh")
	// The shared server only when the tests' ClickHouse is on this machine:
	// its plain port is where the tests create their databases.
	if host, port, err := net.SplitHostPort(ClickHouseAddr()); err == nil && hostaddr.Local(host) {
		shared := exec.Command(script, "tls-env")
		shared.Env = append(withoutClickHouseEnv(), "CLICKHOUSE_TCP_PORT="+port)
		if out, err := shared.Output(); err == nil {
			c := parseTLSEnv(t, out)
			c.PlainAddr = ClickHouseAddr()
			return c
		}
	}
	dir := t.TempDir()
	ports := map[string]string{"CLICKHOUSE_TCP_PORT": "", "CLICKHOUSE_HTTP_PORT": "", "CLICKHOUSE_TLS_PORT": ""}
	env := append(withoutClickHouseEnv(), "CLICKHOUSE_DIR="+dir)
	for k := range ports {
		_, port, _ := strings.Cut(FreeAddr(t), ":")
		ports[k] = port
		env = append(env, k+"="+port)
	}
	run := func(arg string) []byte {
		cmd := exec.Command(script, arg)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("clickhouse.sh %s: %v\n%s", arg, err, out)
		}
		return out
	}
	run("start")
	t.Cleanup(func() { run("stop") })
	c := parseTLSEnv(t, run("tls-env"))
	c.PlainAddr = "127.0.0.1:" + ports["CLICKHOUSE_TCP_PORT"]
	return c
}

// withoutClickHouseEnv is the environment without the script's settings,
// so that a caller's CLICKHOUSE_DIR cannot point the script elsewhere.
func withoutClickHouseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CLICKHOUSE_") {
			env = append(env, kv)
		}
	}
	return env
}

func parseTLSEnv(t testing.TB, out []byte) ClickHouseTLS {
	t.Helper()
	vals := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			vals[k] = v
		}
	}
	c := ClickHouseTLS{Addr: vals["CLICKHOUSE_TLS_ADDR"], CA: vals["CLICKHOUSE_TLS_CA"],
		User: vals["CLICKHOUSE_TLS_USER"], PasswordFile: vals["CLICKHOUSE_TLS_PASSWORD_FILE"]}
	if c.Addr == "" || c.CA == "" || c.User == "" || c.PasswordFile == "" {
		t.Fatalf("clickhouse.sh tls-env printed %q", out)
	}
	return c
}

// Password reads the TLS user's password.
func (c ClickHouseTLS) Password(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(c.PasswordFile)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// scriptPath is the path of scripts/NAME in this checkout, found from this
// source file, so that tests of any package can run the project's scripts.
func scriptPath(t testing.TB, name string) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot find the testkit's source file")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "scripts", name)
}
