// Package status tells what a Sluice process is doing, from its own
// Prometheus registry: rates per stream and stage, lag and backlog age per
// partition, sink state, memory against --memory-limit, role and uptime.
// A Reporter samples the registry every second and serves the result as
// JSON at GET /api/status and as a page at GET /; `sluice top` merges the
// JSON of several processes (Merge).
package status

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Config.
const (
	DefaultInterval = time.Second
	DefaultWindow   = 5 * time.Second
)

// Config says where a Reporter reads its figures and what it knows of the
// process besides them.
type Config struct {
	// Gatherer is the process's registry, holding all its metrics.
	Gatherer prometheus.Gatherer
	// Role is the process's role (ingest, work or all): it decides which
	// stages are shown.
	Role string
	// Streams are the streams the process knows, shown with zeros before
	// their first event.
	Streams []string
	// Interval is how often the registry is sampled (DefaultInterval).
	Interval time.Duration
	// Window is the span rates are averaged over (DefaultWindow): short
	// enough to follow a change, long enough that a batch every second
	// does not make the rates flicker.
	Window time.Duration
	// Logger reports failed samples.
	Logger *slog.Logger
}

// Reporter samples a registry and keeps the readings of the last Window,
// from which it computes the Status.
type Reporter struct {
	cfg     Config
	started time.Time

	mu       sync.Mutex
	readings []*reading // oldest first; the oldest is at or before newest-Window
	current  *Status
}

// New returns a Reporter; Run samples.
func New(cfg Config) (*Reporter, error) {
	if cfg.Gatherer == nil {
		return nil, errors.New("status: no metrics gatherer")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Reporter{cfg: cfg, started: time.Now()}, nil
}

// Run samples the registry at once and then every Interval until ctx ends.
func (r *Reporter) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		if err := r.sample(time.Now()); err != nil {
			// Gather reports a broken collector; the others' figures
			// are still worth showing, so this only warns.
			r.cfg.Logger.Warn("status: read metrics", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// sample reads the registry once, taken as at, and recomputes the status.
func (r *Reporter) sample(at time.Time) error {
	families, err := r.cfg.Gatherer.Gather()
	if err != nil {
		err = fmt.Errorf("gather: %w", err)
	}
	cur := read(at, families)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.readings = append(r.readings, cur)
	// Drop readings while the next one still covers the whole window.
	for len(r.readings) > 1 && !r.readings[1].at.After(at.Add(-r.cfg.Window)) {
		r.readings = r.readings[1:]
	}
	st := build(r.cfg.Role, r.cfg.Streams, r.started, r.readings[0], cur)
	r.current = &st
	return err
}

// Status returns the latest status, sampling first if Run has not yet.
func (r *Reporter) Status() Status {
	r.mu.Lock()
	st := r.current
	r.mu.Unlock()
	if st == nil {
		_ = r.sample(time.Now())
		r.mu.Lock()
		st = r.current
		r.mu.Unlock()
	}
	return *st
}
