// Package loadgen simulates a fleet of IoT devices and log-producing services
// sending events to Sluice's collectors: over HTTP (the default), MQTT or
// syslog (see Config.Protocol). It drives demos and benchmarks,
// and is the producer in exactly-once tests, so it accounts for every event it
// sends: each one ends up acknowledged, rejected, or reported as
// unacknowledged, and retries always resend the same event_ids.
package loadgen

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"github.com/sluicehq/sluice/internal/defaults"
)

// Config describes one load-generation run. The zero value of a field means
// its default, except where noted.
type Config struct {
	// Protocol is how events travel: ProtocolHTTP (the default),
	// ProtocolMQTT or ProtocolSyslog. What counts as acknowledged depends
	// on it: a 2xx answer, a PUBACK, or for syslog, which has no
	// acknowledgement, the write to the socket.
	Protocol string
	// MQTTBroker is the broker MQTT devices publish to, tcp://host:port.
	// Default DefaultMQTTBroker.
	MQTTBroker string
	// SyslogAddr is the host:port of the syslog TCP listener. Default
	// DefaultSyslogAddr.
	SyslogAddr string
	// URL is the collector's base URL; events go to
	// {URL}/v1/streams/{stream}/events. Default http://127.0.0.1:8080.
	URL string
	// Token, when set, is sent as "Authorization: Bearer <Token>".
	Token string
	// Rate caps new events per second across all clients; 0 means as fast
	// as the collector acknowledges. Retries do not count against it.
	Rate float64
	// Concurrency is the number of concurrent HTTP clients (MQTT devices'
	// connections, syslog connections), each with at most one request
	// (publish, batch of lines) in flight. Default 8.
	Concurrency int
	// BatchSize is the number of events per request (MQTT message, write
	// of syslog lines). Default 100.
	BatchSize int
	// Duration bounds the time spent generating new events; 0 means until
	// ctx is cancelled (or MaxEvents is reached).
	Duration time.Duration
	// MaxEvents stops generating after this many events in total; 0 means
	// no limit. With it the set of event_ids a run produces is exact.
	MaxEvents int64
	// Devices is the number of simulated IoT devices. Default 1000.
	Devices int
	// Services is the number of simulated services. Default 20.
	Services int
	// Mix is the fraction of events that go to iot_telemetry, the rest to
	// app_logs. It is applied per request, deterministically. Unlike the
	// other fields it has no default: 0 sends app_logs only (the command's
	// default is DefaultMix). Syslog carries app_logs only, so with
	// ProtocolSyslog it is taken as 0.
	Mix float64
	// RunID prefixes every event_id: <RunID>-<stream>-<seq>. Default: a
	// random 12-hex-digit id.
	RunID string
	// ReportInterval is how often a progress line is written to out.
	// Default 1s; negative disables progress lines.
	ReportInterval time.Duration
	// AckLog, when set, receives one line "<stream>\t<event_id>\n" for every
	// event the collector acknowledged. Writes are serialized and buffered.
	// Not with ProtocolSyslog: syslog lines carry no event_id (Sluice
	// derives one from the line), so the ids would match nothing.
	AckLog io.Writer
	// Grace bounds how long requests in flight at shutdown may keep
	// retrying. Default 30s; negative means no grace at all.
	Grace time.Duration
	// Abort, when closed, ends the grace period at once.
	Abort <-chan struct{}
	// Timeout bounds a single HTTP attempt; a timed-out attempt is retried.
	// Default 10s.
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the exponential backoff between
	// retries when the collector gives no Retry-After. Defaults 100ms, 5s.
	MinBackoff, MaxBackoff time.Duration
	// Gzip compresses request bodies (Content-Encoding: gzip).
	Gzip bool
	// NDJSON sends newline-delimited JSON instead of a JSON array.
	NDJSON bool
	// HTTPClient overrides the HTTP client, e.g. for TLS settings.
	HTTPClient *http.Client
	// Logger receives warnings such as error response bodies. Default
	// slog.Default().
	Logger *slog.Logger
}

// Protocols loadgen speaks (Config.Protocol).
const (
	// ProtocolHTTP posts JSON arrays to the HTTP collector.
	ProtocolHTTP = "http"
	// ProtocolMQTT publishes with QoS 1 as devices and services would:
	// to devices/<device_id>/telemetry and services/<service>/logs.
	ProtocolMQTT = "mqtt"
	// ProtocolSyslog writes RFC 5424 lines with RFC 6587 octet counting
	// over TCP; app_logs only.
	ProtocolSyslog = "syslog"
)

// Defaults for Config fields left at zero.
const (
	// DefaultMQTTBroker is where `sluice dev` embeds its MQTT broker.
	DefaultMQTTBroker = "tcp://127.0.0.1:1883"
	// DefaultSyslogAddr is where `sluice dev` listens for syslog over TCP.
	DefaultSyslogAddr = "127.0.0.1:5514"
	// DefaultURL is where `sluice dev` listens.
	DefaultURL = "http://127.0.0.1:8080"
	// DefaultConcurrency is the default number of HTTP clients.
	DefaultConcurrency = 8
	// DefaultBatchSize is the default number of events per request.
	DefaultBatchSize = 100
	// DefaultDevices is the default size of the device fleet.
	DefaultDevices = 1000
	// DefaultServices is the default number of log-producing services.
	DefaultServices = 20
	// DefaultMix is the command's default share of iot_telemetry events;
	// Config.Mix itself has no default.
	DefaultMix = 0.5
	// DefaultReportInterval is the default time between progress lines.
	DefaultReportInterval = time.Second
	// DefaultGrace is the default time in-flight requests get at shutdown.
	DefaultGrace = 30 * time.Second
	// DefaultTimeout is the default bound on one HTTP attempt. The collector
	// answers only after Kafka acknowledged, which can take a while under load.
	DefaultTimeout = 10 * time.Second
	// DefaultMinBackoff is the default first wait before a retry.
	DefaultMinBackoff = 100 * time.Millisecond
	// DefaultMaxBackoff is the default longest wait between retries.
	DefaultMaxBackoff = 5 * time.Second
)

// protocolDefaults fills in the protocol and its target.
func (c Config) protocolDefaults() Config {
	if c.Protocol == "" {
		c.Protocol = ProtocolHTTP
	}
	if c.MQTTBroker == "" {
		c.MQTTBroker = DefaultMQTTBroker
	}
	if c.SyslogAddr == "" {
		c.SyslogAddr = DefaultSyslogAddr
	}
	if c.Protocol == ProtocolSyslog {
		c.Mix = 0 // syslog carries app_logs only
	}
	return c
}

// checkProtocol says what is wrong with the protocol and its target.
func (c Config) checkProtocol() error {
	switch c.Protocol {
	case ProtocolHTTP:
		if u, err := url.Parse(c.URL); err != nil {
			return fmt.Errorf("url %q: %w", c.URL, err)
		} else if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("url %q: want http(s)://host[:port]", c.URL)
		}
	case ProtocolMQTT:
		if _, err := mqttHostPort(c.MQTTBroker); err != nil {
			return err
		}
	case ProtocolSyslog:
		if _, _, err := net.SplitHostPort(c.SyslogAddr); err != nil {
			return fmt.Errorf("syslog address %q: want host:port: %w", c.SyslogAddr, err)
		}
		if c.AckLog != nil {
			return errors.New("ack log: not with syslog, whose lines carry no event_id")
		}
	default:
		return fmt.Errorf("protocol %q: want %s, %s or %s", c.Protocol, ProtocolHTTP, ProtocolMQTT, ProtocolSyslog)
	}
	return nil
}

// target is where events go, for logs.
func (c Config) target() string {
	switch c.Protocol {
	case ProtocolMQTT:
		return c.MQTTBroker
	case ProtocolSyslog:
		return c.SyslogAddr
	}
	return c.URL
}

// runIDRE keeps run ids free of characters that would need escaping in JSON
// or quoting in SQL, and short enough that event_ids stay under 128 bytes.
var runIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$`)

// Validate says what is wrong with c, as Run would, without sending
// anything: for `sluice validate`.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

// withDefaults fills in defaults and checks the result.
func (c Config) withDefaults() (Config, error) {
	c = c.protocolDefaults()
	defaults.Set(&c.URL, DefaultURL)
	defaults.Set(&c.Concurrency, DefaultConcurrency)
	defaults.Set(&c.BatchSize, DefaultBatchSize)
	defaults.Set(&c.Devices, DefaultDevices)
	defaults.Set(&c.Services, DefaultServices)
	if c.RunID == "" {
		c.RunID = newRunID()
	}
	defaults.Set(&c.ReportInterval, DefaultReportInterval)
	switch {
	case c.Grace == 0:
		c.Grace = DefaultGrace
	case c.Grace < 0:
		c.Grace = 0 // no grace at all
	}
	defaults.Set(&c.Timeout, DefaultTimeout)
	defaults.Set(&c.MinBackoff, DefaultMinBackoff)
	defaults.Set(&c.MaxBackoff, max(DefaultMaxBackoff, c.MinBackoff))
	defaults.Set(&c.Logger, slog.Default())
	if err := c.check(); err != nil {
		return c, fmt.Errorf("loadgen config: %w", err)
	}
	return c, nil
}

// check says everything that is wrong with c, defaults filled in.
func (c Config) check() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	errs = append(errs, c.checkProtocol()) // errors.Join drops a nil
	if c.Rate < 0 {
		bad("rate %g: must be >= 0", c.Rate)
	}
	if c.Concurrency < 1 {
		bad("concurrency %d: must be >= 1", c.Concurrency)
	}
	if c.BatchSize < 1 {
		bad("batch size %d: must be >= 1", c.BatchSize)
	}
	if c.Duration < 0 {
		bad("duration %s: must be >= 0", c.Duration)
	}
	if c.MaxEvents < 0 {
		bad("events %d: must be >= 0", c.MaxEvents)
	}
	if c.Devices < 1 {
		bad("devices %d: must be >= 1", c.Devices)
	}
	if c.Services < 1 {
		bad("services %d: must be >= 1", c.Services)
	}
	if c.Mix < 0 || c.Mix > 1 {
		bad("mix %g: must be between 0 and 1", c.Mix)
	}
	if !runIDRE.MatchString(c.RunID) {
		bad("run id %q: must match %s", c.RunID, runIDRE)
	}
	if c.Timeout < 0 {
		bad("timeout %s: must be > 0", c.Timeout)
	}
	if c.MinBackoff < 0 || c.MaxBackoff < c.MinBackoff {
		bad("backoff %s..%s: want 0 <= min <= max", c.MinBackoff, c.MaxBackoff)
	}
	return errors.Join(errs...)
}
