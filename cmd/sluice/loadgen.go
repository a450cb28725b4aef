package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sluicehq/sluice/loadgen"
)

// loadgenLong is loadgen's --help.
const loadgenLong = `loadgen sends realistic iot_telemetry and app_logs events to a Sluice
collector at a set rate and concurrency, and prints the achieved rate,
acknowledgement latency and errors every interval. --protocol chooses how:

  http    POST {url}/v1/streams/{stream}/events, a JSON array per request;
          acknowledged = a 2xx answer.
  mqtt    each connection is a device publishing with QoS 1 (MQTT 5) to
          --mqtt-broker: devices/<device_id>/telemetry and
          services/<service>/logs, one message per batch (an object, or an
          array with --batch-size > 1) from one device or service, whose id
          the topic carries; acknowledged = its PUBACK arrived.
  syslog  RFC 5424 lines with RFC 6587 octet counting over TCP to
          --syslog-addr, app_logs only (--mix is ignored): APP-NAME = service,
          severity = level (trace is sent as debug), event_id, trace_id and
          attrs in structured data [loadgen@32473 ...]. Syslog has no
          acknowledgement: "acknowledged" only means written to the socket,
          so latencies are write times and a Sluice crash can lose lines that
          loadgen counted. Sluice derives event_ids from the lines, so
          --ack-log is refused.

Every event carries a unique, deterministic event_id <run-id>-<stream>-<seq>,
with seq counting from 1 per stream. Requests answered 429, 503 (or other 5xx),
or lost to a timeout or connection error are retried with the same body, hence
the same event_ids, honouring Retry-After, until acknowledged. MQTT publishes
that get no PUBACK within --timeout, and syslog writes that fail, are retried
the same way over a new connection. On Ctrl-C or when
--duration is over, loadgen stops generating and gives requests in flight up to
--grace to finish; a second Ctrl-C abandons them.

The exit status is non-zero when any event was rejected by the collector or
left unacknowledged. With --ack-log every acknowledged event is appended to a
file as "<stream>\t<event_id>", to compare what was acknowledged with what
landed in ClickHouse.`

// loadgenFlags are loadgen's settings.
type loadgenFlags struct {
	cfg       loadgen.Config
	ackLog    string
	jsonOut   bool
	maxEvents int64
}

// newLoadgenCmd returns `sluice loadgen`, which drives a collector with a
// simulated fleet of devices and services.
func newLoadgenCmd() *cobra.Command {
	l := &loadgenFlags{cfg: loadgen.Config{Mix: loadgen.DefaultMix}}
	cmd := &cobra.Command{
		Use:   "loadgen",
		Short: "Simulate IoT devices and log-producing services sending events to a collector",
		Long:  loadgenLong,
		Example: `  sluice loadgen --rate 5000 --duration 1m
  sluice loadgen --rate 0 --concurrency 32 --batch-size 500 --duration 30s --json
  sluice loadgen --events 100000 --run-id eo1 --ack-log acks.tsv
  sluice loadgen --protocol mqtt --rate 0 --concurrency 16 --batch-size 10 --duration 30s
  sluice loadgen --protocol syslog --syslog-addr 127.0.0.1:5514 --rate 2000`,
		Args:        cobra.NoArgs,
		Annotations: checksSettings(),
		RunE:        func(cmd *cobra.Command, _ []string) error { return l.run(cmd) },
	}
	l.register(cmd.Flags())
	return cmd
}

func (l *loadgenFlags) register(f *pflag.FlagSet) {
	f.StringVar(&l.cfg.Protocol, "protocol", loadgen.ProtocolHTTP, "how to send events: http, mqtt or syslog (see above)")
	f.StringVar(&l.cfg.URL, "url", loadgen.DefaultURL, "base URL of the Sluice HTTP collector (--protocol http)")
	f.StringVar(&l.cfg.MQTTBroker, "mqtt-broker", loadgen.DefaultMQTTBroker, "MQTT broker to publish to, tcp://host:port (--protocol mqtt)")
	f.StringVar(&l.cfg.SyslogAddr, "syslog-addr", loadgen.DefaultSyslogAddr, "syslog TCP listener, host:port (--protocol syslog)")
	f.StringVar(&l.cfg.Token, "token", "", "bearer token sent in the Authorization header, if the collector requires one")
	f.Float64Var(&l.cfg.Rate, "rate", 1000, "new events per second across all clients; 0 = as fast as the collector acknowledges (retries are not counted)")
	f.IntVar(&l.cfg.Concurrency, "concurrency", loadgen.DefaultConcurrency, "number of concurrent clients (HTTP clients, MQTT device connections, syslog connections), each with one request in flight")
	f.IntVar(&l.cfg.BatchSize, "batch-size", loadgen.DefaultBatchSize, "events per request (HTTP request, MQTT message, syslog write)")
	f.DurationVar(&l.cfg.Duration, "duration", 0, "how long to generate events; 0 = until Ctrl-C (or --events)")
	f.Int64Var(&l.maxEvents, "events", 0, "stop after generating this many events in total; 0 = no limit")
	f.IntVar(&l.cfg.Devices, "devices", loadgen.DefaultDevices, "number of simulated IoT devices (sensor-0001, sensor-0002, ...)")
	f.IntVar(&l.cfg.Services, "services", loadgen.DefaultServices, "number of simulated services (checkout, payments, ..., api-21, ...)")
	f.Float64Var(&l.cfg.Mix, "mix", loadgen.DefaultMix, "fraction of events sent to iot_telemetry, the rest to app_logs (0..1)")
	f.StringVar(&l.cfg.RunID, "run-id", "", "run id used in every event_id <run-id>-<stream>-<seq>; default random")
	f.DurationVar(&l.cfg.ReportInterval, "report-interval", loadgen.DefaultReportInterval, "how often to print a progress line to stderr; negative = never")
	f.StringVar(&l.ackLog, "ack-log", "", "append every acknowledged event to this file as \"<stream>\\t<event_id>\" lines")
	f.DurationVar(&l.cfg.Grace, "grace", loadgen.DefaultGrace, "on shutdown, how long requests in flight may keep retrying before they are abandoned")
	f.DurationVar(&l.cfg.Timeout, "timeout", loadgen.DefaultTimeout, "timeout of one attempt (HTTP request, wait for a PUBACK, syslog write); timed-out attempts are retried")
	f.BoolVar(&l.cfg.Gzip, "gzip", false, "gzip request bodies")
	f.BoolVar(&l.cfg.NDJSON, "ndjson", false, "send NDJSON instead of a JSON array")
	f.BoolVar(&l.jsonOut, "json", false, "print the final summary as JSON on stdout")
}

// run sends events as the flags say, and prints the summary.
func (l *loadgenFlags) run(cmd *cobra.Command) error {
	cmd.SilenceUsage = true
	cfg := l.cfg
	cfg.MaxEvents = l.maxEvents
	if settingsOnly(cmd) {
		// sluice validate: check the settings, send nothing.
		return asUsage(cfg.Validate())
	}
	if l.ackLog != "" {
		f, err := os.OpenFile(l.ackLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("open ack log: %w", err)
		}
		defer f.Close()
		cfg.AckLog = f
	}
	cfg.Logger = slog.Default()

	ctx, abort, stop := stopOnSignals(cmd.Context())
	defer stop()
	cfg.Abort = abort
	sum, err := loadgen.Run(ctx, cfg, cmd.ErrOrStderr())
	if l.jsonOut && sum.RunID != "" {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(sum); jerr != nil {
			err = errors.Join(err, fmt.Errorf("write summary: %w", jerr))
		}
	}
	if f, ok := cfg.AckLog.(*os.File); ok {
		if cerr := f.Close(); cerr != nil && !errors.Is(cerr, os.ErrClosed) {
			err = errors.Join(err, fmt.Errorf("close ack log: %w", cerr))
		}
	}
	if err != nil {
		return fmt.Errorf("loadgen: %w", err)
	}
	return nil
}

// stopOnSignals returns a context cancelled on the first SIGINT or SIGTERM (or
// when parent is), and a channel closed on the second signal, so that an
// impatient operator can cut the grace period short. It works whether or not
// the root command installed its own handler; stop releases the signals.
func stopOnSignals(parent context.Context) (ctx context.Context, abort <-chan struct{}, stop func()) {
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithCancel(parent)
	aborted := make(chan struct{})
	quit := make(chan struct{})
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		defer cancel()
		// Only signals seen here count towards the second one: the root
		// command's handler sees the same first signal and cancels parent.
		parentDone := parent.Done()
		for n := 0; ; {
			select {
			case <-sigs:
				cancel()
				if n++; n == 2 {
					close(aborted)
					return
				}
				slog.Warn("stopping; press Ctrl-C again to abandon requests still in flight")
			case <-parentDone:
				cancel()
				parentDone = nil
			case <-quit:
				return
			}
		}
	}()
	return ctx, aborted, func() {
		signal.Stop(sigs)
		close(quit)
	}
}
