package syslog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/sluicehq/sluice/backpressure"
	"github.com/sluicehq/sluice/ingest"
)

// sourceName labels the gate's metrics and the dead letters of syslog.
const sourceName = "syslog"

// Collector is the syslog source: a TCP listener, a UDP listener, or both,
// feeding one gate. New binds the sockets, so an address in use fails at
// start-up and port 0 can be read back; Run serves them until its context
// ends and then closes them. A Collector is run once.
//
// Goroutines, all owned by Run and all ended before it returns: the TCP
// accept loop, one reader per TCP connection (it reads, batches and
// commits; reading pauses while it commits, which is how a slow Kafka
// slows a TCP sender), the UDP socket reader and the UDP committer.
type Collector struct {
	gate    *ingest.Gate
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	tcp     net.Listener
	udp     net.PacketConn

	// slots holds a token per TCP batch being read or committed (see
	// Config.MaxBufferBytes); stopping is closed when Run's context ends,
	// releasing readers that wait for one.
	slots    chan struct{}
	stopping chan struct{}
	// long is Config.MaxLongMessageBytes, taken by the TCP readers.
	long *backpressure.Admission

	mu    sync.Mutex
	conns map[net.Conn]struct{} // open TCP connections, closed on shutdown
}

// New binds the configured listeners and registers the metrics.
func New(gate *ingest.Gate, cfg Config) (*Collector, error) {
	if gate == nil {
		return nil, errors.New("syslog: no gate")
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if limit := int(gate.AdmissionCapacity()); limit > 0 && cfg.MaxBatchLines > limit {
		// A batch larger than the whole admission could never commit.
		cfg.MaxBatchLines = limit
	}
	cfg.MaxBatchLines = min(cfg.MaxBatchLines, gate.MaxEvents())
	long := backpressure.NewAdmission(backpressure.AdmissionConfig{Capacity: int64(cfg.MaxLongMessageBytes), MaxWait: cfg.ReadTimeout})
	m, err := newMetrics(cfg.Registerer, long)
	if err != nil {
		return nil, err
	}
	c := &Collector{gate: gate, cfg: cfg, log: cfg.Logger.With("component", "syslog"), metrics: m, long: long,
		slots:    make(chan struct{}, max(2, cfg.MaxBufferBytes/cfg.MaxBatchBytes)),
		stopping: make(chan struct{}),
		conns:    make(map[net.Conn]struct{})}
	if cfg.TCPAddr != "" {
		if c.tcp, err = net.Listen("tcp", cfg.TCPAddr); err != nil {
			return nil, fmt.Errorf("syslog: listen on TCP %s: %w", cfg.TCPAddr, err)
		}
	}
	if cfg.UDPAddr != "" {
		if c.udp, err = net.ListenPacket("udp", cfg.UDPAddr); err != nil {
			if c.tcp != nil {
				_ = c.tcp.Close()
			}
			return nil, fmt.Errorf("syslog: listen on UDP %s: %w", cfg.UDPAddr, err)
		}
	}
	return c, nil
}

// Name names the source in logs.
func (c *Collector) Name() string { return sourceName }

// TCPAddr is the bound TCP address, nil when TCP is off.
func (c *Collector) TCPAddr() net.Addr {
	if c.tcp == nil {
		return nil
	}
	return c.tcp.Addr()
}

// UDPAddr is the bound UDP address, nil when UDP is off.
func (c *Collector) UDPAddr() net.Addr {
	if c.udp == nil {
		return nil
	}
	return c.udp.LocalAddr()
}

// Run serves the listeners until ctx ends. Then it stops accepting, stops
// reading, gives the lines already read up to Config.ShutdownGrace to
// reach Kafka, abandons the rest (counted as dropped) and returns once
// every goroutine it started has ended.
func (c *Collector) Run(ctx context.Context) error {
	// Commits outlive ctx by the grace, so that what was read when the
	// process was told to stop is not thrown away for nothing.
	commitCtx, cancelCommits := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelCommits()
	stopGrace := context.AfterFunc(ctx, func() {
		time.AfterFunc(c.cfg.ShutdownGrace, cancelCommits)
	})
	defer stopGrace()

	var wg sync.WaitGroup
	if c.tcp != nil {
		c.log.Info("syslog TCP listening", "addr", c.tcp.Addr().String(),
			"max_connections", c.cfg.MaxConnections, "max_message_bytes", c.cfg.MaxMessageBytes)
		wg.Go(func() { c.serveTCP(ctx, commitCtx, &wg) })
	}
	if c.udp != nil {
		c.log.Info("syslog UDP listening", "addr", c.udp.LocalAddr().String())
		wg.Go(func() { c.serveUDP(ctx, commitCtx) })
	}
	<-ctx.Done()
	close(c.stopping)
	if c.tcp != nil {
		_ = c.tcp.Close()
		c.closeConns()
	}
	if c.udp != nil {
		_ = c.udp.Close()
	}
	wg.Wait()
	return nil
}

// commit sends a batch, waiting while the gate pushes back. Lines it could
// not commit are counted as dropped: a syslog sender cannot be told.
func (c *Collector) commit(ctx context.Context, b *ingest.Batch, transport string) {
	if b.Len() == 0 {
		return
	}
	err := b.CommitWait(ctx)
	if err == nil {
		return
	}
	reason := "refused"
	if ctx.Err() != nil {
		reason = "shutdown"
	}
	c.metrics.dropped.WithLabelValues(transport, reason).Add(float64(b.Len()))
	c.log.Warn("syslog lines lost", "transport", transport, "lines", b.Len(), "reason", reason, "err", err)
}

// add maps one message and adds it to b, counting it in tm. peer, when
// set, is named in the reason of a dead letter (for UDP batches, whose
// origin is the listener).
func (c *Collector) add(b *ingest.Batch, msg []byte, now time.Time, tm *transportMetrics, peer string) error {
	tm.lines.Inc()
	tm.bytes.Add(float64(len(msg)))
	context := ""
	if peer != "" {
		context = "from " + peer
	}
	parsed, err := AddLine(b, msg, now, c.cfg.DeriveIDs, context)
	if !parsed {
		tm.parseFailed.Inc()
	}
	return err
}

// begin starts a batch of lines from peer.
func (c *Collector) begin(peer string) (*ingest.Batch, error) {
	b, err := c.gate.Begin(Stream, ingest.Origin{Source: sourceName, Detail: peer, DeadLetter: true})
	if err != nil {
		return nil, fmt.Errorf("syslog: %w", err)
	}
	return b, nil
}
