package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/schemas"
)

// roleHelp is --role's help, the same for run and validate.
const roleHelp = "what this process runs: ingest (collectors), work (workers) or all"

// checkSettingsAnnotation marks a command whose RunE honours settingsOnly:
// it resolves and checks its settings as it always does, then returns
// before it starts, connects to or sends anything. `sluice validate` runs
// those commands that way, so that its checks are the commands' own and
// cannot drift from them.
const checkSettingsAnnotation = "sluice/checks-settings"

// checksSettings returns the annotations of a command that honours
// settingsOnly (see checkSettingsAnnotation).
func checksSettings() map[string]string {
	return map[string]string{checkSettingsAnnotation: "true"}
}

type settingsOnlyKey struct{}

// settingsOnly reports whether cmd runs for `sluice validate`: it must
// resolve and check its settings, then return nil without starting
// anything.
func settingsOnly(cmd *cobra.Command) bool {
	ctx := cmd.Context()
	return ctx != nil && ctx.Value(settingsOnlyKey{}) != nil
}

// validateLong is `sluice validate --help`'s description.
const validateLong = `validate checks a config file the way the commands read it, without
starting, connecting to or sending anything:

  - every key is a flag of some sluice command (an unknown key is named,
    with the nearest known one);
  - every value parses for every command that takes its key (a duration,
    a number, a list...);
  - 'sluice run' (with --role, or the file's role), 'sluice dev', 'sluice
    verify' and 'sluice loadgen' resolve their settings from the file as
    they do when they start: ranges, conflicting settings, the memory plan
    of --memory-limit, token and password files, MQTT routes and brokers,
    ClickHouse partitioning and TTL, and the stream schemas (--schemas).

SLUICE_ environment variables apply as they would to those commands.
validate prints "ok: FILE: N settings, M streams" and exits 0, or names the
first bad setting and exits 2.`

// newValidateCmd returns `sluice validate`.
func newValidateCmd() *cobra.Command {
	var role string
	cmd := &cobra.Command{
		Use:   "validate --config FILE",
		Short: "Check a config file and the stream schemas without starting anything",
		Long:  validateLong,
		Example: `  sluice validate --config /etc/sluice/sluice.yaml
  sluice validate --config sluice.yaml --role ingest`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := lookupFlag(cmd, configFlag).Value.String()
			if path == "" {
				return asUsage(errors.New("--config FILE is required: the file to check"))
			}
			var runRole []string
			if fl := cmd.Flags().Lookup("role"); fromCommandLine(fl) {
				runRole = []string{"--role", role}
			}
			n, streams, err := validateFile(cmd.Context(), path, runRole)
			if err != nil {
				return asUsage(err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "ok: %s: %d settings, %d streams\n", path, n, streams)
			return err
		},
	}
	cmd.Flags().StringVar(&role, "role", "all", roleHelp)
	return cmd
}

// validateFile checks the config file at path for every command, runArgs
// going to `sluice run`, and returns how many settings it holds and how
// many streams `sluice run` would load with it.
func validateFile(ctx context.Context, path string, runArgs []string) (settings, streams int, err error) {
	all, err := readSettings(path)
	if err != nil {
		return 0, 0, err
	}
	// Every value parses for every command that takes its key. The file's
	// keys are known already: the root command applied it to validate.
	var resolvers []*cobra.Command
	fresh := newRootCmd()
	for _, c := range configReaders(fresh) {
		if err := applyConfigFile(c, path); err != nil {
			return 0, 0, fmt.Errorf("%w (for %s)", err, c.CommandPath())
		}
		if c.Annotations[checkSettingsAnnotation] != "" {
			resolvers = append(resolvers, c)
		}
	}
	// Then the commands' own resolution of their settings.
	schemasDir := ""
	for _, c := range resolvers {
		args := append(strings.Fields(c.CommandPath())[1:], "--"+configFlag, path)
		if c.Name() == "run" {
			args = append(args, runArgs...)
		}
		cmd, err := resolveSettings(ctx, args)
		if err != nil {
			return 0, 0, fmt.Errorf("config %s (for %s): %w", path, c.CommandPath(), err)
		}
		if c.Name() == "run" {
			schemasDir = cmd.Flags().Lookup("schemas").Value.String()
		}
	}
	reg, err := schemas.Load(schemasDir)
	if err != nil {
		return 0, 0, err
	}
	return len(all), len(reg.Names()), nil
}

// configReaders are the commands a config file may set flags of: all but
// validate itself, help, shell completion and hidden ones.
func configReaders(root *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	visitCommands(root, func(c *cobra.Command) {
		switch {
		case c == root, hidden(c), c.Name() == "validate", c.Name() == "help", c.Name() == "completion":
			return
		}
		out = append(out, c)
	})
	// run first: its reading of a setting is the one that matters most.
	slices.SortStableFunc(out, func(a, b *cobra.Command) int { return cmp.Compare(commandRank(a.Name()), commandRank(b.Name())) })
	return out
}

// resolveSettings runs `sluice ARGS` in settings-only mode and returns the
// command it ran, whose flags hold its settings. A command that reported
// its error itself (verify, with its own exit status) has it taken from
// what it wrote.
func resolveSettings(ctx context.Context, args []string) (*cobra.Command, error) {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(io.Discard)
	var stderr bytes.Buffer
	root.SetErr(&stderr)
	cmd, err := root.ExecuteContextC(context.WithValue(ctx, settingsOnlyKey{}, true))
	var exit exitError
	if errors.As(err, &exit) {
		msg, _, _ := strings.Cut(strings.TrimSpace(stderr.String()), "\n")
		_, msg, _ = strings.Cut(msg, ": ") // the "sluice verify: " prefix
		err = errors.New(msg)
	}
	return cmd, err
}
