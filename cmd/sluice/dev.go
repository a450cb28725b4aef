package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sluicehq/sluice/devstack"
	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/ingest/httpapi"
	"github.com/sluicehq/sluice/membudget"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/sinks/clickhouse"
	"github.com/sluicehq/sluice/workers"
)

// devLong is dev's --help.
const devLong = `dev runs everything in one process: an embedded Kafka-protocol broker that
keeps its log and committed offsets under --data-dir, an embedded NATS server
(with JetStream), the collectors and the workers. Only ClickHouse is
external: point --clickhouse-addr at one (scripts/clickhouse.sh starts one).

The collectors listen on loopback: HTTP on --http-addr, an MQTT broker on
--mqtt-addr (devices publish to devices/<device_id>/telemetry and
services/<service>/logs with QoS 1; the PUBACK waits for Kafka), syslog on
--syslog-tcp-addr and --syslog-udp-addr, and RELP (rsyslog's omrelp) on
--relp-addr. An empty address turns that collector off.

Stopping it with Ctrl-C or SIGTERM finishes requests in flight, lets the
workers deliver and commit, and persists the broker; starting it again on the
same --data-dir carries on where it stopped, losing and duplicating nothing.`

func newDevCmd() *cobra.Command {
	var (
		dataDir    string
		kafkaAddr  string
		natsAddr   string
		syncWrites bool
		p          pipelineFlags
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole pipeline on one machine, with embedded Kafka and NATS",
		Long:  devLong,
		Example: `  sluice dev --data-dir ./sluice-data
  curl -X POST localhost:8080/v1/streams/iot_telemetry/events \
    -d '{"device_id":"sensor-1","ts":"2026-11-24T10:00:00Z","metrics":{"temperature":21.5}}'
  mosquitto_pub -q 1 -t devices/sensor-1/telemetry -m '{"ts":1795514400123,"metrics":{"temperature":21.5}}'
  logger -n 127.0.0.1 -P 5514 -T --octet-count --rfc5424 -t checkout -p user.err "payment declined"`,
		Args:        cobra.NoArgs,
		Annotations: checksSettings(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.Default()
			// Settings first: a bad one fails before anything starts. The
			// memory budget is among them: it bounds the embedded servers
			// too, and the collectors are built with their share.
			cfg, err := p.config(1, pipeline.RoleAll)
			if err != nil {
				return asUsage(err)
			}
			if settingsOnly(cmd) {
				return nil // sluice validate: checked, start nothing
			}
			if err := os.MkdirAll(dataDir, 0o755); err != nil {
				return fmt.Errorf("data dir: %w", err)
			}
			setMemoryLimit(cmd.Context(), *cfg.Memory, log)
			p.tuneProcs(cmd.Context(), log)
			kafka, err := devstack.StartKafka(kafkaAddr, dataDir, syncWrites, log)
			if err != nil {
				return err
			}
			// Closing persists the broker's state; it must come after the
			// pipeline has stopped producing and committing.
			defer func() {
				kafka.Close()
				log.Info("embedded kafka stopped")
			}()
			log.Info("embedded kafka listening", "addr", kafka.Addr(), "data", dataDir)
			nats, err := devstack.StartNATS(natsAddr, dataDir, devstack.NATSMemory(cfg.Memory.NATSMaxMemory, cfg.Memory.NATSMaxPending))
			if err != nil {
				return err
			}
			defer nats.Close()
			log.Info("embedded nats listening", "url", nats.URL())

			cfg.KafkaBrokers = []string{kafka.Addr()}
			cfg.NATSURL = nats.URL()
			cfg.Role = pipeline.RoleAll
			cfg.Logger = log
			return explainRefusal(pipeline.Run(cmd.Context(), cfg))
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", "sluice-data", "directory for the embedded broker's log and offsets and NATS's store")
	f.StringVar(&kafkaAddr, "kafka-addr", "127.0.0.1:9092", "address of the embedded Kafka-protocol broker")
	f.StringVar(&natsAddr, "nats-addr", "127.0.0.1:4222", "address of the embedded NATS server")
	f.BoolVar(&syncWrites, "kafka-sync-writes", false, "fsync every produced batch before acknowledging it. Off (Kafka's own default), an acknowledged event survives a crash or kill of sluice but not a power loss; on, it survives that too, at about a third of the throughput")
	p.register(cmd, true)
	return cmd
}

// pipelineFlags are the flags `dev` and `run` share.
type pipelineFlags struct {
	httpAddr       string
	chAddr         string
	chDatabase     string
	chUser         string
	chSecurity     clickhouseSecurity
	https          httpsFlags
	schemasDir     string
	tokens         []string
	tokenFile      string
	flags          *pflag.FlagSet
	maxBody        int64
	maxConns       int
	minBodyRate    int64
	partitions     int
	workers        int
	batchMax       int
	batchLinger    time.Duration
	sessionTimeout time.Duration
	rebalance      time.Duration
	dedupeWindow   time.Duration
	dedupeMaxIDs   int
	pprof          bool
	adaptiveProcs  bool
	kafkaLinger    time.Duration
	natsMaxLag     time.Duration
	chPartition    string
	chTTL          string
	collectors     collectorFlags
	dev            bool
	memoryLimit    membudget.Size
}

// register adds the flags to cmd; dev says whether cmd is `sluice dev`,
// whose collectors default to on.
func (p *pipelineFlags) register(cmd *cobra.Command, dev bool) {
	f := cmd.Flags()
	p.dev, p.flags = dev, f
	p.memoryLimit = membudget.Size(membudget.DefaultLimit)
	f.Var(&p.memoryLimit, "memory-limit", memoryLimitHelp)
	p.collectors.register(f, dev)
	f.StringVar(&p.httpAddr, "http-addr", "127.0.0.1:8080", "address of the HTTP collector, /metrics, /healthz and /readyz")
	f.StringVar(&p.chAddr, "clickhouse-addr", "127.0.0.1:9000", "ClickHouse native-protocol address")
	f.StringVar(&p.chDatabase, "clickhouse-database", "sluice", "ClickHouse database for the stream tables (created if missing)")
	f.StringVar(&p.chUser, "clickhouse-user", "default", "ClickHouse user")
	p.chSecurity.register(f)
	p.https.register(f)
	f.StringVar(&p.chPartition, "clickhouse-partition", clickhouse.PartitionMonth, "time partitions of the tables Sluice creates, by the time rows were stored: month or day")
	f.StringVar(&p.chTTL, "clickhouse-ttl", "", "drop stored rows older than this, whole partitions at a time (e.g. 90d; empty: keep everything); a table TTL on servers from 22.8, Sluice's own hourly DROP PARTITION on older ones")
	f.StringVar(&p.schemasDir, "schemas", "", "directory of stream definitions (*.yaml) replacing the built-in ones")
	registerTokenFlags(f, &p.tokens, &p.tokenFile)
	f.Int64Var(&p.maxBody, "max-body-bytes", 8<<20, "largest request body accepted, after decompression")
	f.IntVar(&p.maxConns, "http-max-connections", 0, "most connections the HTTP server serves at once; beyond it the connection idle the longest is closed to make room, or with none idle new connections wait to be accepted. 0 sizes it from --memory-limit (112 KiB each, what one sending its headers holds; 80 at 512MiB)")
	f.Int64Var(&p.minBodyRate, "http-min-body-rate", httpapi.DefaultMinBodyRate, fmt.Sprintf("slowest average rate, in bytes/s, at which a request body may arrive once its first %s have passed; a slower (or silent) upload is answered 408 and closed. The server's read timeout is sized from it and --max-body-bytes", httpapi.DefaultBodyGrace))
	f.IntVar(&p.partitions, "partitions", 8, "partitions of each stream topic when Sluice creates it")
	f.IntVar(&p.workers, "workers", 8, "worker goroutines delivering batches")
	f.IntVar(&p.batchMax, "batch-max-events", 10_000, "largest batch (one ClickHouse INSERT) in events")
	f.DurationVar(&p.batchLinger, "batch-linger", workers.DefaultBatchLinger, "longest a batch waits to fill before it is delivered: about how long until an event is visible in ClickHouse at low rates; shorter means more, smaller INSERTs (ClickHouse advises at most about one a second per table) and more CPU per event")
	f.DurationVar(&p.sessionTimeout, "session-timeout", 10*time.Second, "how long the consumer group waits for a silent worker before reassigning its partitions")
	f.DurationVar(&p.rebalance, "rebalance-timeout", 30*time.Second, "how long the consumer group waits for workers to rejoin in a rebalance; a revoked partition's in-flight delivery gets two thirds of it to finish")
	f.DurationVar(&p.dedupeWindow, "dedupe-window", 10*time.Minute, "how far back in receive time (received_at) a retried event_id is recognised as a duplicate; a sink outage does not shorten it")
	f.DurationVar(&p.natsMaxLag, "nats-max-lag", workers.DefaultMaxLag, "how far NATS may fall behind (by Kafka timestamp) before its lane skips ahead, recording the skipped range in the dead-letter topic; ClickHouse never skips")
	f.IntVar(&p.dedupeMaxIDs, "dedupe-max-ids", 0, "bound on event_ids remembered for deduplication (about 50 bytes each); 0 sizes it from --memory-limit")
	f.DurationVar(&p.kafkaLinger, "kafka-linger", ingest.DefaultBatchTimeout, "how long the collectors' Kafka producer waits to fill a batch (Kafka's linger.ms): shorter lowers acknowledgement latency (a single RELP connection, whose sender waits for its window, gains most), longer spends less CPU per event under load")
	f.BoolVar(&p.pprof, "pprof", false, "serve Go's profiler at /debug/pprof/ on --http-addr (for diagnosing CPU and memory)")
	f.BoolVar(&p.adaptiveProcs, "adaptive-procs", true, "lower GOMAXPROCS, down to 1, while the process uses a fraction of a core, and raise it again within a second of it getting busy: at low and moderate rates this saves the CPU Go spends waking idle threads (a sixth of it at 20,000 events/s on 2 cores). GOMAXPROCS set in the environment turns it off")
}

// config builds the pipeline's configuration with the bounds sized from
// --memory-limit, for a process running role with ClickHouse and outputs
// other sinks (NATS). It checks every setting, so that a bad one fails
// before anything starts.
func (p *pipelineFlags) config(outputs int, role pipeline.Role) (pipeline.Config, error) {
	if p.maxConns < 0 || p.minBodyRate <= 0 {
		return pipeline.Config{}, fmt.Errorf("--http-max-connections must not be negative, and --http-min-body-rate must be positive")
	}
	if err := p.checkPositive(); err != nil {
		return pipeline.Config{}, err
	}
	tokens, err := resolveTokens(p.flags, p.tokens, p.tokenFile, slog.Default())
	if err != nil {
		return pipeline.Config{}, err
	}
	budget, err := p.memoryBudget(outputs, role)
	if err != nil {
		return pipeline.Config{}, err
	}
	sources, err := p.collectors.sources(p.dev)
	if err != nil {
		return pipeline.Config{}, err
	}
	tables, err := tableOptions(p.chPartition, p.chTTL)
	if err != nil {
		return pipeline.Config{}, err
	}
	cfg := pipeline.Config{
		Sources:          sources,
		KafkaLinger:      p.kafkaLinger,
		HTTPAddr:         p.httpAddr,
		Tokens:           tokens,
		MaxBodyBytes:     p.maxBody,
		HTTPMinBodyRate:  p.minBodyRate,
		Partitions:       p.partitions,
		Workers:          p.workers,
		BatchMaxEvents:   p.batchMax,
		BatchLinger:      p.batchLinger,
		SessionTimeout:   p.sessionTimeout,
		RebalanceTimeout: p.rebalance,
		DedupeWindow:     p.dedupeWindow,
		DedupeMaxIDs:     p.dedupeMaxIDs,
		NATSMaxLag:       p.natsMaxLag,
		SchemasDir:       p.schemasDir,
		Pprof:            p.pprof,
		ClickHouse: clickhouse.Options{
			Addr:     p.chAddr,
			Database: p.chDatabase,
			Username: p.chUser,
			Tables:   tables,
		},
	}
	if err := p.chSecurity.apply(&cfg.ClickHouse, slog.Default()); err != nil {
		return pipeline.Config{}, err
	}
	if err := p.https.apply(&cfg); err != nil {
		return pipeline.Config{}, err
	}
	applyBudget(&cfg, budget)
	return cfg, nil
}

// checkPositive refuses a size the memory plan divides by when it is not
// positive, naming its flag: the plan's own error would blame
// --memory-limit, which the user may not have set at all.
func (p *pipelineFlags) checkPositive() error {
	sizes := []struct {
		name string
		v    int64
	}{
		{"max-body-bytes", p.maxBody},
		{"partitions", int64(p.partitions)},
		{"mqtt-max-packet-bytes", int64(flagInt(p.flags, "mqtt-max-packet-bytes", 1))},
	}
	for _, s := range sizes {
		if s.v <= 0 {
			return fmt.Errorf("--%s %d: must be positive", s.name, s.v)
		}
	}
	return nil
}
