package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks/clickhouse"
	"github.com/sluicehq/sluice/verify"
)

// Exit statuses of `sluice verify`. 1 is what scripts test for, so an
// operational failure must not look like a discrepancy.
const (
	verifyExitDiscrepancies = 1
	verifyExitError         = 2
)

// verifyGCPercent keeps verify's heap near its live size: measured on one
// partition of 1M events, peak RSS 157 MiB at GOGC=100, 98 MiB at 20, for
// 15% more CPU.
const verifyGCPercent = 20

// verifyLong is verify's --help.
const verifyLong = `verify proves exactly-once delivery. For every stream, and every partition of
its topic, it reads Kafka from the earliest offset to the high watermark
captured when it starts, decodes each message as the workers do, and checks
that ClickHouse holds one row, and only one, for each distinct event_id:

  expected    distinct event_ids in Kafka, less those the dead-letter topic
              (<prefix>dlq) accounts for; a producer's retry that put one
              event at two offsets is still one event
  missing     expected events without a row, and undecodable messages that
              are not in the dead-letter topic either
  duplicated  event_ids with more than one row (extra rows: how far count()
              is off)
  unexpected  event_ids with rows that Kafka does not hold, e.g. after the
              topic was deleted and created again

Rows at offsets after the watermarks are not checked, nor rows of offsets
Kafka's retention has deleted.

verify is exact when the pipeline is idle. While it runs, events that the
workers have not delivered yet count as missing: --wait re-checks them until
they arrive or the wait runs out.

It reads Kafka outside any consumer group and only SELECTs from ClickHouse,
so it does not disturb the pipeline. Partitions are checked one at a time:
memory is about 50 bytes per event of the largest partition (10 million:
under 600 MB). Progress goes to stderr once a step takes over a second.

Exit status: 0 when Kafka and ClickHouse agree, 1 when anything is missing,
duplicated or unexpected, 2 when the check could not be made.`

// verifyFlags are verify's settings.
type verifyFlags struct {
	brokers    []string
	topicPfx   string
	chAddr     string
	chDatabase string
	chUser     string
	chSecurity clickhouseSecurity
	streams    []string
	schemasDir string
	wait       time.Duration
	jsonOut    bool
	examples   int
	kafkaSec   kafkaSecurityFlags
}

func newVerifyCmd() *cobra.Command {
	var v verifyFlags
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Reconcile Kafka with ClickHouse: report missing and duplicated events",
		Long:  verifyLong,
		Example: `  sluice verify
  sluice verify --stream iot_telemetry --wait 30s
  sluice verify --kafka-brokers kafka:9092 --clickhouse-addr clickhouse:9000 --json > report.json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return verifyUsageError(cmd, fmt.Errorf("unexpected arguments %q", args))
			}
			return nil
		},
		// Settings that fail to parse must exit with 2, not with main's 1,
		// which here means discrepancies; so the root's hook is run from
		// here.
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if root := cmd.Root(); root != cmd && root.PersistentPreRunE != nil {
				if err := root.PersistentPreRunE(cmd, args); err != nil {
					return verifyUsageError(cmd, err)
				}
			}
			return nil
		},
		Annotations: checksSettings(),
		RunE:        func(cmd *cobra.Command, _ []string) error { return v.run(cmd) },
	}
	cmd.SetFlagErrorFunc(verifyUsageError)
	v.register(cmd.Flags())
	return cmd
}

func (v *verifyFlags) register(f *pflag.FlagSet) {
	f.StringSliceVar(&v.brokers, "kafka-brokers", []string{"127.0.0.1:9092"}, "Kafka bootstrap brokers, host:port,...")
	f.StringVar(&v.topicPfx, "topic-prefix", "sluice.", "prefix of stream topics (<prefix><stream>) and of the dead-letter topic (<prefix>dlq)")
	f.StringVar(&v.chAddr, "clickhouse-addr", "127.0.0.1:9000", "ClickHouse native-protocol address")
	f.StringVar(&v.chDatabase, "clickhouse-database", "sluice", "ClickHouse database holding the stream tables")
	f.StringVar(&v.chUser, "clickhouse-user", "default", "ClickHouse user (read access is enough)")
	v.chSecurity.register(f)
	f.StringArrayVar(&v.streams, "stream", nil, "stream to verify (repeatable; default: every stream)")
	f.StringVar(&v.schemasDir, "schemas", "", "directory of stream definitions (*.yaml) replacing the built-in ones, as given to dev and run")
	f.DurationVar(&v.wait, "wait", 0, "keep re-checking missing events this long, for a pipeline still delivering (0: check once)")
	f.BoolVar(&v.jsonOut, "json", false, "write the report as JSON instead of a table")
	f.IntVar(&v.examples, "examples", verify.DefaultExamples, "event_ids to show per stream for each of missing, duplicated and unexpected")
	v.kafkaSec.register(f)
}

// run checks, and prints the report. Its error is an exitError: 1 for
// discrepancies, 2 when the check could not be made.
func (v *verifyFlags) run(cmd *cobra.Command) error {
	fail := func(err error) error {
		fmt.Fprintln(cmd.ErrOrStderr(), "sluice verify:", err)
		return exitError{code: verifyExitError}
	}
	examples := v.examples
	if examples == 0 {
		examples = -1 // the library's zero means its default
	}
	// Nearly all the live heap is the partition's event set, which holds
	// no pointers and costs the collector nothing to mark; the default
	// GOGC would let the heap grow to twice it.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(verifyGCPercent)
	}
	sts, err := selectStreams(v.schemasDir, v.streams)
	if err != nil {
		return fail(err)
	}
	sec, err := v.kafkaSec.security(cmd.Flags(), slog.Default())
	if err != nil {
		return fail(err)
	}
	defer sec.Close()
	chOpts := clickhouse.Options{Addr: v.chAddr, Database: v.chDatabase, Username: v.chUser}
	if err := v.chSecurity.apply(&chOpts, slog.Default()); err != nil {
		return fail(err)
	}
	if settingsOnly(cmd) {
		return nil // sluice validate: checked, connect to nothing
	}
	rep, err := verify.Run(cmd.Context(), verify.Config{
		Brokers: v.brokers, Kafka: sec, TopicPrefix: v.topicPfx, ClickHouse: chOpts,
		Streams: sts, Wait: v.wait, Examples: examples, Logger: slog.Default(),
	}, cmd.ErrOrStderr())
	if err != nil {
		return fail(explainRefusal(err))
	}
	if err := writeVerifyReport(cmd.OutOrStdout(), rep, v.jsonOut); err != nil {
		return fail(fmt.Errorf("write report: %w", err))
	}
	if !rep.Clean() {
		return exitError{code: verifyExitDiscrepancies}
	}
	return nil
}

// verifyUsageError reports a bad command line or setting, with exit
// status 2.
func verifyUsageError(cmd *cobra.Command, err error) error {
	fmt.Fprintf(cmd.ErrOrStderr(), "sluice verify: %v\nRun 'sluice verify --help' for usage.\n", err)
	return exitError{code: verifyExitError}
}

// selectStreams returns the named streams of the registry (the built-in
// one, or the one in dir), or all of them when names is empty.
func selectStreams(dir string, names []string) ([]*schemas.Stream, error) {
	reg, err := schemas.Load(dir)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return reg.Streams(), nil
	}
	var out []*schemas.Stream
	seen := map[string]bool{}
	for _, n := range names {
		st := reg.Stream(n)
		if st == nil {
			return nil, fmt.Errorf("--stream %q: no such stream (streams: %v)", n, reg.Names())
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, st)
		}
	}
	return out, nil
}

func writeVerifyReport(w io.Writer, rep verify.Report, asJSON bool) error {
	if !asJSON {
		return rep.WriteText(w)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}
