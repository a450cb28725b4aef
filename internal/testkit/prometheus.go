package testkit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Prometheus is a real Prometheus server (Debian's prometheus package, which
// scripts/peers.sh installs) that a test started with its own configuration,
// to scrape Sluice processes and evaluate rules as production does.
type Prometheus struct {
	// URL is http://<addr>, the HTTP API.
	URL string
	// Log is its log file, shown when the test fails.
	Log string

	done chan struct{}
}

// StartPrometheus runs Prometheus on addr with config (prometheus.yml's
// contents; rule files named in it must exist), its data in a temporary
// directory, and waits until it is ready. It is stopped when t ends.
func StartPrometheus(t testing.TB, addr string, config []byte) *Prometheus {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, config, 0o600); err != nil {
		t.Fatal(err)
	}
	p := &Prometheus{URL: "http://" + addr, Log: filepath.Join(dir, "prometheus.log"), done: make(chan struct{})}
	logf, err := os.Create(p.Log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(LookPath(t, "prometheus"), "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start prometheus: %v", err)
	}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("--- prometheus log (%s), last lines:\n%s", p.Log, tailFile(p.Log, 20))
		}
	})
	Eventually(t, 30*time.Second, "prometheus ready", func() bool {
		select {
		case <-p.done:
			t.Fatalf("prometheus exited; last lines of %s:\n%s", p.Log, tailFile(p.Log, 20))
		default:
		}
		resp, err := http.Get(p.URL + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// PromSample is one series of an instant query's result.
type PromSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// Query evaluates expr now and returns its series; the error is
// Prometheus's own when it refuses or fails the query.
func (p *Prometheus) Query(expr string) ([]PromSample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.get("/api/v1/query?query="+url.QueryEscape(expr), &data); err != nil {
		return nil, fmt.Errorf("query %s: %w", expr, err)
	}
	if data.ResultType != "vector" {
		// A scalar or string: one value, no series.
		return []PromSample{{}}, nil
	}
	var out []PromSample
	if err := json.Unmarshal(data.Result, &out); err != nil {
		return nil, fmt.Errorf("query %s: %w", expr, err)
	}
	return out, nil
}

// PromAlert is one alert of a rule, pending or firing.
type PromAlert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

// Alerts returns the alerts Prometheus's rules hold now.
func (p *Prometheus) Alerts() ([]PromAlert, error) {
	var data struct {
		Alerts []PromAlert `json:"alerts"`
	}
	if err := p.get("/api/v1/alerts", &data); err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	return data.Alerts, nil
}

// get calls the HTTP API and decodes its data into out.
func (p *Prometheus) get(path string, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("%s: %w", resp.Status, err)
	}
	if body.Status != "success" {
		return fmt.Errorf("%s: %s", resp.Status, body.Error)
	}
	return json.Unmarshal(body.Data, out)
}
