package e2e

import (
	"flag"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testkit"
)

// TestMain bounds what could otherwise wait for ever: a request the tests
// make with the default client, and the binary as a whole (see
// testkit.Watchdog).
func TestMain(m *testing.M) {
	flag.Parse()
	// No test waits this long for one answer: a request that does is a
	// hang, and fails naming the URL.
	http.DefaultClient.Timeout = 3 * time.Minute
	stop := testkit.Watchdog(os.Stderr, "github.com/sluicehq/sluice/e2e.")
	code := m.Run()
	stop()
	os.Exit(code)
}
