// Command sluice is the Sluice event pipeline: collectors, workers, the dev
// stack, the load generator and the reconciler, in one binary.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, restore the default so a second one kills a
	// shutdown that hangs.
	go func() { <-ctx.Done(); stop() }()

	err := newRootCmd().ExecuteContext(ctx)
	interrupted := ctx.Err() != nil
	stop()
	if err != nil && interrupted && errors.Is(err, context.Canceled) {
		// Stopped by a signal while still starting up: that is what the
		// operator asked for, not a failure.
		slog.Info("interrupted", "during", err.Error())
		err = nil
	}
	if err != nil {
		var exit exitError
		if errors.As(err, &exit) {
			os.Exit(exit.code)
		}
		fmt.Fprintln(os.Stderr, "sluice:", err)
		os.Exit(1)
	}
}

// exitError ends the process with a status code after the command has
// already reported what went wrong.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

type globalFlags struct {
	logLevel  string
	logFormat string
}

func newRootCmd() *cobra.Command {
	var g globalFlags
	root := &cobra.Command{
		Use:   "sluice",
		Short: "Sluice: events from HTTP, MQTT and syslog into Kafka, ClickHouse and NATS, exactly once",
		Long: `Sluice ingests events from device fleets and log shippers, validates them
against stream schemas, writes them to Kafka, and delivers them to ClickHouse
(one table per stream) and NATS (one subject per stream and key), exactly once
in effect.

Every flag can also be set through an environment variable named SLUICE_ and
the flag's name in capitals with '-' as '_': --http-addr is SLUICE_HTTP_ADDR.
A flag given on the command line wins over the environment.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd); err != nil {
				return err
			}
			return setupLogging(g)
		},
	}
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	root.AddCommand(newDevCmd(), newRunCmd(), newLoadgenCmd(), newVerifyCmd(), newSchemaCmd(), newBenchCmd(), newTopCmd())
	return root
}

// applyEnv sets every flag the command line left alone from its SLUICE_
// environment variable.
func applyEnv(cmd *cobra.Command) error {
	var errs []error
	set := func(f *pflag.Flag) {
		if f.Changed {
			return
		}
		name := envName(f.Name)
		v, ok := os.LookupEnv(name)
		if !ok {
			return
		}
		if err := f.Value.Set(v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%s: %w", name, shown(f, v), err))
			return
		}
		f.Changed = true
		f.Annotations = withSource(f.Annotations, "env")
	}
	cmd.Flags().VisitAll(set)
	cmd.InheritedFlags().VisitAll(set)
	return errors.Join(errs...)
}

func envName(flag string) string {
	return "SLUICE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func setupLogging(g globalFlags) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: %w", g.logLevel, err)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch g.logFormat {
	case "text":
		h = slog.NewTextHandler(os.Stderr, opts)
	case "json":
		h = slog.NewJSONHandler(os.Stderr, opts)
	default:
		return fmt.Errorf("--log-format %q: want text or json", g.logFormat)
	}
	slog.SetDefault(slog.New(h))
	return nil
}
