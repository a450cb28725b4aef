package main

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"

	"github.com/spf13/pflag"

	"github.com/sluicehq/sluice/ingest/mqtt"
	"github.com/sluicehq/sluice/membudget"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/procs"
	"github.com/sluicehq/sluice/schemas"
)

// memoryLimitHelp is --memory-limit's help; the split is in docs/memory.md.
const memoryLimitHelp = "ceiling on the process's memory (256MiB, 1GiB, or bytes): Sluice sets the Go runtime's limit below it and sizes its queues and buffers from it (in-flight events and bytes, HTTP, syslog, RELP and MQTT connections, HTTP parsing slots, Kafka batches and fetches, the dedupe window, MQTT, syslog and RELP in flight, and in dev the embedded NATS server); past them producers get 429/503, MQTT acks slow down, syslog and RELP reads pause and new connections are closed. Bounds given by their own flags win"

// budgeted is implemented by the collectors' flags whose in-flight bounds
// --memory-limit sizes; explicit reports whether a flag was set by the
// command line, the environment or the config file, which then wins.
type budgeted interface {
	useBudget(b membudget.Budget, explicit func(flag string) bool)
}

// memoryBudget plans the bounds for p's settings, with outputs sinks
// besides ClickHouse (NATS), and hands the collectors theirs. Bounds whose
// flags were given explicitly stay as given.
func (p *pipelineFlags) memoryBudget(outputs int, role pipeline.Role) (membudget.Budget, error) {
	explicit := func(name string) bool {
		f := p.flags.Lookup(name)
		return f != nil && f.Changed
	}
	streams, err := schemas.Load(p.schemasDir)
	if err != nil {
		return membudget.Budget{}, err
	}
	shape := membudget.Shape{
		Limit: int64(p.memoryLimit), MaxBodyBytes: p.maxBody, Streams: len(streams.Names()),
		Partitions: p.partitions, Sinks: 1 + outputs, MQTTMaxPacketBytes: flagInt(p.flags, "mqtt-max-packet-bytes", mqtt.DefaultMaxPacketBytes),
		Dev: p.dev, NoIngest: role == pipeline.RoleWork, NoWork: role == pipeline.RoleIngest,
	}
	// The bounds given by their flags: the plan counts them as given.
	for flag, bound := range map[string]*int{
		"dedupe-max-ids":                &shape.Overrides.DedupeMaxIDs,
		"http-max-connections":          &shape.Overrides.HTTPConnections,
		"mqtt-max-inflight":             &shape.Overrides.MQTTInflight,
		"syslog-max-connections":        &shape.Overrides.SyslogConnections,
		"relp-max-connections":          &shape.Overrides.RELPConnections,
		"mqtt-max-connections":          &shape.Overrides.MQTTConnections,
		"syslog-max-long-message-bytes": &shape.Overrides.SyslogLongMessageBytes,
		"relp-max-buffer-bytes":         &shape.Overrides.RELPBufferBytes,
	} {
		if explicit(flag) {
			*bound = flagInt(p.flags, flag, 0)
		}
	}
	b, err := membudget.Plan(shape)
	if err != nil {
		return membudget.Budget{}, fmt.Errorf("--memory-limit: %w", err)
	}
	for _, c := range p.collectors {
		if u, ok := c.(budgeted); ok {
			u.useBudget(b, explicit)
		}
	}
	return b, nil
}

// flagInt is an int flag's value, or def when the command has no such flag.
func flagInt(f *pflag.FlagSet, name string, def int) int {
	fl := f.Lookup(name)
	if fl == nil {
		return def
	}
	v, err := strconv.Atoi(fl.Value.String())
	if err != nil {
		return def
	}
	return v
}

// applyBudget sets the pipeline's bounds from b.
func applyBudget(cfg *pipeline.Config, b membudget.Budget) {
	cfg.Memory = &b
	cfg.MaxInFlightEvents = b.AdmissionEvents
	cfg.MaxInFlightBytes = b.AdmissionBytes
	cfg.HTTPMaxParsing = b.HTTPParsing
	cfg.HTTPMaxConnections = b.HTTPConnections
	cfg.KafkaBatchBytes = b.ProducerBatchBytes
	cfg.FetchMaxBytes = b.FetchMaxBytes
	cfg.FetchShareBytes = b.FetchShareBytes
	if b.FetchShareBytes == 0 {
		cfg.FetchShareBytes = -1 // none planned: none kept
	}
	cfg.WorkInFlightBytes = b.LaneBytes
	cfg.BatchMaxBytes = b.BatchMaxBytes
	cfg.DedupeMaxIDs = b.DedupeMaxIDs
}

// setMemoryLimit hands the Go runtime its share of the ceiling, paces
// the collector from it until ctx ends (membudget.Budget.TuneGC), and logs
// the split, once, at start-up; a split whose worst case does not fit (its
// floors or explicit bounds are too large for the ceiling) is a warning,
// not a refusal: it is a worst case, and the operator chose the settings.
func setMemoryLimit(ctx context.Context, b membudget.Budget, log *slog.Logger) {
	debug.SetMemoryLimit(b.GoLimit)
	go b.TuneGC(ctx)
	log.Info("memory budget", b.LogAttrs()...)
	if err := b.Fits(); err != nil {
		log.Warn("memory budget does not fit its ceiling", "err", err)
	}
}

// tuneProcs sizes GOMAXPROCS to the CPU the process uses until ctx ends
// (package procs), unless --adaptive-procs is off.
func (p *pipelineFlags) tuneProcs(ctx context.Context, log *slog.Logger) {
	if p.adaptiveProcs {
		go procs.Run(ctx, procs.Options{Logger: log})
	}
}
