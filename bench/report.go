package bench

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the outcome of a benchmark: one Phase per load.
type Report struct {
	// Machine describes where it ran (CPUs, OS, Go version).
	Machine string
	// Args are the flags both roles ran with.
	Args   []string
	Phases []Phase
}

// Phase is what one load measured. CPU per event counts the role's user
// and system time over the phase and its drain, divided by the events it
// handled (acknowledged for ingest, stored for work).
type Phase struct {
	Name       string
	TargetRate float64 // 0: saturation
	// Acked and Stored count events acknowledged to loadgen and stored in
	// ClickHouse during the phase.
	Acked, Stored int64
	// AckedPerSec is loadgen's acknowledged rate; StoredPerSec the stored
	// events over the time from the phase's start until the last was
	// stored.
	AckedPerSec, StoredPerSec float64
	// AckP50 and AckP99 are loadgen's request latencies (a batch each).
	AckP50, AckP99 time.Duration
	// VisibleP99 is the 99th percentile of the time from an event's receipt
	// by the collector until its INSERT into ClickHouse returned
	// (sluice_sink_event_freshness_seconds); negative when unknown.
	VisibleP99 time.Duration
	// DrainAfterAcks is how long the last events took to be stored after
	// loadgen's last acknowledgement.
	DrainAfterAcks                     time.Duration
	IngestCPUPerEvent, WorkCPUPerEvent time.Duration
	IngestPeakRSS, WorkPeakRSS         int64
	// Unacked and Rejected are loadgen's: both should be 0.
	Unacked, Rejected int64
}

// Print writes the report as a table.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "machine: %s\n", r.Machine)
	if len(r.Args) > 0 {
		fmt.Fprintf(w, "roles ran with: %s\n", strings.Join(r.Args, " "))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "load\tacked/s\tstored/s\tack p50\tack p99\tvisible p99\tingest µs/ev\twork µs/ev\tingest+work µs/ev\tingest peak RSS\twork peak RSS\t")
	for _, p := range r.Phases {
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%s\t%s\t%s\t%.1f\t%.1f\t%.1f\t%s\t%s\t\n",
			p.Name, p.AckedPerSec, p.StoredPerSec, ms(p.AckP50), ms(p.AckP99), ms(p.VisibleP99),
			us(p.IngestCPUPerEvent), us(p.WorkCPUPerEvent), us(p.IngestCPUPerEvent+p.WorkCPUPerEvent),
			mib(p.IngestPeakRSS), mib(p.WorkPeakRSS))
	}
	tw.Flush()
	for _, p := range r.Phases {
		if p.Unacked > 0 || p.Rejected > 0 {
			fmt.Fprintf(w, "warning: phase %s left %d events unacknowledged and %d rejected\n", p.Name, p.Unacked, p.Rejected)
		}
	}
}

func ms(d time.Duration) string {
	if d < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// machine describes the machine: CPUs, OS and architecture, Go version.
func machine() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%d CPUs, %s/%s, %s, host %s", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), host)
}

// visible turns a quantile in seconds into a duration, negative when
// there were no observations.
func visible(q float64) time.Duration {
	if math.IsNaN(q) {
		return -1
	}
	return seconds(q)
}
