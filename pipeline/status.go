package pipeline

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/status"
)

// mountStatus serves the status page at / and its JSON at /api/status on
// the process's mux, from the process's own registry, sampled by an actor
// of g until ctx ends. Both roles serve it: a work-only process has no
// collector but the same mux.
func mountStatus(ctx context.Context, g *errgroup.Group, mux *http.ServeMux, cfg Config, reg *prometheus.Registry, streams []string) error {
	rep, err := status.New(status.Config{Gatherer: reg, Role: string(cfg.Role), Streams: streams, Logger: cfg.Logger})
	if err != nil {
		return err
	}
	rep.Register(mux)
	g.Go(func() error { return rep.Run(ctx) })
	return nil
}
