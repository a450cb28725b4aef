package pipeline

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/backpressure"
	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/ingest/httpapi"
	"github.com/sluicehq/sluice/ops"
	"github.com/sluicehq/sluice/schemas"
)

// startIngest builds the gate and mounts the HTTP collector on mux. The
// returned func closes the Kafka producer once every source has stopped;
// the check is the collectors' readiness: Kafka answers and knows every
// stream's topic, as the producer sees it.
func startIngest(cfg Config, streams *schemas.Registry, reg *prometheus.Registry, mux *http.ServeMux) (*ingest.Gate, func(context.Context) error, ops.Check, error) {
	producer, err := ingest.NewKafkaProducer(ingest.KafkaConfig{Brokers: cfg.KafkaBrokers, Logger: cfg.Logger})
	if err != nil {
		return nil, nil, ops.Check{}, err
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
		return nil, nil, ops.Check{}, err
	}
	collector, err := httpapi.NewCollector(httpapi.CollectorConfig{
		Gate:         gate,
		MaxBodyBytes: cfg.MaxBodyBytes,
		Tokens:       cfg.Tokens,
		Logger:       cfg.Logger,
		Registerer:   reg,
	})
	if err != nil {
		producer.Close()
		return nil, nil, ops.Check{}, err
	}
	mux.Handle("/", collector)
	topics := gate.Topics()
	check := ops.Check{Name: "kafka", Ready: func(ctx context.Context) error { return producer.Ping(ctx, topics...) }}
	return gate, func(context.Context) error { return producer.Close() }, check, nil
}
