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
}

func (r *relpFlags) register(f *pflag.FlagSet, dev bool) {
	r.flags = f
	def := ""
	if dev {
		def = "127.0.0.1:2514"
	}
	f.StringVar(&r.addr, "relp-addr", def, "address of the RELP collector (rsyslog's omrelp); empty turns it off")
	f.IntVar(&r.maxFrame, "relp-max-frame-bytes", relp.DefaultMaxFrameBytes, "largest RELP frame (DATALEN) taken; a bigger one closes its connection")
	f.IntVar(&r.maxConns, "relp-max-connections", relp.DefaultMaxConnections, "most RELP connections open at once; more are closed when accepted")
	f.DurationVar(&r.frameTimeout, "relp-frame-timeout", relp.DefaultFrameTimeout, "a RELP connection that starts a frame and does not finish it within this time is closed")
	f.DurationVar(&r.idleTimeout, "relp-idle-timeout", relp.DefaultIdleTimeout, "a RELP connection that sends nothing between frames for this long is told serverclose and closed (omrelp reconnects when it has more to send)")
}

func (r *relpFlags) sources(bool) ([]pipeline.SourceFactory, error) {
	if r.addr == "" {
		return nil, nil
	}
	if r.maxFrame <= 0 || r.maxConns <= 0 || r.frameTimeout <= 0 || r.idleTimeout <= 0 {
		return nil, fmt.Errorf("--relp-max-frame-bytes, --relp-max-connections, --relp-frame-timeout and --relp-idle-timeout must be positive")
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
