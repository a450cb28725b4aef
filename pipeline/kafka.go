package pipeline

import (
	"context"
)

// checkKafka connects to the brokers once, with the configured TLS and
// SASL, before anything starts, and logs how it connected. A broker not
// up yet is waited for; a refused login or certificate ends the process
// at once (see startupRetry).
func checkKafka(ctx context.Context, cfg Config) error {
	err := waitFor(ctx, cfg.Logger, "connect to Kafka", func(ctx context.Context) error {
		return cfg.Kafka.Ping(ctx, cfg.KafkaBrokers)
	})
	if err != nil {
		return err
	}
	cfg.Logger.Info("kafka connected", "brokers", cfg.KafkaBrokers, "security", cfg.Kafka)
	return nil
}
