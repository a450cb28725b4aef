package main

import (
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/pipeline"
)

// runLong is `sluice run --help`'s description.
const runLong = `run is the production form of Sluice: the collectors, the workers, or both
(--role), against external Kafka, NATS and ClickHouse.

Settings come from, in order of precedence: the command line, SLUICE_<FLAG>
environment variables, the --config file, the defaults. The config file is
YAML whose keys are the flag names:

  role: all
  http-addr: 0.0.0.0:8080
  kafka-brokers: [kafka-1:9092, kafka-2:9092]
  nats-url: nats://nats:4222
  clickhouse-addr: clickhouse:9000
  clickhouse-database: sluice
  mqtt-broker: tcp://mosquitto:1883
  syslog-tcp-addr: 0.0.0.0:5514
  relp-addr: 0.0.0.0:2514

The HTTP collector always runs with role ingest; MQTT (--mqtt-broker), syslog
(--syslog-tcp-addr, --syslog-udp-addr) and RELP (--relp-addr) are off until
given an address.

Run collectors and workers as separate processes to scale them on their own:
each worker process joins the consumer group and takes a share of the
partitions; HTTP, syslog and RELP collectors are stateless behind a load
balancer, and MQTT collectors split the messages through a shared
subscription (--mqtt-share-group).`

func newRunCmd() *cobra.Command {
	var (
		role     string
		brokers  []string
		natsURL  string
		topicPfx string
		replicas int
		groupID  string
		p        pipelineFlags
		kafkaSec kafkaSecurityFlags
		natsSec  natsSecurity
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the pipeline against external Kafka, NATS and ClickHouse",
		Long:  runLong,
		Example: `  sluice run --config /etc/sluice/sluice.yaml
  sluice run --role ingest --kafka-brokers kafka:9092 --http-addr 0.0.0.0:8080
  sluice run --role ingest --kafka-brokers kafka:9092 --mqtt-broker tcp://mosquitto:1883 --relp-addr 0.0.0.0:2514
  SLUICE_ROLE=work SLUICE_KAFKA_BROKERS=kafka:9092 sluice run`,
		Args:        cobra.NoArgs,
		Annotations: checksSettings(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Settings first: a bad one fails before anything starts.
			r, roleErr := pipeline.ParseRole(role)
			outputs := 0
			if natsURL != "" {
				outputs = 1
			}
			cfg, err := p.config(outputs, r)
			if err != nil {
				return asUsage(err)
			}
			if cfg.Kafka, err = kafkaSec.security(cmd.Flags(), slog.Default()); err != nil {
				return asUsage(err)
			}
			defer cfg.Kafka.Close()
			if err := natsSec.apply(&cfg, natsURL, slog.Default()); err != nil {
				return asUsage(err)
			}
			if roleErr != nil {
				return asUsage(fmt.Errorf("--role: %w", roleErr))
			}
			if len(brokers) == 0 {
				return asUsage(fmt.Errorf("--kafka-brokers: required"))
			}
			if settingsOnly(cmd) {
				return nil // sluice validate: checked, start nothing
			}
			setMemoryLimit(cmd.Context(), *cfg.Memory, slog.Default())
			p.tuneProcs(cmd.Context(), slog.Default())
			cfg.Role = r
			cfg.KafkaBrokers = brokers
			cfg.NATSURL = natsURL
			cfg.TopicPrefix = topicPfx
			cfg.ReplicationFactor = replicas
			cfg.GroupID = groupID
			cfg.Logger = slog.Default()
			return explainRefusal(pipeline.Run(cmd.Context(), cfg))
		},
	}
	f := cmd.Flags()
	f.StringVar(&role, "role", "all", roleHelp)
	f.StringSliceVar(&brokers, "kafka-brokers", []string{"127.0.0.1:9092"}, "Kafka bootstrap brokers, host:port,...")
	f.StringVar(&natsURL, "nats-url", "nats://127.0.0.1:4222", "NATS server URL, or several separated by commas (empty: do not publish to NATS); tls:// asks for TLS. It may hold credentials (nats://user:password@host), which are never logged, but prefer --nats-user and --nats-password-file")
	natsSec.register(f)
	f.StringVar(&topicPfx, "topic-prefix", "sluice.", "prefix of stream topics (<prefix><stream>), the DLQ (<prefix>dlq) and NATS subjects")
	f.IntVar(&replicas, "replication-factor", 1, "replication factor of topics Sluice creates")
	f.StringVar(&groupID, "group-id", "sluice-workers", "Kafka consumer group of the workers")
	p.register(cmd, false)
	kafkaSec.register(f)
	return cmd
}
