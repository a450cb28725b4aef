package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/internal/buildinfo"
)

// newVersionCmd returns `sluice version`, which says which build this is:
// the first thing to ask of a process that misbehaves, and what
// sluice_build_info exports for the ones already running.
func newVersionCmd() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, build date and Go version of this binary",
		Long: `version prints the version of this binary (git describe at build time), the
commit it was built from, when it was built, and the Go toolchain. Binaries
built with 'make build' or the Dockerfile carry all four; a plain 'go build'
in a git checkout falls back on the commit the toolchain records, and shows
the version as "dev". Running processes export the same as the metric
sluice_build_info{version,revision,goversion} on /metrics.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := buildinfo.Get()
			out := cmd.OutOrStdout()
			if jsonOut {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			_, err := fmt.Fprintf(out, "sluice %s\n  commit:     %s\n  built:      %s\n  go version: %s\n",
				info.Version, info.Revision, info.Date, info.GoVersion)
			return err
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print the build information as JSON")
	return cmd
}
