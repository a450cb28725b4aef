package ops

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestProbes(t *testing.T) {
	kafkaDown := errors.New("no broker reachable")
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return kafkaDown }
	tests := []struct {
		name       string
		path       string
		checks     []Check
		wantStatus int
		wantBody   []string
	}{
		{name: "healthz", path: "/healthz", checks: []Check{{Name: "kafka", Ready: down}}, wantStatus: 200, wantBody: []string{`"status":"ok"`}},
		{name: "readyz without checks", path: "/readyz", wantStatus: 200, wantBody: []string{`"status":"ready"`, `"role":"test"`}},
		{name: "readyz ok", path: "/readyz", checks: []Check{{Name: "kafka", Ready: ok}}, wantStatus: 200, wantBody: []string{`"status":"ready"`}},
		{name: "readyz kafka down", path: "/readyz", checks: []Check{{Name: "schemas", Ready: ok}, {Name: "kafka", Ready: down}},
			wantStatus: 503, wantBody: []string{`"status":"not ready"`, `"reason":"kafka: no broker reachable"`}},
		{name: "readyz lists every failure", path: "/readyz", checks: []Check{{Name: "schemas", Ready: down}, {Name: "kafka", Ready: down}},
			wantStatus: 503, wantBody: []string{`"reasons":["schemas: no broker reachable","kafka: no broker reachable"]`}},
		{name: "a warning stays ready", path: "/readyz", checks: []Check{{Name: "schemas", Ready: ok}, {Name: "backlog", Ready: down, Warn: true}},
			wantStatus: 200, wantBody: []string{`"status":"ready"`, `"warnings":["backlog: no broker reachable"]`}},
		{name: "metrics", path: "/metrics", wantStatus: 200, wantBody: []string{"test_gauge 7"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "test_gauge", Help: "x"})
			g.Set(7)
			reg.MustRegister(g)
			mux := http.NewServeMux()
			New(Config{Checks: tt.checks, Gatherer: reg, Detail: map[string]any{"role": "test"}}).Register(mux)
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if rec.Code != tt.wantStatus {
				t.Errorf("GET %s = %d %s, want %d", tt.path, rec.Code, rec.Body, tt.wantStatus)
			}
			for _, want := range tt.wantBody {
				if !strings.Contains(rec.Body.String(), want) {
					t.Errorf("GET %s = %s, want it to contain %s", tt.path, rec.Body, want)
				}
			}
		})
	}
}

// Probes within the cache's lifetime share one round of checks, so that
// frequent probing does not become load on Kafka.
func TestReadyCaches(t *testing.T) {
	var calls atomic.Int32
	h := New(Config{CacheTTL: time.Hour, Checks: []Check{{Name: "kafka", Ready: func(context.Context) error {
		calls.Add(1)
		return nil
	}}}})
	for range 5 {
		rec := httptest.NewRecorder()
		h.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		if rec.Code != 200 {
			t.Fatalf("readyz = %d", rec.Code)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d rounds of checks for 5 probes within the TTL, want 1", n)
	}
}
