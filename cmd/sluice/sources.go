package main

import (
	"github.com/spf13/pflag"

	"github.com/sluicehq/sluice/pipeline"
)

// sourceFlags are one collector's flags (MQTT, syslog, RELP): they register
// themselves on `dev` and `run`, whose defaults differ (dev turns the
// collectors on, on loopback; run leaves them off), and once parsed build
// the collector, or nothing when it is turned off.
type sourceFlags interface {
	register(f *pflag.FlagSet, dev bool)
	sources(dev bool) ([]pipeline.SourceFactory, error)
}

// sourceFlagKinds lists every collector's flags; each collector's file adds
// its own constructor in an init function.
var sourceFlagKinds []func() sourceFlags

// collectorFlags are the flags of every collector besides HTTP.
type collectorFlags []sourceFlags

func (c *collectorFlags) register(f *pflag.FlagSet, dev bool) {
	for _, newFlags := range sourceFlagKinds {
		s := newFlags()
		s.register(f, dev)
		*c = append(*c, s)
	}
}

func (c collectorFlags) sources(dev bool) ([]pipeline.SourceFactory, error) {
	var out []pipeline.SourceFactory
	for _, s := range c {
		fs, err := s.sources(dev)
		if err != nil {
			return nil, err
		}
		out = append(out, fs...)
	}
	return out, nil
}
