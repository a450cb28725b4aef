package loadgen

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Sentinel errors Run wraps when a run did not end cleanly; test with
// errors.Is.
var (
	// ErrRejected means the collector rejected some of loadgen's events.
	// loadgen only generates valid events, so this is a bug on one side.
	ErrRejected = errors.New("collector rejected loadgen events")
	// ErrUnacknowledged means some events sent were never acknowledged:
	// refused without retry, abandoned at shutdown, or answered with
	// counts that did not add up.
	ErrUnacknowledged = errors.New("events left unacknowledged")
)

// Summary is the outcome of a run. Event counts satisfy
// SentTotal = AckedTotal + Rejected + Unacked, and
// Unacked = Failed + Abandoned + events in Anomalies responses.
type Summary struct {
	// RunID is the run id in every event_id of the run.
	RunID string `json:"run_id"`
	// Elapsed is from start until the last request finished.
	Elapsed time.Duration `json:"-"`
	// Sent counts events per stream that were sent at least once. Sequence
	// numbers of a stream run 1..Sent[stream] without gaps.
	Sent map[string]int64 `json:"sent"`
	// SentTotal is the sum of Sent.
	SentTotal int64 `json:"sent_total"`
	// Acked counts events per stream the collector acknowledged (202,
	// "accepted"). Each is in the ack log exactly once.
	Acked map[string]int64 `json:"acked"`
	// AckedTotal is the sum of Acked.
	AckedTotal int64 `json:"acked_total"`
	// Rejected counts events the collector refused as invalid.
	Rejected int64 `json:"rejected"`
	// Unacked counts events sent but neither acknowledged nor rejected. Some
	// of them may still have reached Sluice (a response lost to a timeout).
	Unacked int64 `json:"unacked"`
	// Failed counts events in requests refused with a status not worth
	// retrying (4xx other than 408 and 429).
	Failed int64 `json:"failed"`
	// Abandoned counts events still being retried when the run stopped and
	// the grace period ran out.
	Abandoned int64 `json:"abandoned"`
	// Anomalies counts 2xx responses whose counts did not match the request;
	// their events are counted as unacknowledged.
	Anomalies int64 `json:"anomalies"`
	// Requests counts HTTP attempts, retries included.
	Requests int64 `json:"requests"`
	// Retries counts attempts that repeated an earlier request.
	Retries int64 `json:"retries"`
	// Errors counts failed attempts of any kind, retried or not.
	Errors int64 `json:"errors"`
	// ErrorsByCause splits Errors by cause: an HTTP status code such as
	// "503", or "timeout" or "connection".
	ErrorsByCause map[string]int64 `json:"errors_by_cause,omitempty"`
	// ErrorSamples holds the first few error responses and rejections.
	ErrorSamples []string `json:"error_samples,omitempty"`
	// EventsPerSecond is AckedTotal over Elapsed.
	EventsPerSecond float64 `json:"events_per_second"`
	// Latency describes acknowledged attempts, request sent to response read.
	Latency Latency `json:"latency"`
}

// Latency summarizes acknowledgement latencies.
type Latency struct {
	// Count is the number of acknowledged requests measured.
	Count int64
	// P50, P90 and P99 are percentiles; Max is the slowest.
	P50, P90, P99, Max time.Duration
	// Mean is the average.
	Mean time.Duration
}

// MarshalJSON renders durations as fractional milliseconds, which is what
// people reading benchmark output expect.
func (l Latency) MarshalJSON() ([]byte, error) {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return json.Marshal(struct {
		Count int64   `json:"count"`
		P50   float64 `json:"p50_ms"`
		P90   float64 `json:"p90_ms"`
		P99   float64 `json:"p99_ms"`
		Max   float64 `json:"max_ms"`
		Mean  float64 `json:"mean_ms"`
	}{l.Count, ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max), ms(l.Mean)})
}

// MarshalJSON adds the elapsed time in seconds and whether the run was clean.
func (s Summary) MarshalJSON() ([]byte, error) {
	type plain Summary // drops this method, avoiding recursion
	var msg string
	if err := s.Err(); err != nil {
		msg = err.Error()
	}
	return json.Marshal(struct {
		plain
		ElapsedSeconds float64 `json:"elapsed_s"`
		OK             bool    `json:"ok"`
		Error          string  `json:"error,omitempty"`
	}{plain(s), s.Elapsed.Seconds(), msg == "", msg})
}

// Err says why the run was not clean: some event rejected or left
// unacknowledged. It is nil when every event sent was acknowledged.
func (s Summary) Err() error {
	var errs []error
	if s.Rejected > 0 {
		errs = append(errs, fmt.Errorf("%w: %d of %d", ErrRejected, s.Rejected, s.SentTotal))
	}
	if s.Unacked > 0 {
		errs = append(errs, fmt.Errorf("%w: %d of %d (failed %d, abandoned %d, in %d inconsistent responses)",
			ErrUnacknowledged, s.Unacked, s.SentTotal, s.Failed, s.Abandoned, s.Anomalies))
	}
	return errors.Join(errs...)
}

// Print writes the summary for people.
func (s Summary) Print(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("loadgen run %s: %s, %d events acknowledged, %.0f ev/s\n",
		s.RunID, s.Elapsed.Round(time.Millisecond), s.AckedTotal, s.EventsPerSecond)
	for _, st := range Streams {
		p("  %-14s sent=%d acked=%d\n", st, s.Sent[st], s.Acked[st])
	}
	l := s.Latency
	p("  latency        p50=%s p90=%s p99=%s max=%s mean=%s (%d acknowledged requests)\n",
		fmtDur(l.P50), fmtDur(l.P90), fmtDur(l.P99), fmtDur(l.Max), fmtDur(l.Mean), l.Count)
	p("  requests=%d retries=%d errors=%d", s.Requests, s.Retries, s.Errors)
	if len(s.ErrorsByCause) > 0 {
		var parts []string
		for _, c := range slices.Sorted(maps.Keys(s.ErrorsByCause)) {
			parts = append(parts, fmt.Sprintf("%s: %d", c, s.ErrorsByCause[c]))
		}
		p(" (%s)", strings.Join(parts, ", "))
	}
	p("\n  rejected=%d unacknowledged=%d (failed=%d abandoned=%d anomalies=%d)\n",
		s.Rejected, s.Unacked, s.Failed, s.Abandoned, s.Anomalies)
	for _, e := range s.ErrorSamples {
		p("  sample: %s\n", e)
	}
	if err := s.Err(); err != nil {
		p("FAILED: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
	} else {
		p("OK: every event sent was acknowledged\n")
	}
}

// fmtDur renders latencies compactly with about three significant digits.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < 100*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	case d < 10*time.Second:
		return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond))
	}
	return d.Round(100 * time.Millisecond).String()
}
