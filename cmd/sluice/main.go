// Command sluice is the Sluice event pipeline: collectors, workers, the dev
// stack, the load generator and the reconciler, in one binary.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
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

	cmd, err := newRootCmd().ExecuteContextC(ctx)
	interrupted := ctx.Err() != nil
	stop()
	if err != nil && interrupted && errors.Is(err, context.Canceled) {
		// Stopped by a signal while still starting up: that is what the
		// operator asked for, not a failure.
		slog.Info("interrupted", "during", err.Error())
		err = nil
	}
	os.Exit(exitCode(cmd, err, os.Stderr))
}

// Exit statuses shared by every command; `sluice --help` lists them, and
// verify's own (1 for discrepancies) in `sluice verify --help`.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// exitCode reports err, unless the command already did, and returns the
// process's exit status for it.
func exitCode(cmd *cobra.Command, err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	var exit exitError
	if errors.As(err, &exit) {
		return exit.code
	}
	fmt.Fprintln(stderr, "sluice:", err)
	var usage usageError
	if errors.As(err, &usage) {
		if usage.hint && cmd != nil {
			fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
		return exitUsage
	}
	return exitFailed
}

// exitError ends the process with a status code after the command has
// already reported what went wrong.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// usageError is a bad command line, environment variable or config-file
// setting: found before anything starts, and exit status 2, so that a
// supervisor or script can tell "fix the configuration" from "it failed
// while running". hint adds a pointer to the command's --help, for
// mistakes on the command line itself.
type usageError struct {
	err  error
	hint bool
}

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// asUsage marks a non-nil err as a configuration error (exit status 2).
func asUsage(err error) error {
	if err == nil {
		return nil
	}
	return usageError{err: err}
}

// badCommandLine marks a non-nil err as a mistake on the command line:
// exit status 2, with a pointer to --help.
func badCommandLine(err error) error {
	if err == nil {
		return nil
	}
	return usageError{err: err, hint: true}
}

type globalFlags struct {
	logLevel   string
	logFormat  string
	configFile string
}

// rootLong is `sluice --help`'s description; docs/configuration.md says
// the same at more length.
const rootLong = `Sluice ingests events from device fleets and log shippers, validates them
against stream schemas, writes them to Kafka, and delivers them to ClickHouse
(one table per stream) and NATS (one subject per stream and key), exactly once
in effect.

Settings come from, in order of precedence: the command line, environment
variables, the --config file, the defaults. Every flag has an environment
variable named SLUICE_ and the flag's name in capitals with '-' as '_':
--http-addr is SLUICE_HTTP_ADDR. The config file is YAML keyed by flag name;
one file serves every command: each takes the keys it knows and ignores the
keys of other commands' flags, and a key that is no command's flag is an
error. 'sluice validate --config FILE' checks a file without starting
anything; sluice.example.yaml and docs/configuration.md list every setting.

Exit status:
  0  success
  1  an error while running (and for loadgen: events rejected or left
     unacknowledged)
  2  a usage or configuration error (a bad flag, SLUICE_ variable or config
     setting), found before anything starts
  verify exits 1 when events are missing, duplicated or unexpected, and 2
  when it could not check.`

func newRootCmd() *cobra.Command {
	var g globalFlags
	root := &cobra.Command{
		Use:           "sluice",
		Short:         "Sluice: events from HTTP, MQTT and syslog into Kafka, ClickHouse and NATS, exactly once",
		Long:          rootLong,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Runnable only to refuse an unknown command with status 2; with
		// no command it shows the help, as cobra would.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			hint := ""
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				hint = fmt.Sprintf(" (did you mean %q?)", s[0])
			}
			return fmt.Errorf("unknown command %q for %q%s", args[0], cmd.CommandPath(), hint)
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return applySettings(cmd, &g)
		},
	}
	root.SuggestionsMinimumDistance = 2 // cobra's own default, which SuggestionsFor does not apply
	pf := root.PersistentFlags()
	pf.StringVar(&g.configFile, configFlag, "", configHelp)
	pf.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	pf.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	root.AddCommand(newDevCmd(), newRunCmd(), newLoadgenCmd(), newVerifyCmd(), newSchemaCmd(), newBenchCmd(),
		newVersionCmd(), newValidateCmd(), newConfigCmd(), newTopCmd())
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return badCommandLine(err) })
	// Wrong arguments are usage errors whatever the command.
	visitCommands(root, func(c *cobra.Command) {
		if args := c.Args; args != nil {
			c.Args = func(cmd *cobra.Command, a []string) error { return badCommandLine(args(cmd, a)) }
		}
	})
	return root
}

// applySettings gives cmd's flags that the command line left alone their
// values from the environment, then from the config file, and sets up
// logging from the result, so that log-level and log-format work from
// either, for every command.
func applySettings(cmd *cobra.Command, g *globalFlags) error {
	if err := applyEnv(cmd); err != nil {
		return asUsage(err)
	}
	if g.configFile != "" {
		if err := applyConfigFile(cmd, g.configFile); err != nil {
			return asUsage(err)
		}
	}
	if err := setupLogging(*g); err != nil {
		// Say where the bad value came from, unless the command line.
		name := "log-format"
		if strings.HasPrefix(err.Error(), "--log-level") {
			name = "log-level"
		}
		var src []string
		if f := lookupFlag(cmd, name); f != nil {
			src = f.Annotations[sourceAnnotation]
		}
		switch {
		case slices.Contains(src, "config"):
			err = fmt.Errorf("config %s: %w", g.configFile, err)
		case slices.Contains(src, "env"):
			err = fmt.Errorf("%s: %w", envName(name), err)
		}
		return asUsage(err)
	}
	return nil
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
