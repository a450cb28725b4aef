package main

import (
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/ingest/relp"
	"github.com/sluicehq/sluice/ingest/syslog"
	"github.com/sluicehq/sluice/membudget"
	"github.com/sluicehq/sluice/pipeline"
)

func init() {
	sourceFlagKinds = append(sourceFlagKinds, func() sourceFlags { return &relpFlags{} })
}

// relpFlags are the RELP collector's flags. Whether event_ids are derived
// from the raw line is --syslog-derive-ids, shared with the plain syslog
// listeners and defined with them; it is read from the same flag set.
type relpFlags struct {
	addr         string
	maxFrame     int
	maxConns     int
	frameTimeout time.Duration
	idleTimeout  time.Duration
	flags        *pflag.FlagSet
	// bufferBytes is --relp-max-buffer-bytes, or from --memory-limit
	// (zero: the collector's default).
	bufferBytes int
}

// useBudget takes the frames held at once and the connections from the
// plan, which counts --relp-max-buffer-bytes and --relp-max-connections
// when they were given (memoryBudget), and its own sizes when they were
// not or were 0.
func (r *relpFlags) useBudget(b membudget.Budget, _ func(string) bool) {
	r.bufferBytes, r.maxConns = b.RELPBufferBytes, b.RELPConnections
}

func (r *relpFlags) register(f *pflag.FlagSet, dev bool) {
	r.flags = f
	def := ""
	if dev {
		def = "127.0.0.1:2514"
	}
	f.StringVar(&r.addr, "relp-addr", def, "address of the RELP collector (rsyslog's omrelp); empty turns it off")
	f.IntVar(&r.maxFrame, "relp-max-frame-bytes", relp.DefaultMaxFrameBytes, "largest RELP frame (DATALEN) taken; a bigger one closes its connection")
	f.IntVar(&r.maxConns, "relp-max-connections", 0, "most RELP connections open at once; more are closed when accepted. 0 sizes it from --memory-limit (96 KiB each besides their frames; 16 at 512MiB, at most 100)")
	f.IntVar(&r.bufferBytes, "relp-max-buffer-bytes", 0, "most bytes of RELP frames read and not yet answered over all connections, frames being read included; a connection whose next frame does not fit is not read (its sender waits) until others are answered. Frames over 4 KiB have half of it (at least 8KiB in all). 0 sizes it from --memory-limit (1.7MiB at 512MiB in dev, at most 16MiB)")
	f.DurationVar(&r.frameTimeout, "relp-frame-timeout", relp.DefaultFrameTimeout, "a RELP connection that starts a frame and does not finish it within this time is closed")
	f.DurationVar(&r.idleTimeout, "relp-idle-timeout", relp.DefaultIdleTimeout, "a RELP connection that sends nothing between frames for this long is told serverclose and closed (omrelp reconnects when it has more to send)")
}

func (r *relpFlags) sources(bool) ([]pipeline.SourceFactory, error) {
	if r.addr == "" {
		return nil, nil
	}
	if r.maxFrame <= 0 || r.maxConns < 0 || r.bufferBytes < 0 || r.frameTimeout <= 0 || r.idleTimeout <= 0 {
		return nil, fmt.Errorf("--relp-max-frame-bytes, --relp-frame-timeout and --relp-idle-timeout must be positive, --relp-max-connections and --relp-max-buffer-bytes not negative")
	}
	derive, err := r.deriveIDs()
	if err != nil {
		return nil, err
	}
	cfg := relp.Config{
		Addr:           r.addr,
		Stream:         syslog.Stream,
		RandomIDs:      !derive,
		MaxFrameBytes:  r.maxFrame,
		MaxConnections: r.maxConns,
		MaxBufferBytes: r.bufferBytes,
		FrameTimeout:   r.frameTimeout,
		IdleTimeout:    r.idleTimeout,
	}
	return []pipeline.SourceFactory{func(gate *ingest.Gate, reg prometheus.Registerer, log *slog.Logger) (ingest.Source, error) {
		c := cfg
		c.Gate, c.Registerer, c.Logger = gate, reg, log
		return relp.New(c)
	}}, nil
}

// deriveIDs reads --syslog-derive-ids; without that flag, ids are derived
// (the SPEC's default).
func (r *relpFlags) deriveIDs() (bool, error) {
	fl := r.flags.Lookup("syslog-derive-ids")
	if fl == nil {
		return true, nil
	}
	v, err := strconv.ParseBool(fl.Value.String())
	if err != nil {
		return false, fmt.Errorf("--syslog-derive-ids: %w", err)
	}
	return v, nil
}
