package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testkit"
)

// TestSlowClientsAndTokens runs the built binary as a collector with a
// token file: uploads stalled at and in their body (twice the parsing
// slots) do not keep authenticated producers from getting 202, they are
// answered 408 once the body's grace is over, and the log says that
// authentication is on without showing a token.
func TestSlowClientsAndTokens(t *testing.T) {
	const tokA, tokB = "e2e-token,with-comma", "e2e-second-token"
	tokenFile := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokenFile, []byte("# producers\n"+tokA+"\n\n"+tokB+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k := testkit.StartKafka(t)
	c := testkit.StartCollector(t, sluiceBin(t), k, "--token-file", tokenFile, "--log-level", "info")
	addr := strings.TrimPrefix(c.URL, "http://")
	const path = "/v1/streams/iot_telemetry/events"

	post := func(client *http.Client, token, body string) (int, error) {
		req, err := http.NewRequest(http.MethodPost, c.URL+path, strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	event := func(i int) string {
		return fmt.Sprintf(`{"device_id":"e2e-%d","ts":1795514400000,"metrics":{"seq":%d}}`, i%5, i)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	if code, err := post(client, "", event(0)); err != nil || code != http.StatusUnauthorized {
		t.Fatalf("post without a token: %d, %v; want 401", code, err)
	}

	const stalled = 64
	conns := make([]*bufio.Reader, 0, stalled)
	for i := range stalled {
		// Headers only, or a tenth of the body.
		conn := testkit.StallUpload(t, addr, path, (i%2)*100, "Authorization: Bearer "+tokA)
		_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
		conns = append(conns, bufio.NewReader(conn))
	}

	var wg sync.WaitGroup
	for p := range 8 {
		wg.Go(func() {
			token := []string{tokA, tokB}[p%2]
			for i := range 10 {
				if code, err := post(client, token, event(p*10+i)); err != nil || code != http.StatusAccepted {
					t.Errorf("producer %d post %d: %d, %v; want 202", p, i, code, err)
					return
				}
			}
		})
	}
	wg.Wait()

	// The stalled uploads are answered 408 once the default 5 s grace is
	// over, and counted.
	for i, br := range conns {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("stalled upload %d: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("stalled upload %d: %d, want 408", i, resp.StatusCode)
		}
	}
	resp, err := http.Get(c.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf("sluice_ingest_slow_bodies_total %d\n", stalled); !strings.Contains(string(metrics), want) {
		t.Errorf("metrics lack %q", want)
	}

	log, err := os.ReadFile(c.Log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "authentication on") || !strings.Contains(string(log), "tokens=2") {
		t.Errorf("no start-up line saying authentication is on with 2 tokens in the log:\n%s", log)
	}
	for _, tok := range []string{tokA, tokB} {
		if strings.Contains(string(log), tok) {
			t.Errorf("the log shows a token")
		}
	}
}
