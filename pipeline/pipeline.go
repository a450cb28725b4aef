// Package pipeline assembles Sluice's parts into a running process: the
// collectors (role ingest), the workers (role work), or both (role all),
// against Kafka, NATS and ClickHouse at the configured addresses. The
// commands `sluice dev` and `sluice run` differ only in where those
// addresses come from.
package pipeline

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/backlog"
	"github.com/sluicehq/sluice/backpressure"
	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/ingest/httpapi"
	"github.com/sluicehq/sluice/internal/buildinfo"
	"github.com/sluicehq/sluice/kafkaconn"
	"github.com/sluicehq/sluice/kafkatopic"
	"github.com/sluicehq/sluice/membudget"
	"github.com/sluicehq/sluice/ops"
	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks/clickhouse"
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
	// HTTPTLS, when set, serves HTTPAddr over HTTPS only (--http-tls-cert).
	HTTPTLS *tls.Config
	// Tokens, when set, are the bearer tokens the collector accepts.
	Tokens []string
	// MaxBodyBytes bounds a request body, decompressed (default 8 MiB).
	MaxBodyBytes int64
	// HTTPMaxConnections bounds the connections the HTTP server serves at
	// once (default httpapi.DefaultMaxConnections).
	HTTPMaxConnections int
	// HTTPMinBodyRate is the slowest average rate, in bytes per second, at
	// which a request body may arrive after a few seconds' grace (default
	// httpapi.DefaultMinBodyRate); slower ones are answered 408.
	HTTPMinBodyRate int64
	// MaxInFlightEvents bounds events accepted but not yet acknowledged by
	// Kafka across all requests (default 200,000); beyond it requests get 429.
	MaxInFlightEvents int64
	// MaxInFlightBytes bounds the bytes of those events (default
	// ingest.DefaultAdmissionBytes); beyond it too requests get 429.
	MaxInFlightBytes int64
	// HTTPMaxParsing bounds the request bodies read and parsed at once
	// (default httpapi.DefaultMaxParsing).
	HTTPMaxParsing int
	// KafkaBatchBytes is the collectors' producer batch size in bytes
	// (default ingest.DefaultBatchBytes).
	KafkaBatchBytes int64

	KafkaBrokers []string
	// Kafka is the TLS and SASL of every Kafka connection; zero is
	// plaintext (sluice dev's embedded broker).
	Kafka kafkaconn.Security
	// KafkaLinger is how long the collectors' producer waits to fill a
	// batch (Kafka's linger.ms); zero means ingest.DefaultBatchTimeout.
	KafkaLinger       time.Duration
	TopicPrefix       string
	Partitions        int
	ReplicationFactor int
	GroupID           string

	NATSURL    string
	NATSPrefix string
	// NATSTLS, NATSUser, NATSPassword and NATSCredsFile secure the NATS
	// connection (see the nats sink's Options); credentials may also be in
	// NATSURL.
	NATSTLS                *tls.Config
	NATSUser, NATSPassword string
	NATSCredsFile          string
	// NATSMaxLag is how far NATS may fall behind before its lane skips
	// ahead (default workers.DefaultMaxLag).
	NATSMaxLag time.Duration

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
	// FetchMaxBytes, WorkInFlightBytes and BatchMaxBytes are the workers'
	// fetch size per reader, byte budget of batches in work (split between
	// the sinks) and largest batch in bytes; zero takes the workers'
	// defaults.
	FetchMaxBytes     int
	WorkInFlightBytes int64
	BatchMaxBytes     int
	// FetchShareBytes is what each partition keeps of its lanes' fetches
	// for the lanes behind (workers.Config.FetchShareBytes): zero takes
	// the default, negative keeps nothing.
	FetchShareBytes int

	// Memory, when set, is the budget the bounds above were sized from
	// (--memory-limit): its limit and the memory in use are exported as
	// metrics.
	Memory *membudget.Budget

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
	if c.HTTPMaxConnections <= 0 {
		c.HTTPMaxConnections = httpapi.DefaultMaxConnections
	}
	if c.HTTPMinBodyRate <= 0 {
		c.HTTPMinBodyRate = httpapi.DefaultMinBodyRate
	}
	if c.MaxInFlightEvents <= 0 {
		c.MaxInFlightEvents = 200_000
	}
	if c.MaxInFlightBytes <= 0 {
		c.MaxInFlightBytes = ingest.DefaultAdmissionBytes
	}
	if c.GroupID == "" {
		c.GroupID = DefaultGroupID
	}
	if c.DedupeMaxIDs <= 0 {
		c.DedupeMaxIDs = 4_000_000
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// DefaultGroupID is the workers' consumer group when none is configured.
// Each output keeps its progress in a group of its own, named after this
// one plus "." and the output's name (sluice-workers.nats).
const DefaultGroupID = "sluice-workers"

// SourceFactory builds a collector on the process's gate, registering its
// metrics with reg. The pipeline runs it and stops it on shutdown.
type SourceFactory func(gate *ingest.Gate, reg prometheus.Registerer, log *slog.Logger) (ingest.Source, error)

// newRegistry returns the process's metrics registry, with the Go runtime's
// and the process's own metrics, sluice_build_info, and the memory budget's
// where there is one.
func newRegistry(cfg Config) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildinfo.NewCollector())
	if cfg.Memory != nil {
		if err := cfg.Memory.Register(reg); err != nil {
			return nil, err
		}
	}
	return reg, nil
}

// Run runs the configured roles until ctx ends, then shuts down: the
// collectors stop taking input and finish what is in flight (acknowledged
// by Kafka or refused), the workers drain and commit, then connections
// close. The parts run as actors: one that fails stops the others and the
// process, because half a pipeline that looks alive is worse than a clear
// exit that an operator's supervisor restarts.
func Run(ctx context.Context, cfg Config) error {
	cfg.setDefaults()
	log := cfg.Logger
	reg, err := newRegistry(cfg)
	if err != nil {
		return err
	}

	streams, byTopic, ln, err := setUp(ctx, cfg)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	mux := http.NewServeMux()
	checks := []ops.Check{schemasLoaded(streams)}
	var in *ingestPart
	stop := func(err error) error {
		cancel()
		_ = g.Wait()
		ln.Close()
		if in != nil {
			in.close(log)
		}
		return err
	}
	watcher, err := watchBacklog(cfg, byTopic, reg)
	if err != nil {
		return stop(err)
	}
	g.Go(func() error { return watcher.Run(gctx) })
	// A collector that sheds for the backlog stays ready (it answers 503
	// with Retry-After); a worker in alarm is not.
	checks = append(checks, ops.Check{Name: "backlog", Ready: func(context.Context) error { return watcher.Check() }, Warn: cfg.Role.ingests()})
	if cfg.Role.ingests() {
		if in, err = startIngest(cfg, streams, reg, mux, watcher); err != nil {
			return stop(err)
		}
		checks = append(checks, in.ready)
		g.Go(func() error { return in.run(gctx) })
	} else {
		checks = append(checks, kafkaReachable(cfg.Kafka, cfg.KafkaBrokers))
	}
	if cfg.Role.works() {
		w, err := startWork(ctx, cfg, streams, byTopic, reg)
		if err != nil {
			return stop(err)
		}
		checks = append(checks, w.ready...)
		w.mount(mux)
		g.Go(func() error {
			defer w.close()
			return w.consumer.Run(gctx)
		})
		g.Go(func() error { return w.runExpiry(gctx) })
	}
	ops.New(ops.Config{Checks: checks, Gatherer: reg, Detail: map[string]any{"role": cfg.Role, "streams": streams.Names()}}).Register(mux)
	if err := mountStatus(gctx, g, mux, cfg, reg, streams.Names()); err != nil {
		return stop(err)
	}
	if cfg.Pprof {
		mountPprof(mux)
	}
	if err := serveHTTP(gctx, g, ln, mux, cfg, reg); err != nil {
		return stop(err)
	}
	err = g.Wait()
	if in != nil {
		// Last: HTTP requests and sources in flight used the producer.
		in.close(log)
	}
	log.Info("stopped")
	return err
}

// setUp loads the schemas, checks that Kafka answers, makes sure the
// stream topics exist (returning the streams by topic) and listens on
// cfg.HTTPAddr: what Run needs before it starts anything.
func setUp(ctx context.Context, cfg Config) (*schemas.Registry, map[string]*schemas.Stream, net.Listener, error) {
	streams, err := schemas.Load(cfg.SchemasDir)
	if err != nil {
		return nil, nil, nil, err
	}
	cfg.Logger.Info("schemas loaded", "streams", streams.Names())
	if err := checkKafka(ctx, cfg); err != nil {
		return nil, nil, nil, err
	}
	byTopic, err := ensureTopics(ctx, cfg, streams)
	if err != nil {
		return nil, nil, nil, err
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	return streams, byTopic, ln, nil
}

// serveHTTP runs the HTTP server as two actors: one serves, one shuts it
// down gracefully (requests in flight finish) when ctx ends.
func serveHTTP(ctx context.Context, g *errgroup.Group, ln net.Listener, h http.Handler, cfg Config, reg prometheus.Registerer) error {
	log := cfg.Logger
	srv, err := httpapi.NewServer(httpapi.ServerConfig{
		Handler:        h,
		MaxBodyBytes:   cfg.MaxBodyBytes,
		MinBodyRate:    cfg.HTTPMinBodyRate,
		MaxConnections: cfg.HTTPMaxConnections,
		Registerer:     reg,
		Logger:         log,
		TLS:            cfg.HTTPTLS,
	})
	if err != nil {
		return err
	}
	log.Info("http listening", "addr", ln.Addr().String(), "role", cfg.Role, "https", cfg.HTTPTLS != nil,
		"client_certificates", cfg.HTTPTLS != nil && cfg.HTTPTLS.ClientCAs != nil,
		"max_connections", cfg.HTTPMaxConnections, "read_timeout", srv.ReadTimeout())
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		log.Info("shutting down")
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdownCtx); err != nil {
			log.Warn("http shutdown", "err", err)
		}
		return nil
	})
	return nil
}

// ensureTopics creates the streams' topics and the dead-letter topic where
// missing, and returns the streams by topic.
func ensureTopics(ctx context.Context, cfg Config, streams *schemas.Registry) (map[string]*schemas.Stream, error) {
	topics := make([]string, 0)
	byTopic := make(map[string]*schemas.Stream)
	for _, st := range streams.Streams() {
		t := kafkatopic.Name(cfg.TopicPrefix, st.Name)
		topics = append(topics, t)
		byTopic[t] = st
	}
	topics = append(topics, kafkatopic.DLQ(cfg.TopicPrefix))
	err := waitFor(ctx, cfg.Logger, "create Kafka topics", func(ctx context.Context) error {
		return kafkatopic.Ensure(ctx, cfg.Kafka, cfg.KafkaBrokers, topics, kafkatopic.Spec{Partitions: cfg.Partitions, ReplicationFactor: cfg.ReplicationFactor})
	})
	return byTopic, err
}

// watchBacklog watches how old the unconsumed part of each stream topic is,
// against the topic's retention: the alarm of both roles, and what the
// collectors shed on.
func watchBacklog(cfg Config, byTopic map[string]*schemas.Stream, reg prometheus.Registerer) (*backlog.Watcher, error) {
	topics := make(map[string]string, len(byTopic))
	for t, st := range byTopic {
		topics[t] = st.Name
	}
	return backlog.New(backlog.Options{Brokers: cfg.KafkaBrokers, Kafka: cfg.Kafka, GroupID: cfg.GroupID, Topics: topics, Logger: cfg.Logger, Registerer: reg})
}

// schemasLoaded fails readiness when a schema directory held no streams.
func schemasLoaded(streams *schemas.Registry) ops.Check {
	return ops.Check{Name: "schemas", Ready: func(context.Context) error {
		if len(streams.Names()) == 0 {
			return errors.New("no stream schemas loaded")
		}
		return nil
	}}
}

// kafkaReachable is the work role's readiness: a broker answers.
func kafkaReachable(sec kafkaconn.Security, brokers []string) ops.Check {
	return ops.Check{Name: "kafka", Ready: func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		return sec.Ping(ctx, brokers)
	}}
}

func mountPprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
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
// process exits with the reason, for its supervisor to restart it. A
// refused login, an untrusted certificate or a missing right will not get
// better by waiting (kafkaconn.IsPermanent): those end the process at once
// with one line saying what failed, instead of two minutes of retries.
var startupRetry = backpressure.RetryPolicy{Initial: time.Second, Max: 5 * time.Second, MaxAttempts: 30, IsPermanent: kafkaconn.IsPermanent}
