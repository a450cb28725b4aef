package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/ingest/mqtt"
	"github.com/sluicehq/sluice/internal/tlsfiles"
	"github.com/sluicehq/sluice/membudget"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/schemas"
)

func init() {
	sourceFlagKinds = append(sourceFlagKinds, func() sourceFlags { return &mqttFlags{} })
}

// mqttFlags are the MQTT collector's flags: a subscriber to an external
// broker (--mqtt-broker, both commands) and, in `sluice dev`, the embedded
// broker (--mqtt-addr).
type mqttFlags struct {
	broker        string
	addr          string // dev only
	routes        []string
	clientID      string
	sessionExpiry time.Duration
	shareGroup    string
	maxInflight   int
	username      string
	flags         *pflag.FlagSet // for the password, see registerSecret
	tlsCA         string
	tlsCert       string
	tlsKey        string
	deriveIDs     bool

	// maxInflightBytes bounds the embedded broker's publishes in flight by
	// bytes, from --memory-limit; it stays 0 when --mqtt-max-inflight was
	// given, which then bounds them by count alone.
	maxInflightBytes int64
	// maxReadBytes bounds the embedded broker's large packets being read
	// (mqtt.EmbeddedConfig.MaxReadBytes), from --memory-limit.
	maxReadBytes int64

	// The embedded broker's bounds on its clients (dev only).
	maxPacketBytes int
	maxConns       int
	connectTimeout time.Duration
	maxKeepalive   time.Duration
}

func (m *mqttFlags) register(f *pflag.FlagSet, dev bool) {
	f.StringVar(&m.broker, "mqtt-broker", "", "MQTT broker to subscribe to, tcp://host:1883 or ssl://host:8883 (MQTT 5; empty: no subscriber). Devices may publish to it with MQTT 3.1.1")
	if dev {
		f.StringVar(&m.addr, "mqtt-addr", "127.0.0.1:1883", "address of the embedded MQTT broker that devices publish to (empty: none); a device's PUBACK waits until its events are in Kafka")
		f.IntVar(&m.maxPacketBytes, "mqtt-max-packet-bytes", mqtt.DefaultMaxPacketBytes,
			"largest MQTT packet the embedded broker takes (a publish: its topic and payload and a few bytes); a device announcing a bigger one is disconnected before the broker allocates it. MQTT 5 devices are told in CONNACK. Below about 1 MB it refuses events the rest of the pipeline takes")
		f.IntVar(&m.maxConns, "mqtt-max-connections", 0,
			"most TCP connections the embedded broker holds open, CONNECT sent or not; more are closed as soon as they are accepted. 0 sizes it from --memory-limit (32 KiB each besides their packets; 102 at 512MiB, at most 1024)")
		f.DurationVar(&m.connectTimeout, "mqtt-connect-timeout", mqtt.DefaultConnectTimeout,
			"a connection to the embedded broker that has not sent a whole CONNECT this long after it opened is closed")
		f.DurationVar(&m.maxKeepalive, "mqtt-max-keepalive", mqtt.DefaultMaxKeepalive,
			"longest keep alive the embedded broker grants (1s to 18h12m15s); a device asking for more, or for none (0), gets this one: MQTT 5 devices are told in CONNACK, MQTT 3.1.1 devices are disconnected after 1.5 times it without a packet. It bounds how long a vanished device or a stalled packet holds a connection")
	}
	f.StringArrayVar(&m.routes, "mqtt-route", nil, "FILTER=STREAM: messages on topics matching FILTER go to STREAM; a level {field} matches like + and fills that field when the payload lacks it (repeatable; default "+strings.Join(mqtt.DefaultRoutes, " and ")+")")
	f.StringVar(&m.clientID, "mqtt-client-id", mqtt.DefaultClientID(), "MQTT client id of the subscriber's persistent session; keep it fixed across restarts (give each collector of a share group its own)")
	setDocDefault(f, "mqtt-client-id", "sluice-<hostname>")
	f.DurationVar(&m.sessionExpiry, "mqtt-session-expiry", mqtt.DefaultSessionExpiry, "how long the broker keeps the session, and queues messages for it, while the subscriber is away (non-zero)")
	f.StringVar(&m.shareGroup, "mqtt-share-group", mqtt.DefaultShareGroup, "subscribe as $share/GROUP/FILTER so that several collectors split the messages (empty: a plain subscription)")
	f.IntVar(&m.maxInflight, "mqtt-max-inflight", mqtt.DefaultMaxInflight, "most MQTT messages held unacknowledged (waiting for Kafka); the subscriber's MQTT 5 Receive Maximum, so the broker sends no more. Unless given, sized from --memory-limit: the subscriber's as messages of --mqtt-max-packet-bytes, the embedded broker's by each publish's size (up to 1000 at once)")
	f.StringVar(&m.username, "mqtt-username", "", "user name for the MQTT broker")
	registerSecret(f, "mqtt-password", "MQTT broker password")
	m.flags = f
	f.StringVar(&m.tlsCA, "mqtt-tls-ca", "", "PEM CA bundle to verify an ssl:// broker (default: the system roots)")
	f.StringVar(&m.tlsCert, "mqtt-tls-cert", "", "PEM client certificate for an ssl:// broker (with --mqtt-tls-key)")
	f.StringVar(&m.tlsKey, "mqtt-tls-key", "", "PEM private key of --mqtt-tls-cert")
	f.BoolVar(&m.deriveIDs, "mqtt-derive-ids", true, "give events without event_id one derived from the topic, the payload and the event's index, so that a message the broker redelivers counts once (two byte-identical messages on one topic within the dedupe window also count once); false: random ids")
}

// useBudget takes the messages in flight from --memory-limit unless
// --mqtt-max-inflight was given, and the embedded broker's read budget and
// connections (unless --mqtt-max-connections was given).
//
// The subscriber's bound is a count (MQTT's Receive Maximum: the broker may
// send that many messages of any size), counted at the largest packet. The
// embedded broker weighs each publish by its size instead, within the same
// memory, and counts up to mqtt.DefaultMaxInflight.
func (m *mqttFlags) useBudget(b membudget.Budget, explicit func(string) bool) {
	m.maxReadBytes = b.MQTTReadBytes
	// The plan counts --mqtt-max-connections when it was given (and
	// not 0).
	m.maxConns = b.MQTTConnections
	if !explicit("mqtt-max-inflight") {
		m.maxInflight = b.MQTTInflight
		m.maxInflightBytes = b.MQTTInflightBytes
	}
}

// embeddedInflight is the embedded broker's bounds on publishes in flight:
// see useBudget.
func (m *mqttFlags) embeddedInflight() (int, int64) {
	if m.maxInflightBytes <= 0 {
		return m.maxInflight, 0
	}
	return mqtt.DefaultMaxInflight, m.maxInflightBytes
}

func (m *mqttFlags) sources(dev bool) ([]pipeline.SourceFactory, error) {
	routes, err := mqtt.ParseRoutes(m.routes)
	if err != nil {
		return nil, fmt.Errorf("--mqtt-route: %w", err)
	}
	embedded := dev && m.addr != ""
	if m.broker == "" && !embedded {
		return nil, nil
	}
	if err := routeStreamsKnown(routes, m.flags); err != nil {
		return nil, err
	}
	if m.maxInflight <= 0 {
		return nil, errors.New("--mqtt-max-inflight must be positive")
	}
	if embedded && (m.maxPacketBytes <= 0 || m.maxConns < 0 || m.connectTimeout <= 0 || m.maxKeepalive <= 0) {
		return nil, errors.New("--mqtt-max-packet-bytes, --mqtt-connect-timeout and --mqtt-max-keepalive must be positive, --mqtt-max-connections not negative")
	}
	hs := &sharedHandler{cfg: mqtt.HandlerConfig{Routes: routes, DeriveIDs: m.deriveIDs}}
	var out []pipeline.SourceFactory
	if embedded {
		out = append(out, func(gate *ingest.Gate, reg prometheus.Registerer, log *slog.Logger) (ingest.Source, error) {
			h, err := hs.get(gate, reg, log)
			if err != nil {
				return nil, err
			}
			count, bytes := m.embeddedInflight()
			return mqtt.NewEmbedded(mqtt.EmbeddedConfig{
				Addr: m.addr, Handler: h, MaxInflight: count, MaxInflightBytes: bytes, MaxReadBytes: m.maxReadBytes, Logger: log, Registerer: reg,
				MaxPacketBytes: m.maxPacketBytes, MaxConnections: m.maxConns,
				ConnectTimeout: m.connectTimeout, MaxKeepalive: m.maxKeepalive,
			})
		})
	}
	if m.broker != "" {
		cfg, err := m.subscriberConfig()
		if err != nil {
			return nil, err
		}
		if u, _ := url.Parse(m.broker); embedded && u.Host == m.addr {
			// The embedded broker hands routed publishes to the handler
			// itself; subscribing to it as well would take each twice.
			return nil, fmt.Errorf("--mqtt-broker %s is the embedded broker (--mqtt-addr): leave --mqtt-broker empty in dev, the embedded broker already feeds the pipeline", m.broker)
		}
		out = append(out, func(gate *ingest.Gate, reg prometheus.Registerer, log *slog.Logger) (ingest.Source, error) {
			h, err := hs.get(gate, reg, log)
			if err != nil {
				return nil, err
			}
			cfg.Handler, cfg.Logger, cfg.Registerer = h, log, reg
			return mqtt.NewSubscriber(cfg)
		})
	}
	return out, nil
}

// subscriberConfig checks the subscriber's flags and reads its secrets.
func (m *mqttFlags) subscriberConfig() (mqtt.SubscriberConfig, error) {
	u, err := mqtt.ParseBroker(m.broker)
	if err != nil {
		return mqtt.SubscriberConfig{}, fmt.Errorf("--mqtt-broker: %w", err)
	}
	if m.sessionExpiry <= 0 {
		return mqtt.SubscriberConfig{}, errors.New("--mqtt-session-expiry must be more than zero: a session that ends on disconnect loses the messages sent while Sluice is away")
	}
	if m.clientID == "" {
		return mqtt.SubscriberConfig{}, errors.New("--mqtt-client-id must not be empty: the persistent session is found by it")
	}
	cfg := mqtt.SubscriberConfig{
		Broker: m.broker, ClientID: m.clientID, SessionExpiry: m.sessionExpiry,
		ShareGroup: m.shareGroup, MaxInflight: m.maxInflight, Username: m.username,
	}
	pw, err := secretValue(m.flags, "mqtt-password", slog.Default())
	if err != nil {
		return mqtt.SubscriberConfig{}, err
	}
	if pw != "" {
		cfg.Password = []byte(pw)
	}
	if mqtt.IsTLS(u) {
		if cfg.TLS, err = (tlsfiles.Client{CA: m.tlsCA, Cert: m.tlsCert, Key: m.tlsKey}).Config("--mqtt-tls"); err != nil {
			return mqtt.SubscriberConfig{}, err
		}
	} else if m.tlsCA != "" || m.tlsCert != "" || m.tlsKey != "" {
		return mqtt.SubscriberConfig{}, fmt.Errorf("--mqtt-tls-* given but --mqtt-broker %s is not ssl://", redacted(u))
	}
	return cfg, nil
}

// routeStreamsKnown checks that every route leads to a stream of the
// registry --schemas gives, so that a route to a stream that does not
// exist fails with the settings (and in sluice validate), not once the
// pipeline has started.
func routeStreamsKnown(routes mqtt.Router, f *pflag.FlagSet) error {
	dir := ""
	if fl := f.Lookup("schemas"); fl != nil {
		dir = fl.Value.String()
	}
	reg, err := schemas.Load(dir)
	if err != nil {
		return err
	}
	for _, r := range routes {
		if reg.Stream(r.Stream) == nil {
			return fmt.Errorf("--mqtt-route %s=%s: no stream %q (streams: %v)", r.Filter, r.Stream, r.Stream, reg.Names())
		}
	}
	return nil
}

func redacted(u *url.URL) string { return u.Redacted() }

// sharedHandler builds one mqtt.Handler per process, the first time a
// source asks for it, so that the embedded broker and the subscriber share
// it and its metrics are registered once.
type sharedHandler struct {
	cfg mqtt.HandlerConfig
	mu  sync.Mutex
	h   *mqtt.Handler
}

func (s *sharedHandler) get(gate *ingest.Gate, reg prometheus.Registerer, log *slog.Logger) (*mqtt.Handler, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.h != nil {
		return s.h, nil
	}
	cfg := s.cfg
	cfg.Gate, cfg.Registerer, cfg.Logger = gate, reg, log
	h, err := mqtt.NewHandler(cfg)
	if err != nil {
		return nil, err
	}
	s.h = h
	return h, nil
}
