package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

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
		configFile string
		role       string
		brokers    []string
		natsURL    string
		topicPfx   string
		replicas   int
		groupID    string
		p          pipelineFlags
		kafkaSec   kafkaSecurityFlags
		natsSec    natsSecurity
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the pipeline against external Kafka, NATS and ClickHouse",
		Long:  runLong,
		Example: `  sluice run --config /etc/sluice/sluice.yaml
  sluice run --role ingest --kafka-brokers kafka:9092 --http-addr 0.0.0.0:8080
  sluice run --role ingest --kafka-brokers kafka:9092 --mqtt-broker tcp://mosquitto:1883 --relp-addr 0.0.0.0:2514
  SLUICE_ROLE=work SLUICE_KAFKA_BROKERS=kafka:9092 sluice run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configFile != "" {
				if err := applyConfigFile(cmd.Flags(), configFile); err != nil {
					return err
				}
				// Logging was set up before the file was read: set it up
				// again, or the file's log-level and log-format would be
				// accepted and ignored (and a bad value never refused).
				f := cmd.Flags()
				if err := setupLogging(globalFlags{logLevel: f.Lookup("log-level").Value.String(),
					logFormat: f.Lookup("log-format").Value.String()}); err != nil {
					return fmt.Errorf("config %s: %w", configFile, err)
				}
			}
			// Settings first: a bad one fails before anything starts.
			r, roleErr := pipeline.ParseRole(role)
			outputs := 0
			if natsURL != "" {
				outputs = 1
			}
			cfg, err := p.config(outputs, r)
			if err != nil {
				return err
			}
			if cfg.Kafka, err = kafkaSec.security(cmd.Flags(), slog.Default()); err != nil {
				return err
			}
			defer cfg.Kafka.Close()
			if err := natsSec.apply(&cfg, natsURL, slog.Default()); err != nil {
				return err
			}
			if roleErr != nil {
				return fmt.Errorf("--role: %w", roleErr)
			}
			if len(brokers) == 0 {
				return fmt.Errorf("--kafka-brokers: required")
			}
			setMemoryLimit(cmd.Context(), *cfg.Memory, slog.Default())
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
	f.StringVar(&configFile, "config", "", "YAML file of settings, keyed by flag name")
	f.StringVar(&role, "role", "all", "what this process runs: ingest (collectors), work (workers) or all")
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

// applyConfigFile sets every flag that neither the command line nor the
// environment set from the YAML file at path.
func applyConfigFile(flags *pflag.FlagSet, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var settings map[string]any
	if err := yaml.Unmarshal(b, &settings); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	for key, v := range settings {
		f := flags.Lookup(key)
		if f == nil || key == "config" {
			return fmt.Errorf("config %s: unknown setting %q (settings are the flags of `sluice run --help`)", path, key)
		}
		if f.Changed {
			continue
		}
		var s string
		switch x := v.(type) {
		case []any:
			parts := make([]string, len(x))
			for i, e := range x {
				parts[i] = fmt.Sprint(e)
			}
			if sv, ok := f.Value.(pflag.SliceValue); ok && len(parts) > 0 {
				// Element by element: joined with commas, a list of
				// tokens would become one token.
				if err := sv.Replace(parts); err != nil {
					return fmt.Errorf("config %s: %s: %w", path, key, shownErr(f, err))
				}
				f.Changed = true
				f.Annotations = withSource(f.Annotations, "config")
				continue
			}
			s = strings.Join(parts, ",")
		case nil:
			s = ""
		default:
			s = fmt.Sprint(x)
		}
		if err := f.Value.Set(s); err != nil {
			return fmt.Errorf("config %s: %s: %w", path, key, shownErr(f, err))
		}
		f.Changed = true
		f.Annotations = withSource(f.Annotations, "config")
	}
	return nil
}
