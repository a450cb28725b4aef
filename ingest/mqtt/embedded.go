package mqtt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"

	"github.com/sluicehq/sluice/internal/defaults"
)

// DefaultMaxInflight bounds the publishes an embedded broker hands to the
// Handler at once when EmbeddedConfig.MaxInflight is zero (SPEC:
// --mqtt-max-inflight).
const DefaultMaxInflight = 1000

// Defaults of the embedded broker's bounds on its clients (EmbeddedConfig).
const (
	// DefaultMaxPacketBytes fits the largest event the gate accepts
	// (ingest.DefaultMaxEventBytes, 1,000,000 bytes, itself under Kafka's
	// default message.max.bytes) with room for the topic and properties:
	// a smaller bound would refuse events the rest of the pipeline takes,
	// a larger one only lets a client make the broker allocate more.
	DefaultMaxPacketBytes = 1 << 20
	// DefaultMaxConnections matches the syslog collector's bound.
	DefaultMaxConnections = 1024
	// DefaultConnectTimeout is as long as the HTTP collector waits for a
	// request's headers: a device on a slow link connects in well under it.
	DefaultConnectTimeout = 10 * time.Second
	// DefaultMaxKeepalive is the longest keep alive AWS IoT Core allows
	// (which also uses it for a keep alive of 0). Devices keep alive more
	// often than this in practice: mosquitto_pub 60 s, paho 30 to 60 s.
	DefaultMaxKeepalive = 20 * time.Minute
	// DefaultMaxWritesPending is an eighth of mochi's 8,192: mochi
	// allocates the queue for every accepted connection, CONNECT or not
	// (64 KiB each at 8,192, 8 KiB at 1,024).
	DefaultMaxWritesPending = 1024
)

// inflightOverhead is what a publish being handled holds besides its
// payload: mochi's packet and the events it decodes into, before they are
// encoded for Kafka (which the ingest admission weighs).
const inflightOverhead = 1 << 10

// maxKeepalive is the largest keep alive MQTT can express, in seconds.
const maxKeepalive = math.MaxUint16

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
	// MaxInflightBytes bounds the payload bytes of the publishes being
	// handled at once, each weighed by its payload and inflightOverhead;
	// zero means no bound by bytes. A publish heavier than the whole bound
	// is handled alone. Sized from the memory budget, it lets many small
	// publishes be handled at once where MaxInflight, counted at the
	// largest packet, would allow a dozen.
	MaxInflightBytes int64
	// MaxPacketBytes bounds one MQTT packet; zero means
	// DefaultMaxPacketBytes. A client that announces a bigger one in a
	// fixed header is disconnected there, before the broker allocates
	// anything for it (a remaining length can announce 256 MiB); MQTT 5
	// clients are told the bound in CONNACK. Mochi holds a packet twice
	// while it decodes it; MaxReadBytes bounds what the larger packets
	// being read take together.
	MaxPacketBytes int
	// MaxReadBytes bounds the bytes of the packets larger than 4 KiB that
	// connections are reading at once, each counted twice (mochi copies a
	// packet to decode it); zero means DefaultMaxReadBytes, and at least
	// two of the largest packets. A connection whose next packet does not
	// fit waits before mochi allocates it, until its read deadline.
	MaxReadBytes int64
	// MaxConnections bounds the open TCP connections, whether or not they
	// sent CONNECT yet; zero means DefaultMaxConnections. More are
	// accepted and closed at once, and counted.
	MaxConnections int
	// ConnectTimeout closes a connection that has not sent a whole
	// CONNECT this long after it was accepted (idle, stalled in the
	// middle, or trickling); zero means DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// MaxKeepalive bounds a client's keep alive, rounded to seconds (1 s
	// to 65,535 s); zero means DefaultMaxKeepalive. After CONNECT mochi
	// closes a client that sends no packet, or does not finish one, within
	// 1.5 keep alives; a keep alive of 0 would let a vanished device or a
	// stalled packet hold its connection forever. A client asking for 0
	// or more gets MaxKeepalive instead: MQTT 5 clients are told so in
	// CONNACK (Server Keep Alive); MQTT 3.1.1 clients cannot be, and are
	// closed after 1.5 MaxKeepalive without a packet.
	MaxKeepalive time.Duration
	// MaxWritesPending bounds the packets queued for one client (messages
	// to a subscriber, mostly); zero means DefaultMaxWritesPending. Beyond
	// it mochi drops what it would queue for that client.
	MaxWritesPending int
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
// A hostile or broken client meets bounds, each answered by closing its
// connection, counted in sluice_mqtt_embedded_connections_closed_total by
// reason and logged: at most MaxConnections connections, packets of at
// most MaxPacketBytes, CONNECT within ConnectTimeout, and then a packet at
// least every 1.5 keep alives of at most MaxKeepalive. Other devices are
// not held up meanwhile.
//
// Run owns the broker and its listener; mochi owns each client's
// goroutines, which the listener starts and ends. Run returns only once
// they have ended and no publish is being handled any more.
type Embedded struct {
	cfg     EmbeddedConfig
	log     *slog.Logger
	hook    *publishHook
	addr    atomic.Pointer[string]
	ready   chan struct{}
	srv     atomic.Pointer[mochi.Server] // set once serving; read by the connected-clients gauge
	conns   *connMetrics
	runOnce atomic.Bool
	// readBudget bounds the large packets being read (MaxReadBytes).
	readBudget *readBudget
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
	if err := cfg.setBounds(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	e := &Embedded{cfg: cfg, log: cfg.Logger.With("component", "mqtt-embedded"), ready: make(chan struct{})}
	e.hook = &publishHook{handler: cfg.Handler, sem: semaphore.NewWeighted(int64(cfg.MaxInflight)), log: e.log}
	if cfg.MaxInflightBytes > 0 {
		e.hook.bytes, e.hook.maxBytes = semaphore.NewWeighted(cfg.MaxInflightBytes), cfg.MaxInflightBytes
	}
	e.readBudget = newReadBudget(cfg.MaxReadBytes, cfg.MaxPacketBytes)
	if err := e.registerMetrics(cfg.Registerer); err != nil {
		return nil, err
	}
	return e, nil
}

// setBounds gives the zero bounds their defaults and checks the rest.
func (cfg *EmbeddedConfig) setBounds() error {
	defaults.Positive(&cfg.MaxInflight, DefaultMaxInflight)
	defaults.Positive(&cfg.MaxPacketBytes, DefaultMaxPacketBytes)
	defaults.Positive(&cfg.MaxConnections, DefaultMaxConnections)
	defaults.Positive(&cfg.MaxWritesPending, DefaultMaxWritesPending)
	defaults.Positive(&cfg.ConnectTimeout, DefaultConnectTimeout)
	defaults.Positive(&cfg.MaxKeepalive, DefaultMaxKeepalive)
	defaults.Positive(&cfg.MaxReadBytes, DefaultMaxReadBytes)
	cfg.MaxReadBytes = max(cfg.MaxReadBytes, 4*int64(cfg.MaxPacketBytes))
	// Remaining length is at most 268,435,455: a larger bound is none.
	if cfg.MaxPacketBytes > 256<<20 {
		return fmt.Errorf("mqtt embedded broker: maximum packet size %d bytes is over MQTT's 256 MiB", cfg.MaxPacketBytes)
	}
	if cfg.MaxWritesPending > math.MaxInt32 {
		return fmt.Errorf("mqtt embedded broker: %d pending writes per client is too many", cfg.MaxWritesPending)
	}
	if s := cfg.keepaliveSeconds(); s < 1 || s > maxKeepalive {
		return fmt.Errorf("mqtt embedded broker: maximum keep alive %s is not between 1s and %ds", cfg.MaxKeepalive, maxKeepalive)
	}
	return nil
}

// keepaliveSeconds is MaxKeepalive in whole seconds, rounded up.
func (cfg *EmbeddedConfig) keepaliveSeconds() int64 {
	return int64((cfg.MaxKeepalive + time.Second - 1) / time.Second)
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
	e.conns = &connMetrics{
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "sluice", Subsystem: "mqtt_embedded", Name: "connections_open",
			Help: "TCP connections open to the embedded broker of sluice dev, CONNECT sent or not; at most its maximum connections.",
		}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sluice", Subsystem: "mqtt_embedded", Name: "connections_closed_total",
			Help: "Connections the embedded broker closed because they reached a bound: max_connections (refused at accept), packet_too_large, connect_timeout (no whole CONNECT in time), keepalive_timeout (no whole packet within 1.5 keep alives).",
		}, []string{"reason"}),
		acceptErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sluice", Subsystem: "mqtt_embedded", Name: "accept_errors_total",
			Help: "Failed accepts of the embedded broker's listener (out of file descriptors, say); it retries after up to a second.",
		}),
	}
	budget := e.readBudget.bytes
	readWaits := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: "sluice", Subsystem: "mqtt_embedded", Name: "read_budget_waits_total",
		Help: "Packets over 4 KiB whose connection waited for the read budget (the bytes of large packets being read at once) before the broker allocated them.",
	}, func() float64 { return float64(budget.Waited()) })
	readHeld := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "sluice", Subsystem: "mqtt_embedded", Name: "read_budget_bytes",
		Help: "Bytes of the read budget held by connections reading packets over 4 KiB, each packet counted twice (the broker copies it to decode it).",
	}, func() float64 { return float64(budget.InFlight()) })
	for _, c := range []prometheus.Collector{clients, e.hook.unacked, e.conns.open, e.conns.closed, e.conns.acceptErrors, readWaits, readHeld} {
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

	srv, l, err := e.newServer()
	if err != nil {
		return err
	}
	addr := l.Address()
	e.addr.Store(&addr)
	if err := srv.Serve(); err != nil {
		_ = srv.Close()
		return fmt.Errorf("mqtt embedded broker: %w", err)
	}
	e.srv.Store(srv)
	close(e.ready)
	e.log.Info("embedded MQTT broker listening", "addr", addr, "max_inflight", e.cfg.MaxInflight, "max_inflight_bytes", e.cfg.MaxInflightBytes,
		"max_packet_bytes", e.cfg.MaxPacketBytes, "max_connections", e.cfg.MaxConnections,
		"connect_timeout", e.cfg.ConnectTimeout, "max_keepalive", e.cfg.MaxKeepalive)

	<-ctx.Done()
	e.hook.close()
	_ = srv.Close() // always nil; disconnects every device, closes every connection
	l.wait()
	e.hook.wait()
	e.log.Info("embedded MQTT broker stopped")
	return nil
}

// newServer builds the mochi broker with the configured bounds, its hooks
// and its listener, which listens already.
func (e *Embedded) newServer() (*mochi.Server, *boundedListener, error) {
	caps := mochi.NewDefaultServerCapabilities()
	// Mochi checks it against each fixed header's remaining length before
	// it allocates the packet, and closes the connection (no DISCONNECT).
	caps.MaximumPacketSize = uint32(e.cfg.MaxPacketBytes)
	caps.MaximumClientWritesPending = int32(e.cfg.MaxWritesPending)
	srv := mochi.New(&mochi.Options{Logger: e.log, InlineClient: false, Capabilities: caps})
	limits := &limitsHook{
		keepalive: uint16(e.cfg.keepaliveSeconds()), maxPacket: uint32(e.cfg.MaxPacketBytes), log: e.log,
	}
	for _, h := range []mochi.Hook{new(auth.AllowHook), e.hook, limits} {
		if err := srv.AddHook(h, nil); err != nil {
			return nil, nil, fmt.Errorf("mqtt embedded broker: %w", err)
		}
	}
	l := &boundedListener{
		addr: e.cfg.Addr, maxConns: e.cfg.MaxConnections, connectTimeout: e.cfg.ConnectTimeout,
		log: e.log, metrics: e.conns, sampler: newLogSampler(10 * time.Second),
		quit: make(chan struct{}), served: make(chan struct{}), conns: map[*boundedConn]struct{}{},
		budget: e.readBudget,
	}
	if err := srv.AddListener(l); err != nil {
		return nil, nil, fmt.Errorf("mqtt embedded broker: listen on %s: %w", e.cfg.Addr, err)
	}
	return srv, l, nil
}

// publishHook is the broker hook that hands routed publishes to the
// Handler. Mochi calls OnPublish on the publishing client's read
// goroutine, before it writes the PUBACK (or PUBREC) and before it
// delivers to subscribers; blocking there stops reading from that client.
type publishHook struct {
	mochi.HookBase
	handler *Handler
	sem     *semaphore.Weighted
	// bytes, when set, weighs the publishes being handled by their size,
	// up to maxBytes.
	bytes    *semaphore.Weighted
	maxBytes int64
	ctx      context.Context // set by Run before the broker serves
	log      *slog.Logger
	unacked  prometheus.Counter

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
	if h.bytes != nil {
		w := min(int64(len(pk.Payload))+inflightOverhead, h.maxBytes)
		if err := h.bytes.Acquire(h.ctx, w); err != nil {
			return fmt.Errorf("wait for in-flight bytes: %w", err)
		}
		defer h.bytes.Release(w)
	}
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

// limitsHook applies the bounds mochi has no option for: it caps each
// client's keep alive, and tells MQTT 5 clients the maximum packet size.
type limitsHook struct {
	mochi.HookBase
	keepalive uint16 // seconds
	maxPacket uint32
	log       *slog.Logger
}

// ID names the hook in mochi's logs.
func (h *limitsHook) ID() string { return "sluice-limits" }

// Provides tells mochi which events the hook handles.
func (h *limitsHook) Provides(b byte) bool { return b == mochi.OnConnect || b == mochi.OnPacketEncode }

// OnConnect caps the keep alive the client asked for. Mochi calls it once
// it has read CONNECT and before it replaces the connect timeout with a
// deadline of 1.5 keep alives, renewed before each packet; with a keep
// alive of 0 it would set none, and a client could stall in the middle
// of a packet, or vanish, and hold its connection for good.
func (h *limitsHook) OnConnect(cl *mochi.Client, pk packets.Packet) error {
	if c, ok := cl.Net.Conn.(*boundedConn); ok {
		c.connected.Store(true)
	}
	asked := cl.State.Keepalive
	if asked != 0 && asked <= h.keepalive {
		return nil
	}
	cl.State.Keepalive = h.keepalive
	cl.State.ServerKeepalive = true // sent in CONNACK to MQTT 5 clients
	if cl.Properties.ProtocolVersion < 5 {
		h.log.Info("MQTT 3 client's keep alive capped: it cannot be told, and is disconnected after 1.5 keep alives without a packet",
			"client", cl.ID, "remote", cl.Net.Remote, "asked_s", asked, "keepalive_s", h.keepalive)
	}
	return nil
}

// OnPacketEncode adds the maximum packet size to a successful CONNACK, so
// that MQTT 5 clients that heed it refuse a larger publish themselves
// instead of being disconnected for it. MQTT 3 CONNACKs have no
// properties: mochi does not encode them.
func (h *limitsHook) OnPacketEncode(cl *mochi.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Connack && pk.ReasonCode == packets.CodeSuccess.Code {
		pk.Properties.MaximumPacketSize = h.maxPacket
	}
	return pk
}

// connMetrics count the embedded broker's connections.
type connMetrics struct {
	open         prometheus.Gauge
	closed       *prometheus.CounterVec // reason
	acceptErrors prometheus.Counter
}

// boundedConn is an accepted connection. connected is set once mochi has
// read its CONNECT, to tell a connect timeout from a keep alive one.
// reading is closed at the first Read, and done once mochi's establish
// function returned: see boundedListener.Close.
type boundedConn struct {
	net.Conn
	connected atomic.Bool
	firstRead sync.Once
	reading   chan struct{}
	done      chan struct{}
	// reads takes the read budget for large packets; nil without one.
	reads *budgetedReads
}

func newBoundedConn(c net.Conn, budget *readBudget) *boundedConn {
	bc := &boundedConn{Conn: c, reading: make(chan struct{}), done: make(chan struct{})}
	if budget != nil {
		bc.reads = newBudgetedReads(budget)
	}
	return bc
}

// Read reads from the connection, marking the first read.
func (c *boundedConn) Read(b []byte) (int, error) {
	c.firstRead.Do(func() { close(c.reading) })
	if c.reads == nil {
		return c.Conn.Read(b)
	}
	return c.reads.read(c.Conn, b)
}

// SetDeadline and SetReadDeadline also bound a wait for the read budget.
func (c *boundedConn) SetDeadline(t time.Time) error {
	if c.reads != nil {
		c.reads.setDeadline(t)
	}
	return c.Conn.SetDeadline(t)
}

func (c *boundedConn) SetReadDeadline(t time.Time) error {
	if c.reads != nil {
		c.reads.setDeadline(t)
	}
	return c.Conn.SetReadDeadline(t)
}

// Close closes the connection and ends a wait for the read budget.
func (c *boundedConn) Close() error {
	if c.reads != nil {
		c.reads.cancel()
	}
	return c.Conn.Close()
}

// boundedListener is the broker's TCP listener, in place of mochi's
// listeners.TCP, which counts no connections, sets no deadline before
// CONNECT (a connection that never sends one was held, with its two
// goroutines and buffers, until the peer went away; and it blocked the
// broker's Close, which waits for every connection), and stops accepting
// for good at the first failed Accept (out of file descriptors, say).
//
// Mochi starts Serve on a goroutine of its own; Serve starts a goroutine
// per connection, which mochi's establish function owns until it returns.
// Close ends both, and wait returns once they have ended.
type boundedListener struct {
	addr           string
	maxConns       int
	connectTimeout time.Duration
	log            *slog.Logger
	metrics        *connMetrics
	sampler        *logSampler
	// budget bounds the large packets being read; nil for none.
	budget *readBudget

	ln        net.Listener
	quit      chan struct{} // closed by Close
	served    chan struct{} // closed when Serve returns
	closeOnce sync.Once
	mu        sync.Mutex
	conns     map[*boundedConn]struct{} // nil once closed
	wg        sync.WaitGroup            // the connections' goroutines
}

// ID names the listener to mochi.
func (l *boundedListener) ID() string { return "tcp" }

// Protocol is the listener's network.
func (l *boundedListener) Protocol() string { return "tcp" }

// Address is the address listened on once Init has run.
func (l *boundedListener) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.addr
}

// Init listens; mochi calls it from AddListener.
func (l *boundedListener) Init(*slog.Logger) error {
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		return err // names the address; newServer says what listens
	}
	l.ln = ln
	return nil
}

// Serve accepts connections until Close, each served by establish on a
// goroutine of its own. Beyond maxConns a connection is closed at once.
func (l *boundedListener) Serve(establish listeners.EstablishFn) {
	defer close(l.served)
	const minBackoff = 5 * time.Millisecond
	backoff := minBackoff
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || l.closing() {
				return
			}
			l.metrics.acceptErrors.Inc()
			if ok, held := l.sampler.allow("accept"); ok {
				l.log.Warn("MQTT accept failed; retrying", "err", err, "retry_in", backoff, "similar_not_logged", held)
			}
			select {
			case <-l.quit:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = minBackoff
		c := newBoundedConn(conn, l.budget)
		if ok, full := l.track(c); !ok {
			_ = c.Close()
			if full {
				l.closed("max_connections", nil, "remote", conn.RemoteAddr().String(), "max_connections", l.maxConns)
			}
			continue
		}
		// Mochi replaces this deadline once it has read CONNECT.
		_ = c.SetDeadline(time.Now().Add(l.connectTimeout))
		go l.serveConn(establish, c)
	}
}

func (l *boundedListener) closing() bool {
	select {
	case <-l.quit:
		return true
	default:
		return false
	}
}

// track records an open connection, or refuses it when the listener is
// closed or (full) maxConns are open.
func (l *boundedListener) track(c *boundedConn) (ok, full bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns == nil {
		return false, false
	}
	if len(l.conns) >= l.maxConns {
		return false, true
	}
	l.conns[c] = struct{}{}
	l.wg.Add(1)
	l.metrics.open.Inc()
	return true, false
}

// serveConn hands the connection to mochi, and releases its slot once
// mochi is done with it.
func (l *boundedListener) serveConn(establish listeners.EstablishFn, c *boundedConn) {
	defer l.wg.Done()
	err := establish(l.ID(), c)
	close(c.done)
	_ = c.Close()
	if c.reads != nil {
		c.reads.done() // mochi's read goroutine has returned
	}
	l.mu.Lock()
	if l.conns != nil {
		delete(l.conns, c)
	}
	l.mu.Unlock()
	l.metrics.open.Dec()

	remote := c.RemoteAddr().String()
	switch {
	case err == nil:
	case errors.Is(err, packets.ErrPacketTooLarge):
		l.closed("packet_too_large", err, "remote", remote)
	case errors.Is(err, os.ErrDeadlineExceeded) && !c.connected.Load():
		l.closed("connect_timeout", err, "remote", remote, "connect_timeout", l.connectTimeout)
	case errors.Is(err, os.ErrDeadlineExceeded):
		l.closed("keepalive_timeout", err, "remote", remote)
	default:
		l.log.Debug("MQTT connection ended", "remote", remote, "connected", c.connected.Load(), "err", err)
	}
}

// closed counts a connection closed at a bound, and logs it unless the
// sampler holds it back: a flood of them must not flood the log too.
func (l *boundedListener) closed(reason string, err error, attrs ...any) {
	l.metrics.closed.WithLabelValues(reason).Inc()
	ok, held := l.sampler.allow(reason)
	if !ok {
		return
	}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	attrs = append(attrs, "reason", reason, "similar_not_logged", held)
	l.log.Warn("MQTT connection closed at a bound", attrs...)
}

// Close stops accepting, disconnects the clients (closeClients sends
// MQTT 5 clients a DISCONNECT) and closes every other connection: mochi's
// own Close waits for all of them, and closes only clients that sent
// CONNECT.
//
// Mochi counts a connection in the WaitGroup its Close waits on from the
// connection's own goroutine, just before that goroutine first reads. So
// Close returns only once each connection it closed was read from (or
// mochi is done with it): then every count precedes mochi's wait, which a
// count racing it would not (a data race, and a wait that may miss it).
func (l *boundedListener) Close(closeClients listeners.CloseFn) {
	l.closeOnce.Do(func() {
		close(l.quit)
		if l.ln != nil {
			_ = l.ln.Close()
		}
		closeClients(l.ID())
		l.mu.Lock()
		conns := l.conns
		l.conns = nil
		l.mu.Unlock()
		for c := range conns {
			_ = c.Close()
		}
		for c := range conns {
			select {
			case <-c.reading:
			case <-c.done:
			}
		}
	})
}

// wait returns once Serve and the connections' goroutines have returned;
// call it after Close, and only if the broker served.
func (l *boundedListener) wait() {
	<-l.served
	l.wg.Wait()
}

// logSampler lets one log line a reason through per interval and counts
// the ones it held back.
type logSampler struct {
	every time.Duration
	mu    sync.Mutex
	next  map[string]time.Time
	held  map[string]int
}

func newLogSampler(every time.Duration) *logSampler {
	return &logSampler{every: every, next: map[string]time.Time{}, held: map[string]int{}}
}

// allow reports whether to log a line for reason now, and how many lines
// for it were held back since the last one.
func (s *logSampler) allow(reason string) (ok bool, held int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if now.Before(s.next[reason]) {
		s.held[reason]++
		return false, 0
	}
	held = s.held[reason]
	s.held[reason] = 0
	s.next[reason] = now.Add(s.every)
	return true, held
}
