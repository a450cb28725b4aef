// Package devstack runs the embedded servers of `sluice dev`: a
// Kafka-protocol broker (kfake) that keeps its data on disk, and a NATS
// server with JetStream. Production runs real Kafka and NATS instead.
package devstack

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Kafka is an embedded single-broker Kafka-protocol cluster.
type Kafka struct {
	cluster *kfake.Cluster
	addr    string
	log     *slog.Logger
}

// KafkaOption changes how StartKafka runs the broker.
type KafkaOption func(*kafkaOptions)

type kafkaOptions struct {
	brokerConfigs map[string]string
}

// BrokerConfigs sets broker-level configs of the embedded broker, such as
// log.cleaner.backoff.ms: kfake applies a topic's retention.ms only when its
// cleaner runs, every log.cleaner.backoff.ms (an hour by default). Tests set
// it to see retention act within seconds.
func BrokerConfigs(configs map[string]string) KafkaOption {
	return func(o *kafkaOptions) {
		if o.brokerConfigs == nil {
			o.brokerConfigs = make(map[string]string, len(configs))
		}
		for k, v := range configs {
			o.brokerConfigs[k] = v
		}
	}
}

// StartKafka starts a broker listening on addr (host:port) with its log and
// committed offsets under dataDir, so both survive a restart. With
// syncWrites every produced batch is fsynced before it is acknowledged, so an
// acknowledged event survives even a machine crash, at some cost in speed.
func StartKafka(addr, dataDir string, syncWrites bool, log *slog.Logger, options ...KafkaOption) (*Kafka, error) {
	var o kafkaOptions
	for _, opt := range options {
		opt(&o)
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("kafka address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("kafka address %q: bad port", addr)
	}
	opts := []kfake.Opt{
		kfake.Ports(port),
		kfake.DataDir(filepath.Join(dataDir, "kafka")),
		kfake.ClusterID("sluice-dev"),
		// kfake binds 127.0.0.1 itself; honour the host the user asked for.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(host, portStr))
		}),
		kfake.GroupMinSessionTimeout(time.Second),
		kfake.WithLogger(kfakeLogger{log.With("component", "kafka")}),
	}
	if syncWrites {
		opts = append(opts, kfake.SyncWrites())
	}
	if len(o.brokerConfigs) > 0 {
		opts = append(opts, kfake.BrokerConfigs(o.brokerConfigs))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded kafka on %s: %w", addr, err)
	}
	return &Kafka{cluster: c, addr: c.ListenAddrs()[0], log: log}, nil
}

// Addr returns the broker's address.
func (k *Kafka) Addr() string { return k.addr }

// CloseWait bounds how long Close waits for the broker to stop.
const CloseWait = 30 * time.Second

// ErrCloseTimeout is what CloseWithin returns when the broker has not
// stopped in time.
var ErrCloseTimeout = errors.New("the embedded kafka did not stop in time")

// Close persists the broker's state and stops it, waiting at most
// CloseWait; it logs an error if the broker has not stopped by then.
func (k *Kafka) Close() {
	if err := k.CloseWithin(CloseWait); err != nil {
		k.log.Error("embedded kafka: giving up waiting for it to stop; the last writes may be missing from its data directory", "waited", CloseWait, "err", err)
	}
}

// CloseWithin is Close waiting at most d, without logging: it returns
// ErrCloseTimeout when the broker has not stopped by then (it goes on
// stopping in the background).
//
// Why a bound: the broker stops by saving its state from its own request
// loop, and a `sluice dev` or a test that waits on it for ever when that
// loop is stuck never ends; one that gives up loses at most what the save
// would have written.
func (k *Kafka) CloseWithin(d time.Duration) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		k.cluster.Close()
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		return fmt.Errorf("%w (waited %s)", ErrCloseTimeout, d)
	}
}

type kfakeLogger struct{ log *slog.Logger }

func (l kfakeLogger) Logf(level kfake.LogLevel, msg string, args ...any) {
	switch level {
	case kfake.LogLevelError:
		l.log.Error(fmt.Sprintf(msg, args...))
	case kfake.LogLevelWarn:
		l.log.Warn(fmt.Sprintf(msg, args...))
	}
}

// NATS is an embedded NATS server with JetStream.
type NATS struct {
	srv *natsserver.Server
}

// NATSOption changes how StartNATS runs the server.
type NATSOption func(*natsserver.Options)

// NATSMemory bounds what the server holds in memory, for --memory-limit:
// maxMemory caps JetStream's memory storage (streams created with
// MemoryStorage; Sluice creates none, subscribers may), and maxPending what
// the server buffers for one client that reads slower than it is sent to
// (64 MiB by default, per client). Zero leaves a bound at NATS's default.
func NATSMemory(maxMemory, maxPending int64) NATSOption {
	return func(o *natsserver.Options) {
		if maxMemory > 0 {
			o.JetStreamMaxMemory = maxMemory
		}
		if maxPending > 0 {
			o.MaxPending = maxPending
		}
	}
}

// StartNATS starts a server on addr with JetStream storage under dataDir.
func StartNATS(addr, dataDir string, options ...NATSOption) (*NATS, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("nats address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("nats address %q: bad port", addr)
	}
	opts := &natsserver.Options{
		ServerName: "sluice-dev",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Join(dataDir, "nats"),
		NoSigs:     true,
		NoLog:      true,
	}
	for _, opt := range options {
		opt(opts)
	}
	srv, err := natsserver.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("start embedded nats on %s: %w", addr, err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded nats on %s: not ready after 10s", addr)
	}
	return &NATS{srv: srv}, nil
}

// URL returns the client URL of the server.
func (n *NATS) URL() string { return n.srv.ClientURL() }

// Close shuts the server down.
func (n *NATS) Close() {
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
}
