// Package ops serves the endpoints operators and orchestrators poll, the
// same for every role of a Sluice process: GET /healthz (the process
// answers), GET /readyz (every readiness check passes) and GET /metrics
// (Prometheus text format).
package ops

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one readiness condition: Kafka reachable with its topics,
// schemas loaded, an MQTT broker connected.
type Check struct {
	// Name says what is checked; it prefixes the reason when it fails.
	Name string
	// Ready returns nil when the condition holds.
	Ready func(context.Context) error
	// Warn makes a failure a warning: /readyz lists it under "warnings"
	// and stays ready. For conditions an operator must see but that taking
	// the process out of a load balancer would make worse (a collector that
	// sheds load answers 503 with Retry-After; unreachable, it answers
	// nothing).
	Warn bool
}

// Defaults for Config.
const (
	DefaultCheckTimeout = 2 * time.Second
	// DefaultCacheTTL keeps /readyz from turning every probe (or every
	// stranger polling it) into a round trip to Kafka.
	DefaultCacheTTL = time.Second
)

// Config configures a Handler.
type Config struct {
	// Checks must all pass for /readyz to answer 200.
	Checks []Check
	// Detail is added to the /readyz answer (the streams served, say).
	Detail map[string]any
	// Gatherer is served on /metrics.
	Gatherer prometheus.Gatherer
	// CheckTimeout bounds one round of checks; CacheTTL is how long its
	// result is reused.
	CheckTimeout, CacheTTL time.Duration
}

// Handler serves /healthz, /readyz and /metrics. It is safe for concurrent
// use; concurrent probes share one round of checks.
type Handler struct {
	cfg     Config
	mux     *http.ServeMux
	mu      sync.Mutex // serialises rounds of checks and guards the cache
	checked time.Time
	failed  []string
	warned  []string
}

// New returns a Handler.
func New(cfg Config) *Handler {
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = DefaultCheckTimeout
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = DefaultCacheTTL
	}
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.NewRegistry()
	}
	h := &Handler{cfg: cfg, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	h.mux.HandleFunc("GET /readyz", h.ready)
	h.mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	return h
}

// Register mounts the three endpoints on mux.
func (h *Handler) Register(mux *http.ServeMux) {
	for _, p := range []string{"GET /healthz", "GET /readyz", "GET /metrics"} {
		mux.Handle(p, h.mux)
	}
}

func (h *Handler) ready(w http.ResponseWriter, r *http.Request) {
	failed, warned := h.check(r.Context())
	body := map[string]any{"status": "ready"}
	for k, v := range h.cfg.Detail {
		body[k] = v
	}
	if len(warned) > 0 {
		body["warnings"] = warned
	}
	if len(failed) > 0 {
		body["status"] = "not ready"
		body["reason"] = failed[0]
		if len(failed) > 1 {
			body["reasons"] = failed
		}
		WriteJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	WriteJSON(w, http.StatusOK, body)
}

// check runs every check, or returns the last round's result while it is
// fresh, as "name: error" for each that failed and each warning.
func (h *Handler) check(ctx context.Context) (failed, warned []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.checked.IsZero() && time.Since(h.checked) < h.cfg.CacheTTL {
		return h.failed, h.warned
	}
	cctx, cancel := context.WithTimeout(ctx, h.cfg.CheckTimeout)
	defer cancel()
	for _, c := range h.cfg.Checks {
		if err := c.Ready(cctx); err != nil {
			if c.Warn {
				warned = append(warned, c.Name+": "+err.Error())
			} else {
				failed = append(failed, c.Name+": "+err.Error())
			}
		}
	}
	if ctx.Err() != nil {
		// The prober hung up; its cancellation says nothing about the
		// dependencies, so it is not cached.
		return failed, warned
	}
	h.checked, h.failed, h.warned = time.Now(), failed, warned
	return failed, warned
}

// WriteJSON answers status with body as JSON.
func WriteJSON(w http.ResponseWriter, status int, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		// Only Sluice's own answer types get here; they always marshal.
		http.Error(w, `{"error":"internal error"}`, http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
