package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/backpressure"
	"github.com/sluicehq/sluice/kafkaconn"
)

// checkKafka connects to the brokers once, with the configured TLS and
// SASL, before anything starts. A broker that is not up yet is waited for
// like any dependency in a compose stack; but a refused login or an
// untrusted certificate will not get better by waiting, so it ends the
// process at once with one line saying what failed and which flag to
// check, instead of two minutes of retries that all say the same.
func checkKafka(ctx context.Context, cfg Config) error {
	policy := startupRetry
	policy.IsPermanent = kafkaconn.IsPermanent
	err := backpressure.Retry(ctx, cfg.Logger, "connect to Kafka", policy, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		return cfg.Kafka.Ping(ctx, cfg.KafkaBrokers)
	})
	if err != nil {
		return fmt.Errorf("connect to Kafka: %w", err)
	}
	cfg.Logger.Info("kafka connected", "brokers", cfg.KafkaBrokers, "security", cfg.Kafka)
	return nil
}
