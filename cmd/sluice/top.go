package main

import (
	"errors"
	"fmt"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/status/top"
)

// newTopCmd is `sluice top`: a live terminal view of one or more running
// Sluice processes, from their GET /api/status.
func newTopCmd() *cobra.Command {
	var (
		urls     []string
		interval time.Duration
		timeout  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "top",
		Short: "A live terminal view of running Sluice processes: rates per stream and stage, lag, sinks, memory",
		Long: `top polls GET /api/status of each --url (the --http-addr of a sluice dev or
sluice run process) every --interval and shows them as one view: rates per
stream and stage summed over the processes, sinks with the worst state any
process reports, each partition's backlog age and lag, and each process's
role, uptime and memory against its --memory-limit. Give one --url per
process to join ingest and work processes into one picture. A process that
does not answer shows as down; the view goes on. q, Esc or Ctrl-C quits.`,
		Example: `  sluice top
  sluice top --url http://10.0.0.5:8080 --url http://10.0.0.6:8080`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(urls) == 0 {
				return errors.New("--url: give at least one process to watch")
			}
			if interval <= 0 || timeout <= 0 {
				return errors.New("--interval and --timeout must be positive")
			}
			bases := make([]string, len(urls))
			for i, u := range urls {
				b, err := top.NormalizeURL(u)
				if err != nil {
					return fmt.Errorf("--url: %w", err)
				}
				bases[i] = b
			}
			ctx := cmd.Context()
			p := tea.NewProgram(top.New(ctx, bases, interval, timeout), tea.WithAltScreen(), tea.WithContext(ctx))
			_, err := p.Run()
			stopped := errors.Is(err, tea.ErrProgramKilled) || errors.Is(err, tea.ErrInterrupted)
			if err != nil && (!stopped || errors.Is(err, tea.ErrProgramPanic)) {
				return fmt.Errorf("top: %w", err)
			}
			// Stopped by a signal (Ctrl-C from outside the terminal, SIGTERM): what the operator asked for.
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&urls, "url", []string{"http://127.0.0.1:8080"}, "base URL of a Sluice process's --http-addr; repeat (or separate with commas) to merge several")
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "how often to refresh")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Second, "how long to wait for a process's answer before showing it as down")
	return cmd
}
