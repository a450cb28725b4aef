package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"testing"

	"github.com/sluicehq/sluice/internal/testkit"
)

// usePlainBinary makes the test run a sluice built without the race
// detector, whose shadow memory would be most of the resident set a memory
// test measures. make test's $SLUICE_BIN is a plain build already.
func usePlainBinary(t *testing.T) {
	t.Helper()
	if os.Getenv("SLUICE_BIN") == "" {
		t.Setenv("SLUICE_BIN", testkit.SluiceBin(t))
	}
}

// startLimitedDev starts `sluice dev --memory-limit limit` with every
// listener on a free port, writing to a database of its own, and waits
// until it is ready. It returns the process and its HTTP URL.
func startLimitedDev(t *testing.T, limit string, extra ...string) (*proc, string) {
	t.Helper()
	db := newTestDB(t)
	httpAddr := freeAddr(t)
	url := "http://" + httpAddr
	args := append([]string{"dev", "--memory-limit", limit, "--data-dir", t.TempDir(), "--http-addr", httpAddr,
		"--kafka-addr", freeAddr(t), "--nats-addr", freeAddr(t),
		"--clickhouse-addr", clickhouseAddr(), "--clickhouse-database", db.Name,
		"--mqtt-addr", freeAddr(t), "--syslog-tcp-addr", freeAddr(t), "--syslog-udp-addr", freeAddr(t), "--relp-addr", freeAddr(t)},
		extra...)
	dev := startProc(t, "dev", args...)
	dev.httpAddr = httpAddr
	waitReady(t, url, dev.exited())
	return dev, url
}

// answer is what the collector said to one POST: status, Retry-After, the
// first bytes of the body and the body's whole length.
type answer struct {
	status     int
	retryAfter string
	body       []byte
	size       int64
}

// maxAnswerKept is how much of an answer is kept to check and show; the
// rest is only counted.
const maxAnswerKept = 64 << 10

// postEventsBody POSTs body to a stream without failing the test, so that
// many goroutines can call it at once.
func postEventsBody(ctx context.Context, c *http.Client, url, stream string, body []byte) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/streams/"+stream+"/events", bytes.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	kept, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerKept))
	if err != nil {
		return answer{}, err
	}
	rest, err := io.Copy(io.Discard, resp.Body)
	return answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: kept, size: int64(len(kept)) + rest}, err
}
