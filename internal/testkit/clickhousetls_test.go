package testkit

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestClickHouseScriptAddsTLS: scripts/clickhouse.sh, run again with a TLS
// port on a server it started without one, restarts it once with the port,
// and tls-env then tells where it is; a third run leaves it alone.
func TestClickHouseScriptAddsTLS(t *testing.T) {
	if _, err := exec.LookPath("clickhouse-server"); err != nil {
		if _, err := os.Stat("/usr/sbin/clickhouse-server"); err != nil {
			t.Fatal("clickhouse-server is not installed: run scripts/clickhouse.sh start (make test does)")
		}
	}
	script := scriptPath(t, "clickhouse.sh")
	dir := t.TempDir()
	env := append(withoutClickHouseEnv(), "CLICKHOUSE_DIR="+dir)
	for _, k := range []string{"CLICKHOUSE_TCP_PORT", "CLICKHOUSE_HTTP_PORT"} {
		_, port, _ := strings.Cut(FreeAddr(t), ":")
		env = append(env, k+"="+port)
	}
	_, tlsPort, _ := strings.Cut(FreeAddr(t), ":")
	run := func(tls bool, args ...string) string {
		cmd := exec.Command(script, args...)
		cmd.Env = append(env, "CLICKHOUSE_TLS_PORT=")
		if tls {
			cmd.Env = append(env, "CLICKHOUSE_TLS_PORT="+tlsPort)
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("clickhouse.sh %s: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run(false, "start")
	t.Cleanup(func() { run(false, "stop") })
	if out := run(true, "start"); !strings.Contains(out, "has no TLS port; restarting it once") {
		t.Errorf("second start did not restart the server to add TLS:\n%s", out)
	}
	if out := run(true, "start"); !strings.Contains(out, "reusing") {
		t.Errorf("third start did not reuse the server:\n%s", out)
	}
	c := parseTLSEnv(t, []byte(run(true, "tls-env")))
	if !strings.HasSuffix(c.Addr, ":"+tlsPort) || c.User != "sluice_tls" {
		t.Errorf("tls-env: %+v, want the TLS port %s", c, tlsPort)
	}
}
