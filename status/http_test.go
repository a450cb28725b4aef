package status

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRegisterLeavesOtherPaths mounts the status beside a catch-all like
// the collector's and a /metrics: the page takes exactly GET /, and
// nothing else changes hands.
func TestRegisterLeavesOtherPaths(t *testing.T) {
	f := newFakeProcess(t)
	r := newTestReporter(t, f.reg, "all")
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "collector") })
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "metrics") })
	r.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	get := func(method, path string) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	if code, ct, body := get("GET", "/"); code != 200 || !strings.HasPrefix(ct, "text/html") || !strings.Contains(body, "/status/status.js") {
		t.Errorf("GET /: %d %s %.80q", code, ct, body)
	}
	for _, path := range []string{"/status/status.js", "/status/status.css"} {
		if code, _, body := get("GET", path); code != 200 || len(body) < 100 {
			t.Errorf("GET %s: %d, %d bytes", path, code, len(body))
		}
	}
	for _, c := range []struct{ method, path, want string }{
		{"POST", "/", "collector"},
		{"POST", "/v1/streams/app_logs/events", "collector"},
		{"GET", "/v1/anything", "collector"},
		{"GET", "/metrics", "metrics"},
	} {
		if _, _, body := get(c.method, c.path); body != c.want {
			t.Errorf("%s %s answered %.60q, want %q", c.method, c.path, body, c.want)
		}
	}
	code, ct, body := get("GET", "/api/status")
	var st Status
	if err := json.Unmarshal([]byte(body), &st); err != nil || code != 200 || ct != "application/json" {
		t.Fatalf("GET /api/status: %d %s %v", code, ct, err)
	}
	if st.Version != ShapeVersion || st.Role != "all" || len(st.Streams) != 2 {
		t.Errorf("status %+v", st)
	}
}
