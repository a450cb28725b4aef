package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for SubscriberConfig.
const (
	DefaultSessionExpiry = time.Hour
	DefaultShareGroup    = "sluice"
	DefaultGrace         = 5 * time.Second
	// DefaultAckInterval is how often acknowledged messages are sent to the
	// broker as PUBACKs. paho.golang sends manual acknowledgements only on
	// a timer (50 ms by default); with at most MaxInflight messages
	// unacknowledged, a long interval caps throughput at about
	// MaxInflight per interval, so it is kept short.
	DefaultAckInterval = 2 * time.Millisecond
)

// SubscriberConfig configures a Subscriber. Broker and Handler are
// required; zero values of the rest take the defaults.
type SubscriberConfig struct {
	// Broker is the broker's URL: tcp://host:1883 or ssl://host:8883
	// (mqtt://, mqtts:// and tls:// are also understood).
	Broker string
	// Handler takes each message to Kafka; one per process, shared with
	// the embedded broker in `sluice dev`.
	Handler *Handler
	// ClientID names the persistent session; it must stay the same across
	// restarts, or the broker's held messages go to a session nobody
	// resumes. Empty means "sluice-<hostname>".
	ClientID string
	// SessionExpiry is how long the broker keeps the session (and queues
	// messages for it) while Sluice is away. It must not be zero, which
	// would end the session, and drop what it holds, on disconnect.
	SessionExpiry time.Duration
	// ShareGroup, when not empty, subscribes as $share/<group>/<filter> so
	// that several collectors split the load.
	ShareGroup string
	// MaxInflight is the MQTT 5 Receive Maximum: the broker never has more
	// unacknowledged messages out to this client, and so Sluice never
	// holds more. Zero means DefaultMaxInflight (shared with Embedded).
	MaxInflight int
	// Username and Password authenticate to the broker when Username is set.
	Username string
	Password []byte
	// TLS configures ssl:// connections; nil means the system roots.
	TLS *tls.Config
	// Grace is how long messages being handled when Run's context ends may
	// still finish (and be acknowledged); the rest are left unacknowledged
	// for the broker to redeliver.
	Grace time.Duration
	// AckInterval is how often acknowledgements are flushed to the broker
	// (see DefaultAckInterval).
	AckInterval time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the connection metrics; nil means none are
	// exported.
	Registerer prometheus.Registerer
}

// Subscriber is the MQTT collector against an external broker: an
// ingest.Source that keeps an MQTT 5 persistent session with QoS 1
// subscriptions to the handler's routes, hands the messages to the Handler
// in groups committed together (at most MaxInflight messages at once) and
// acknowledges each, in the
// order received as MQTT requires, only once the Handler says its events
// are in Kafka. While Kafka is slow the acknowledgements stop, the Receive
// Maximum fills up and the broker stops sending: backpressure without
// buffering.
//
// Goroutines: Run owns all of them (the connection manager, the acker,
// the workers that call the Handler, and the subscribe calls) and
// has stopped every one when it returns.
type Subscriber struct {
	cfg     SubscriberConfig
	broker  *url.URL
	log     *slog.Logger
	metrics *subscriberMetrics

	// order holds the messages being handled in the order received; the
	// acker acknowledges them in that order.
	order chan *job
	// work hands received messages to the workers.
	work chan *job
	// mu guards stopping and the wg.Add of message goroutines, so that no
	// message starts once shutdown has begun waiting for them.
	mu       sync.Mutex
	stopping bool
	stopped  chan struct{} // closed when shutdown begins
	msgs     sync.WaitGroup
	bg       sync.WaitGroup // subscribe calls
	fatal    chan error
	// handleCtx is what Handle calls run under: it ends Grace after Run's
	// context, so that messages in flight get a chance to finish.
	handleCtx context.Context
}

// job is one received message on its way to being acknowledged.
type job struct {
	client *paho.Client // the connection it arrived on, which must ack it
	pub    *paho.Publish
	done   chan struct{}
	err    error // set before done is closed
}

// NewSubscriber checks the config and registers the connection metrics.
func NewSubscriber(cfg SubscriberConfig) (*Subscriber, error) {
	if cfg.Handler == nil {
		return nil, errors.New("mqtt subscriber: no handler")
	}
	u, err := ParseBroker(cfg.Broker)
	if err != nil {
		return nil, err
	}
	if cfg.ClientID == "" {
		cfg.ClientID = DefaultClientID()
	}
	if cfg.SessionExpiry <= 0 {
		cfg.SessionExpiry = DefaultSessionExpiry
	}
	if cfg.SessionExpiry > time.Duration(^uint32(0))*time.Second {
		return nil, fmt.Errorf("mqtt subscriber: session expiry %s is more than MQTT allows", cfg.SessionExpiry)
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = DefaultMaxInflight
	}
	if cfg.MaxInflight > 65535 {
		return nil, fmt.Errorf("mqtt subscriber: max in-flight %d is more than MQTT's Receive Maximum allows (65535)", cfg.MaxInflight)
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.AckInterval <= 0 {
		cfg.AckInterval = DefaultAckInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	m, err := newSubscriberMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Subscriber{
		cfg: cfg, broker: u, metrics: m,
		log: cfg.Logger.With("component", "mqtt-subscriber", "broker", u.Redacted(), "client_id", cfg.ClientID),
	}, nil
}

// ParseBroker checks a --mqtt-broker URL.
func ParseBroker(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("mqtt broker %q: %w", s, err)
	}
	switch strings.ToLower(u.Scheme) {
	case "tcp", "mqtt", "ssl", "tls", "mqtts":
	default:
		return nil, fmt.Errorf("mqtt broker %q: want tcp://host:port or ssl://host:port", s)
	}
	if u.Host == "" || u.Port() == "" {
		return nil, fmt.Errorf("mqtt broker %q: want a host and a port, such as tcp://localhost:1883", s)
	}
	if u.User != nil {
		return nil, fmt.Errorf("mqtt broker %s: give the user with --mqtt-username and the password with --mqtt-password-file, not in the URL", u.Redacted())
	}
	return u, nil
}

// IsTLS reports whether a broker URL's scheme asks for TLS.
func IsTLS(u *url.URL) bool {
	switch strings.ToLower(u.Scheme) {
	case "ssl", "tls", "mqtts":
		return true
	}
	return false
}

// DefaultClientID is "sluice-<hostname>": fixed across restarts of the same
// host, so that a restarted collector resumes its session.
func DefaultClientID() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "localhost"
	}
	return "sluice-" + h
}

// Name implements ingest.Source.
func (s *Subscriber) Name() string { return "mqtt-subscriber" }

// Filters returns the topic filters the subscriber subscribes to: each
// route's subscription, shared when a share group is set, without
// duplicates.
func (s *Subscriber) Filters() []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range s.cfg.Handler.Routes() {
		f := r.Subscription()
		if s.cfg.ShareGroup != "" {
			f = "$share/" + s.cfg.ShareGroup + "/" + f
		}
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	return out
}
