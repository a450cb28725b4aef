package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// ClickHouseAddr is where tests find ClickHouse: SLUICE_TEST_CLICKHOUSE_ADDR,
// else SLUICE_CLICKHOUSE_ADDR, else the server scripts/clickhouse.sh starts
// (127.0.0.1:9000), as `make test` does.
func ClickHouseAddr() string {
	for _, env := range []string{"SLUICE_TEST_CLICKHOUSE_ADDR", "SLUICE_CLICKHOUSE_ADDR"} {
		if a := os.Getenv(env); a != "" {
			return a
		}
	}
	return "127.0.0.1:9000"
}

var (
	binMu    sync.Mutex
	binBuilt = map[string]string{} // build flags -> binary
)

// SluiceBin returns the sluice binary the tests run: $SLUICE_BIN (`make
// test` sets it), or one built once per test binary with the given go build
// flags ("-race", say) in the system's temporary directory.
func SluiceBin(t testing.TB, buildFlags ...string) string {
	t.Helper()
	if p := os.Getenv("SLUICE_BIN"); p != "" {
		return p
	}
	key := strings.Join(buildFlags, " ")
	binMu.Lock()
	defer binMu.Unlock()
	if p, ok := binBuilt[key]; ok {
		return p
	}
	dir, err := os.MkdirTemp("", "sluice-test-bin-")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "sluice")
	args := append(append([]string{"build"}, buildFlags...), "-o", path, "github.com/sluicehq/sluice/cmd/sluice")
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatal(fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out))
	}
	binBuilt[key] = path
	return path
}
