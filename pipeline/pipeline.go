// Package pipeline assembles Sluice's parts into a running process: the
// collectors (role ingest), the workers (role work), or both (role all),
// against Kafka, NATS and ClickHouse at the configured addresses. The
// commands `sluice dev` and `sluice run` differ only in where those
// addresses come from.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/backpressure"
	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/kafkatopic"
	"github.com/sluicehq/sluice/ops"
	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks/clickhouse"
	natssink "github.com/sluicehq/sluice/sinks/nats"
	"github.com/sluicehq/sluice/workers"
)

// Role says which parts a process runs.
type Role string

// The roles.
const (
	RoleIngest Role = "ingest"
	RoleWork   Role = "work"
	RoleAll    Role = "all"
)

// ParseRole checks a --role value.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleIngest, RoleWork, RoleAll:
		return r, nil
	}
	return "", fmt.Errorf("role %q: want ingest, work or all", s)
}

func (r Role) ingests() bool { return r == RoleIngest || r == RoleAll }
func (r Role) works() bool   { return r == RoleWork || r == RoleAll }

// Config is everything a Sluice process needs to know.
type Config struct {
	Role Role

	// HTTPAddr is where the collector (and /metrics, /healthz, /readyz)
	// listen; a work-only process serves only the latter three.
	HTTPAddr string
	// Tokens, when set, are the bearer tokens the collector accepts.
	Tokens []string
	// MaxBodyBytes bounds a request body, decompressed (default 8 MiB).
	MaxBodyBytes int64
	// MaxInFlightEvents bounds events accepted but not yet acknowledged by
	// Kafka across all requests (default 200,000); beyond it requests get 429.
	MaxInFlightEvents int64

	KafkaBrokers      []string
	TopicPrefix       string
	Partitions        int
	ReplicationFactor int
	GroupID           string

	NATSURL    string
	NATSPrefix string

	ClickHouse clickhouse.Options

	// Sources are the collectors besides HTTP (MQTT, syslog, RELP), built
	// on the process's gate when the role ingests.
	Sources []SourceFactory

	// Pprof serves Go's profiler at /debug/pprof/.
	Pprof bool

	// SchemasDir, when set, replaces the built-in stream definitions.
	SchemasDir string

	Workers        int
	BatchMaxEvents int
	BatchLinger    time.Duration
	SessionTimeout time.Duration
	// RebalanceTimeout bounds how long the group waits for members to
	// rejoin; in-flight deliveries of revoked partitions get two thirds of it.
	RebalanceTimeout time.Duration
	DedupeWindow     time.Duration
	// DedupeMaxIDs bounds the event_ids remembered across all partitions.
	DedupeMaxIDs int

	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Role == "" {
		c.Role = RoleAll
	}
	if c.TopicPrefix == "" {
		c.TopicPrefix = kafkatopic.DefaultPrefix
	}
	if c.NATSPrefix == "" {
		c.NATSPrefix = c.TopicPrefix
	}
	if c.Partitions <= 0 {
		c.Partitions = 8
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 8 << 20
	}
	if c.MaxInFlightEvents <= 0 {
		c.MaxInFlightEvents = 200_000
	}
	if c.DedupeMaxIDs <= 0 {
		c.DedupeMaxIDs = 4_000_000
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// SourceFactory builds a collector on the process's gate, registering its
// metrics with reg. The pipeline runs it and stops it on shutdown.
type SourceFactory func(gate *ingest.Gate, reg prometheus.Registerer, log *slog.Logger) (ingest.Source, error)

// Run runs the configured roles until ctx ends, then shuts down in order:
// the collector stops taking requests and finishes those in flight (their
// events are acknowledged by Kafka or refused), then the workers drain and
// commit, then connections close.
func Run(ctx context.Context, cfg Config) error {
	cfg.setDefaults()
	log := cfg.Logger
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	streams, err := loadSchemas(cfg.SchemasDir)
	if err != nil {
		return err
	}
	log.Info("schemas loaded", "streams", streams.Names())

	topics := make([]string, 0)
	byTopic := make(map[string]*schemas.Stream)
	for _, st := range streams.Streams() {
		t := kafkatopic.Name(cfg.TopicPrefix, st.Name)
		topics = append(topics, t)
		byTopic[t] = st
	}
	topics = append(topics, kafkatopic.DLQ(cfg.TopicPrefix))
	if err := waitFor(ctx, log, "create Kafka topics", func(ctx context.Context) error {
		return kafkatopic.Ensure(ctx, cfg.KafkaBrokers, topics, kafkatopic.Spec{Partitions: cfg.Partitions, ReplicationFactor: cfg.ReplicationFactor})
	}); err != nil {
		return err
	}

	var (
		wg      sync.WaitGroup
		errMu   sync.Mutex
		runErrs []error
	)
	fail := func(err error) {
		errMu.Lock()
		runErrs = append(runErrs, err)
		errMu.Unlock()
	}
	// A part that fails stops the whole process: half a pipeline that looks
	// alive is worse than a clear exit an operator's supervisor restarts.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	mux := http.NewServeMux()
	var ingestStop func(context.Context) error
	// Readiness: schemas are loaded (an empty directory loads none), and
	// Kafka answers as each role needs it.
	checks := []ops.Check{{Name: "schemas", Ready: func(context.Context) error {
		if len(streams.Names()) == 0 {
			return errors.New("no stream schemas loaded")
		}
		return nil
	}}}
	// Sources other than HTTP run under their own context, ended at
	// shutdown while the workers still run.
	srcCtx, stopSources := context.WithCancel(ctx)
	defer stopSources()
	var srcWG sync.WaitGroup
	if cfg.Role.ingests() {
		gate, stop, kafkaReady, err := startIngest(cfg, streams, reg, mux)
		if err != nil {
			return err
		}
		ingestStop = stop
		checks = append(checks, kafkaReady)
		for _, newSource := range cfg.Sources {
			src, err := newSource(gate, reg, log)
			if err != nil {
				stopSources()
				srcWG.Wait()
				_ = stop(ctx)
				return err
			}
			srcWG.Go(func() {
				if err := src.Run(srcCtx); err != nil && srcCtx.Err() == nil {
					fail(fmt.Errorf("%s: %w", src.Name(), err))
					cancel()
				}
			})
		}
	} else {
		// Schemas are loaded by now; readiness is Kafka answering.
		dialer := &kafka.Dialer{Timeout: 2 * time.Second}
		checks = append(checks, ops.Check{Name: "kafka", Ready: func(ctx context.Context) error {
			return kafkatopic.Ping(ctx, dialer, cfg.KafkaBrokers)
		}})
	}
	ops.New(ops.Config{Checks: checks, Gatherer: reg, Detail: map[string]any{"role": cfg.Role, "streams": streams.Names()}}).Register(mux)

	if cfg.Role.works() {
		consumer, closeSinks, err := startWork(ctx, cfg, streams, byTopic, reg)
		if err != nil {
			return err
		}
		wg.Go(func() {
			defer closeSinks()
			if err := consumer.Run(ctx); err != nil {
				fail(err)
				cancel()
			}
		})
	}

	if cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		cancel()
		wg.Wait()
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	log.Info("http listening", "addr", ln.Addr().String(), "role", cfg.Role)
	wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fail(fmt.Errorf("http server: %w", err))
			cancel()
		}
	})

	<-ctx.Done()
	log.Info("shutting down")
	shutdownCtx, cancelShutdown := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelShutdown()
	stopSources()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	srcWG.Wait()
	if ingestStop != nil {
		if err := ingestStop(shutdownCtx); err != nil {
			log.Warn("collector shutdown", "err", err)
		}
	}
	wg.Wait()
	log.Info("stopped")
	return errors.Join(runErrs...)
}

func loadSchemas(dir string) (*schemas.Registry, error) {
	if dir == "" {
		return schemas.Builtin()
	}
	return schemas.LoadDir(dir)
}

// startWork connects the sinks and builds the consumer. The returned func
// closes the sinks once the consumer has stopped.
func startWork(ctx context.Context, cfg Config, streams *schemas.Registry, byTopic map[string]*schemas.Stream, reg prometheus.Registerer) (*workers.Consumer, func(), error) {
	log := cfg.Logger
	var ch *clickhouse.Sink
	if err := waitFor(ctx, log, "connect to ClickHouse at "+cfg.ClickHouse.Addr, func(ctx context.Context) error {
		var err error
		ch, err = clickhouse.Open(ctx, cfg.ClickHouse)
		return err
	}); err != nil {
		return nil, nil, err
	}
	log.Info("clickhouse connected", "addr", cfg.ClickHouse.Addr, "version", ch.ServerVersion(), "database", cfg.ClickHouse.Database)
	if err := waitFor(ctx, log, "create ClickHouse tables", func(ctx context.Context) error {
		return ch.EnsureTables(ctx, streams.Streams())
	}); err != nil {
		ch.Close()
		return nil, nil, err
	}

	var pub *natssink.Publisher
	if cfg.NATSURL != "" {
		var err error
		pub, err = natssink.Connect(natssink.Options{URL: cfg.NATSURL, Prefix: cfg.NATSPrefix, Logger: log})
		if err != nil {
			ch.Close()
			return nil, nil, err
		}
	}
	dlq := workers.NewKafkaDLQ(cfg.KafkaBrokers, kafkatopic.DLQ(cfg.TopicPrefix))

	perPartition := cfg.DedupeMaxIDs / max(1, cfg.Partitions*len(byTopic))
	dcfg := workers.DeliveryConfig{
		Rows:                  ch,
		DLQ:                   dlq,
		IsPermanent:           clickhouse.IsPermanent,
		DedupeWindow:          cfg.DedupeWindow,
		DedupeMaxPerPartition: perPartition,
		Logger:                log,
		Registerer:            reg,
	}
	if pub != nil {
		dcfg.Publisher = pub
	}
	delivery, err := workers.NewDelivery(dcfg)
	if err != nil {
		return nil, nil, err
	}
	consumer, err := workers.NewConsumer(workers.Config{
		Brokers:          cfg.KafkaBrokers,
		GroupID:          cfg.GroupID,
		Topics:           byTopic,
		Workers:          cfg.Workers,
		BatchMaxEvents:   cfg.BatchMaxEvents,
		BatchLinger:      cfg.BatchLinger,
		SessionTimeout:   cfg.SessionTimeout,
		RebalanceTimeout: cfg.RebalanceTimeout,
		DrainTimeout:     cfg.RebalanceTimeout * 2 / 3,
		Logger:           log,
		Registerer:       reg,
	}, delivery)
	if err != nil {
		return nil, nil, err
	}
	closeSinks := func() {
		if pub != nil {
			if err := pub.Close(); err != nil {
				log.Warn("close nats", "err", err)
			}
		}
		if err := dlq.Close(); err != nil {
			log.Warn("close dlq writer", "err", err)
		}
		if err := ch.Close(); err != nil {
			log.Warn("close clickhouse", "err", err)
		}
	}
	return consumer, closeSinks, nil
}

// waitFor retries a start-up step until it works or ctx ends, saying what it
// waits for: dependencies in a compose stack come up in any order.
func waitFor(ctx context.Context, log *slog.Logger, what string, op func(context.Context) error) error {
	err := backpressure.Retry(ctx, log, what, startupRetry, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		return op(ctx)
	})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// startupRetry gives a dependency about two minutes to come up; then the
// process exits with the reason, for its supervisor to restart it.
var startupRetry = backpressure.RetryPolicy{Initial: time.Second, Max: 5 * time.Second, MaxAttempts: 30}
