package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/bench"
	"github.com/sluicehq/sluice/sinks/clickhouse"
)

// newBenchCmd returns `sluice bench`, which measures the pipeline's speed
// and cost per event on this machine.
func newBenchCmd() *cobra.Command {
	cfg := bench.Config{}
	cmd := &cobra.Command{
		Use:   "bench [-- FLAGS FOR BOTH ROLES]",
		Short: "Measure throughput, latency, CPU and memory per event of the whole pipeline",
		Long: `bench starts the pipeline as production runs it, ingest and work as two
"sluice run" processes, against a Kafka-protocol broker and a NATS server
embedded in the bench process and the ClickHouse at --clickhouse-addr (into
a fresh database, dropped afterwards). It drives the HTTP collector with
loadgen, first at --rate, then (with --saturation) as fast as it
acknowledges, waits after each phase until ClickHouse holds every
acknowledged event, and prints a table:

  acked/s, stored/s     events acknowledged to loadgen and stored in ClickHouse
  ack p50, ack p99      loadgen's request latency (one batch of --batch-size)
  visible p99           receipt by the collector until the INSERT returned
  µs/ev                 the role's CPU time (user+system) over the phase and
                        its drain, per event it handled
  peak RSS              the role's highest resident memory in the phase

The broker, NATS and loadgen share the bench process and are not counted;
on a small machine they compete with the roles for CPU, so compare runs on
the same machine only. Flags after -- go to both roles (--memory-limit...).
docs/benchmarks.md explains the method and keeps the latest table.`,
		Example: `  sluice bench
  sluice bench --rate 20000 --duration 30s -- --memory-limit 256MiB`,
		RunE: func(cmd *cobra.Command, args []string) error {
			bin, err := os.Executable()
			if err != nil {
				return fmt.Errorf("bench: find the sluice binary: %w", err)
			}
			cfg.Bin, cfg.Args, cfg.Out = bin, args, cmd.ErrOrStderr()
			rep, err := bench.Run(cmd.Context(), cfg)
			if rep != nil && len(rep.Phases) > 0 {
				rep.Print(cmd.OutOrStdout())
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.ClickHouseAddr, "clickhouse-addr", clickhouse.DefaultAddr, "ClickHouse (native protocol) the work role writes to")
	f.Float64Var(&cfg.Rate, "rate", 20000, "events per second of the fixed-rate phase")
	f.DurationVar(&cfg.Duration, "duration", 30*time.Second, "how long loadgen sends in each phase")
	f.DurationVar(&cfg.Drain, "drain", 2*time.Minute, "longest wait after a phase for ClickHouse to hold every acknowledged event")
	f.IntVar(&cfg.BatchSize, "batch-size", 100, "events per HTTP request")
	f.IntVar(&cfg.Concurrency, "concurrency", 8, "HTTP requests in flight")
	f.BoolVar(&cfg.Saturation, "saturation", true, "add a phase at loadgen's full speed")
	f.StringVar(&cfg.Dir, "dir", "", "directory for the broker's data and the roles' logs (default: a temporary one)")
	f.BoolVar(&cfg.Keep, "keep", false, "keep the directory and the ClickHouse database afterwards")
	f.StringVar(&cfg.ProfileDir, "profile-dir", "", "save a CPU and an allocation profile (.allocs.pprof) of each role in each phase here (go tool pprof FILE); the roles run with --pprof")
	return cmd
}
