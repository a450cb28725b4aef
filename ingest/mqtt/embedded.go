package mqtt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
)

// DefaultMaxInflight bounds the publishes an embedded broker hands to the
// Handler at once when EmbeddedConfig.MaxInflight is zero (SPEC:
// --mqtt-max-inflight).
const DefaultMaxInflight = 1000

// EmbeddedConfig configures an Embedded broker.
type EmbeddedConfig struct {
	// Addr is the TCP address to listen on, such as 127.0.0.1:1883; port
	// 0 picks a free port (see Embedded.Addr).
	Addr string
	// Handler receives every publish whose topic one of its routes
	// matches, before the broker acknowledges it.
	Handler *Handler
	// MaxInflight bounds the publishes being handled at once across all
	// devices; zero means DefaultMaxInflight. A device whose publish waits
	// for a slot is not read from meanwhile.
	MaxInflight int
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the broker's metrics; nil means none are
	// exported.
	Registerer prometheus.Registerer
}

// Embedded is the MQTT broker of `sluice dev`: devices connect to it
// directly (anonymously: it is meant for loopback), and it hands each
// routed publish to the Handler on the device's own read goroutine, before
// it writes the PUBACK. So a device's acknowledgement means its events are
// in Kafka, and while Kafka is slow the broker stops reading from that
// device: backpressure reaches the device through TCP. Publishes on topics
// no route matches are ordinary MQTT messages for the broker's subscribers.
//
// Mochi owns the goroutines of the listener and of each client; Run owns
// the broker and returns only once no publish is being handled any more.
type Embedded struct {
	cfg     EmbeddedConfig
	log     *slog.Logger
	hook    *publishHook
	addr    atomic.Pointer[string]
	ready   chan struct{}
	srv     atomic.Pointer[mochi.Server] // set once serving; read by the connected-clients gauge
	runOnce atomic.Bool
}

// NewEmbedded checks cfg and registers the broker's metrics. It does not
// listen yet: Run does.
func NewEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.Handler == nil {
		return nil, errors.New("mqtt embedded broker: no handler")
	}
	if cfg.Addr == "" {
		return nil, errors.New("mqtt embedded broker: no address")
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = DefaultMaxInflight
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	e := &Embedded{cfg: cfg, log: cfg.Logger.With("component", "mqtt-embedded"), ready: make(chan struct{})}
	e.hook = &publishHook{handler: cfg.Handler, sem: semaphore.NewWeighted(int64(cfg.MaxInflight)), log: e.log}
	if err := e.registerMetrics(cfg.Registerer); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *Embedded) registerMetrics(reg prometheus.Registerer) error {
	clients := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "sluice", Subsystem: "mqtt_embedded", Name: "clients_connected",
		Help: "MQTT clients connected to the embedded broker of sluice dev.",
	}, func() float64 {
		if s := e.srv.Load(); s != nil {
			return float64(atomic.LoadInt64(&s.Info.ClientsConnected))
		}
		return 0
	})
	e.hook.unacked = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "sluice", Subsystem: "mqtt_embedded", Name: "unacknowledged_publishes_total",
		Help: "Routed publishes dropped without PUBACK because the broker stopped before Kafka acknowledged them; the device resends them.",
	})
	for _, c := range []prometheus.Collector{clients, e.hook.unacked} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("mqtt embedded broker: register metrics: %w", err)
		}
	}
	return nil
}

// Name names the source in logs.
func (e *Embedded) Name() string { return "mqtt-embedded" }

// Addr returns the address the broker listens on once Run has bound it
// (see Ready), else the configured address.
func (e *Embedded) Addr() string {
	if a := e.addr.Load(); a != nil {
		return *a
	}
	return e.cfg.Addr
}

// Ready is closed once Run listens, so that a test that asked for port 0
// can read Addr.
func (e *Embedded) Ready() <-chan struct{} { return e.ready }

// Run listens on the configured address and serves devices until ctx ends.
// Then it fails the publishes still waiting for Kafka (they are dropped
// without PUBACK, so their devices resend them), closes the broker and
// waits until no publish is being handled. It may be called once.
func (e *Embedded) Run(ctx context.Context) error {
	if !e.runOnce.CompareAndSwap(false, true) {
		return errors.New("mqtt embedded broker: Run called twice")
	}
	// Handle waits with ctx: a publish still waiting for Kafka when ctx
	// ends is then refused instead of acknowledged.
	e.hook.ctx = ctx

	srv := mochi.New(&mochi.Options{Logger: e.log, InlineClient: false})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return fmt.Errorf("mqtt embedded broker: %w", err)
	}
	if err := srv.AddHook(e.hook, nil); err != nil {
		return fmt.Errorf("mqtt embedded broker: %w", err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "tcp", Address: e.cfg.Addr})
	if err := srv.AddListener(l); err != nil {
		return fmt.Errorf("mqtt embedded broker: listen on %s: %w", e.cfg.Addr, err)
	}
	addr := l.Address()
	e.addr.Store(&addr)
	if err := srv.Serve(); err != nil {
		_ = srv.Close()
		return fmt.Errorf("mqtt embedded broker: %w", err)
	}
	e.srv.Store(srv)
	close(e.ready)
	e.log.Info("embedded MQTT broker listening", "addr", addr, "max_inflight", e.cfg.MaxInflight)

	<-ctx.Done()
	e.hook.close()
	_ = srv.Close() // always nil; disconnects every device
	e.hook.wait()
	e.log.Info("embedded MQTT broker stopped")
	return nil
}

// publishHook is the broker hook that hands routed publishes to the
// Handler. Mochi calls OnPublish on the publishing client's read
// goroutine, before it writes the PUBACK (or PUBREC) and before it
// delivers to subscribers; blocking there stops reading from that client.
type publishHook struct {
	mochi.HookBase
	handler *Handler
	sem     *semaphore.Weighted
	ctx     context.Context // set by Run before the broker serves
	log     *slog.Logger
	unacked prometheus.Counter

	// mu guards closed and the Add of active, so that wait does not race
	// with a publish that arrives as the broker closes.
	mu     sync.Mutex
	closed bool
	active sync.WaitGroup
}

// ID names the hook in mochi's logs.
func (h *publishHook) ID() string { return "sluice-handler" }

// Provides tells mochi which events the hook handles: publishes only.
func (h *publishHook) Provides(b byte) bool { return b == mochi.OnPublish }

// OnPublish hands a routed publish to the Handler and returns once Kafka
// holds its events (or they are dead-lettered). On failure it returns
// packets.ErrRejectPacket, on which mochi drops the packet: no PUBACK, no
// delivery to subscribers. Any other error would not do: for MQTT 3.1.1
// mochi goes on to acknowledge the publish, and for MQTT 5 it sends a
// PUBACK with an error code, which tells the device to give up on the
// message rather than resend it.
func (h *publishHook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if _, _, ok := h.handler.Routes().Route(pk.TopicName); !ok {
		return pk, nil
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		h.unacked.Inc()
		return pk, packets.ErrRejectPacket
	}
	h.active.Add(1)
	h.mu.Unlock()
	defer h.active.Done()

	if err := h.handle(pk); err != nil {
		h.unacked.Inc()
		h.log.Warn("publish not acknowledged; the device resends it", "client", cl.ID, "topic", pk.TopicName, "qos", pk.FixedHeader.Qos, "err", err)
		return pk, fmt.Errorf("%w: %w", packets.ErrRejectPacket, err)
	}
	return pk, nil
}

// handle waits for an inflight slot, then for the Handler. QoS 0
// publishes go the same way: they have no acknowledgement to withhold,
// but blocking still slows the device down instead of dropping.
func (h *publishHook) handle(pk packets.Packet) error {
	if err := h.sem.Acquire(h.ctx, 1); err != nil {
		return fmt.Errorf("wait for an inflight slot: %w", err)
	}
	defer h.sem.Release(1)
	return h.handler.Handle(h.ctx, pk.TopicName, pk.Payload)
}

// close refuses publishes from now on.
func (h *publishHook) close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
}

// wait returns once no publish is being handled; call close first.
func (h *publishHook) wait() { h.active.Wait() }
