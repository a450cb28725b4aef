package pipeline

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicehq/sluice/backpressure"
	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/ingest/httpapi"
	"github.com/sluicehq/sluice/schemas"
)

// startIngest builds the gate and mounts the HTTP collector on mux. The
// returned func closes the Kafka producer once every source has stopped.
func startIngest(cfg Config, streams *schemas.Registry, reg *prometheus.Registry, mux *http.ServeMux) (*ingest.Gate, func(context.Context) error, error) {
	producer, err := ingest.NewKafkaProducer(ingest.KafkaConfig{Brokers: cfg.KafkaBrokers, Logger: cfg.Logger})
	if err != nil {
		return nil, nil, err
	}
	gate, err := ingest.NewGate(ingest.GateConfig{
		Registry:    streams,
		Producer:    producer,
		TopicPrefix: cfg.TopicPrefix,
		Admission:   backpressure.NewAdmission(backpressure.AdmissionConfig{Capacity: cfg.MaxInFlightEvents}),
		Logger:      cfg.Logger,
		Registerer:  reg,
	})
	if err != nil {
		producer.Close()
		return nil, nil, err
	}
	collector, err := httpapi.NewCollector(httpapi.CollectorConfig{
		Gate:         gate,
		MaxBodyBytes: cfg.MaxBodyBytes,
		Tokens:       cfg.Tokens,
		Logger:       cfg.Logger,
		Registerer:   reg,
		Gatherer:     reg,
	})
	if err != nil {
		producer.Close()
		return nil, nil, err
	}
	mux.Handle("/", collector)
	return gate, func(context.Context) error { return producer.Close() }, nil
}

// mountOps serves /healthz, /readyz and /metrics for a process without the
// collector.
func mountOps(mux *http.ServeMux, reg *prometheus.Registry, ready func(context.Context) error) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeStatus(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := ready(r.Context()); err != nil {
			writeStatus(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
			return
		}
		writeStatus(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
}

func writeStatus(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
