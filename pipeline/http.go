package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/backpressure"
	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/ingest/httpapi"
	"github.com/sluicehq/sluice/ops"
	"github.com/sluicehq/sluice/schemas"
)

// ingestPart is the collectors' side of a process: the gate, the HTTP
// collector (mounted on the process's mux), and the other sources.
type ingestPart struct {
	producer *ingest.KafkaProducer
	sources  []ingest.Source
	// ready is the collectors' readiness: Kafka answers and knows every
	// stream's topic, as the producer sees it.
	ready ops.Check
	log   *slog.Logger
}

// startIngest builds the gate, mounts the HTTP collector on mux and builds
// the configured sources.
func startIngest(cfg Config, streams *schemas.Registry, reg *prometheus.Registry, mux *http.ServeMux, shedder ingest.Shedder) (*ingestPart, error) {
	producer, err := ingest.NewKafkaProducer(ingest.KafkaConfig{Brokers: cfg.KafkaBrokers, Kafka: cfg.Kafka, BatchTimeout: cfg.KafkaLinger, BatchBytes: cfg.KafkaBatchBytes, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	p := &ingestPart{producer: producer, log: cfg.Logger}
	gate, err := ingest.NewGate(ingest.GateConfig{
		Registry:       streams,
		Producer:       producer,
		TopicPrefix:    cfg.TopicPrefix,
		Admission:      backpressure.NewAdmission(backpressure.AdmissionConfig{Capacity: cfg.MaxInFlightEvents}),
		AdmissionBytes: backpressure.NewAdmission(backpressure.AdmissionConfig{Capacity: cfg.MaxInFlightBytes}),
		Shedder:        shedder,
		Logger:         cfg.Logger,
		Registerer:     reg,
	})
	if err != nil {
		p.close(cfg.Logger)
		return nil, err
	}
	collector, err := httpapi.NewCollector(httpapi.CollectorConfig{
		Gate:         gate,
		MaxBodyBytes: cfg.MaxBodyBytes,
		MaxParsing:   cfg.HTTPMaxParsing,
		MinBodyRate:  cfg.HTTPMinBodyRate,
		Tokens:       cfg.Tokens,
		Logger:       cfg.Logger,
		Registerer:   reg,
	})
	if err != nil {
		p.close(cfg.Logger)
		return nil, err
	}
	mux.Handle("/", collector)
	logAuth(cfg.Logger, len(cfg.Tokens))
	for _, newSource := range cfg.Sources {
		src, err := newSource(gate, reg, cfg.Logger)
		if err != nil {
			p.close(cfg.Logger)
			return nil, err
		}
		p.sources = append(p.sources, src)
	}
	topics := gate.Topics()
	p.ready = ops.Check{Name: "kafka", Ready: func(ctx context.Context) error { return producer.Ping(ctx, topics...) }}
	return p, nil
}

// logAuth says once whether the collector requires a bearer token, and how
// many it accepts (never which).
func logAuth(log *slog.Logger, tokens int) {
	if tokens == 0 {
		log.Info("http collector authentication off: any client may post events (give --token-file to require bearer tokens)", "auth", "off")
		return
	}
	log.Info("http collector authentication on: bearer token required", "auth", "on", "tokens", tokens)
}

// run runs the sources until ctx ends and each has stopped; the first that
// fails stops the others and the process.
func (p *ingestPart) run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, src := range p.sources {
		p.log.Info("collector starting", "source", src.Name())
		g.Go(func() error {
			if err := src.Run(gctx); err != nil && gctx.Err() == nil {
				return fmt.Errorf("%s collector: %w", src.Name(), err)
			}
			return nil
		})
	}
	return g.Wait()
}

// close flushes and closes the Kafka producer, once nothing produces.
func (p *ingestPart) close(log *slog.Logger) {
	if err := p.producer.Close(); err != nil {
		log.Warn("close kafka producer", "err", err)
	}
}
