package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/internal/testkit"
)

// hostileSenders and hostileFor are the load: 16 bodies of 8 MiB
// at once, for about 15 s.
const (
	hostileSenders = 16
	hostileFor     = 15 * time.Second
	hostileSize    = 8 << 20
	// maxAnswer is the most an answer to a hostile body may weigh.
	maxAnswer = 8 << 10
	// minSmallFirstTry is the share of small valid batches that must get
	// 202 at the first try while the hostile bodies run: most of them. The
	// collector has only two parsing slots at 256MiB and 16 hostile
	// uploads compete for them, so some small batches may get 429 with
	// Retry-After, which the SPEC allows under load; but if most did, one
	// hostile client would be locking everyone else out.
	minSmallFirstTry = 0.5
	// minSmallAcked is the share of small batches that must be
	// acknowledged within maxSmallTries tries, each after the Retry-After
	// the last answer asked for: nearly all. (Not all: the batch in flight
	// when the test ends may not finish its retries in a busy second.)
	minSmallAcked = 0.95
	maxSmallTries = 5
)

// TestHostileBodiesUnderMemoryLimit sends 16 hostile 8 MiB bodies at once,
// over and over for 15 s, to `sluice dev --memory-limit 256MiB`, cycling
// through the kinds of testkit.HostileBodies, while four producers post
// small valid batches. It samples the process's resident set every 100 ms
// and proves that it never passes the limit (VmHWM too), that the process
// stays up and healthy, that every hostile body gets a short 4xx answer
// (a 400 naming the field, 413, or 429/503 with Retry-After), and that the
// small producers keep getting 202.
func TestHostileBodiesUnderMemoryLimit(t *testing.T) {
	const limit = 256 << 20
	usePlainBinary(t)
	dev, url := startLimitedDev(t, "256MiB")
	pid := dev.cmd.Process.Pid
	watch := testkit.WatchRSS(t, pid, limit, 100*time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), hostileFor)
	defer cancel()
	bodies := testkit.HostileBodies(hostileSize)
	hostile := &hostileTally{status: map[int]int{}}
	small := &smallTally{status: map[int]int{}}
	var wg sync.WaitGroup
	for i := range hostileSenders {
		wg.Go(func() { sendHostile(ctx, url, bodies, i, hostile) })
	}
	for i := range 4 {
		wg.Go(func() { sendSmall(ctx, url, fmt.Sprintf("small-%d", i), small) })
	}
	wg.Wait()
	watch.Stop()
	rss := watch.Report()
	hwm := testkit.ProcStatusBytes(t, pid, "VmHWM")

	t.Logf("%s, VmHWM %s", rss, testkit.MiB(hwm))
	t.Logf("hostile bodies: %d answered, statuses %v, %d transport errors", hostile.answered, hostile.status, hostile.errors)
	checkRunning(t, dev)
	if code := getStatus(t, url+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz answered %d after the hostile bodies", code)
	}
	if rss.Err != nil {
		t.Errorf("sampling stopped early: %v", rss.Err)
	}
	if rss.Over > 0 || hwm > limit {
		t.Errorf("resident set over the limit of 256MiB: %d samples over (the first %s), VmHWM %s",
			rss.Over, testkit.MiB(rss.FirstOver), testkit.MiB(hwm))
	}
	for _, f := range hostile.failures {
		t.Error(f)
	}
	if hostile.answered < hostileSenders {
		t.Errorf("only %d hostile bodies answered in %s", hostile.answered, hostileFor)
	}
	checkSmallAccepted(t, small)
}

// hostileTally counts the answers of one kind of sender.
type hostileTally struct {
	mu       sync.Mutex
	answered int
	errors   int
	status   map[int]int
	failures []string // the first few answers that broke the rules
}

func (h *hostileTally) add(a answer, err error, failure string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		h.errors++
	} else {
		h.answered++
		h.status[a.status]++
	}
	if failure != "" && len(h.failures) < 10 {
		h.failures = append(h.failures, failure)
	}
}

// sendHostile posts hostile bodies one after the other until ctx ends,
// starting at a different kind for each sender so that all kinds are in
// flight at once.
func sendHostile(ctx context.Context, url string, bodies []testkit.HostileBody, sender int, tally *hostileTally) {
	c := &http.Client{Timeout: 2 * time.Minute}
	for i := sender; ctx.Err() == nil; i++ {
		b := bodies[i%len(bodies)]
		// The request itself outlives ctx: an answer cut off by the end
		// of the test is not the collector's fault.
		a, err := postEventsBody(context.Background(), c, url, "iot_telemetry", b.Body)
		failure := ""
		if err != nil {
			failure = fmt.Sprintf("%s: %v", b.Name, err)
		} else if msg := checkHostile(a, b.Field); msg != "" {
			failure = fmt.Sprintf("%s: %s", b.Name, msg)
		}
		tally.add(a, err, failure)
	}
}

// checkHostile says what is wrong with the answer to a hostile body whose
// first error must contain field, or "" when nothing is.
func checkHostile(a answer, field string) string {
	if a.size >= maxAnswer {
		return fmt.Sprintf("answer of %d bytes (status %d), want under 8 KiB", a.size, a.status)
	}
	switch a.status {
	case http.StatusBadRequest:
		var resp ingest.Response
		if err := json.Unmarshal(a.body, &resp); err != nil {
			return fmt.Sprintf("400 answer %.300q: %v", a.body, err)
		}
		if resp.Accepted != 0 || len(resp.Errors) == 0 || !strings.Contains(resp.Errors[0].Error, field) {
			return fmt.Sprintf("400 answer %.300s, want nothing accepted and a first error naming %q", a.body, field)
		}
	case http.StatusRequestEntityTooLarge:
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		if a.retryAfter == "" {
			return fmt.Sprintf("%d without Retry-After: %.300s", a.status, a.body)
		}
	default:
		return fmt.Sprintf("status %d, want 400, 413, 429 or 503: %.300s", a.status, a.body)
	}
	return ""
}

// smallTally counts the small producers' batches.
type smallTally struct {
	mu                sync.Mutex
	batches, firstTry int
	acked             int // at the first try or a later one
	status            map[int]int
	failures          []string
}

func (s *smallTally) add(attempts []int, failure string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches++
	for _, code := range attempts {
		s.status[code]++
	}
	if n := len(attempts); n > 0 && attempts[n-1] == http.StatusAccepted {
		s.acked++
		if n == 1 {
			s.firstTry++
		}
	}
	if failure != "" && len(s.failures) < 10 {
		s.failures = append(s.failures, failure)
	}
}

// sendSmall posts batches of 10 valid events, one every 100 ms, until ctx
// ends. Like a well-behaved producer it sends a batch refused with 429 or
// 503 again after Retry-After, up to maxSmallTries times.
func sendSmall(ctx context.Context, url, name string, tally *smallTally) {
	c := &http.Client{Timeout: time.Minute}
	for n := 0; ctx.Err() == nil; n++ {
		body, _ := json.Marshal(telemetry(name, seqIDs(fmt.Sprintf("%s-%d", name, n), 10)...))
		var attempts []int
		failure := ""
		for len(attempts) < maxSmallTries {
			a, err := postEventsBody(context.Background(), c, url, "iot_telemetry", body)
			if err != nil {
				failure = fmt.Sprintf("small batch: %v", err)
				break
			}
			attempts = append(attempts, a.status)
			if a.status == http.StatusAccepted {
				break
			}
			secs, err := strconv.Atoi(a.retryAfter)
			if (a.status != http.StatusTooManyRequests && a.status != http.StatusServiceUnavailable) || err != nil {
				failure = fmt.Sprintf("small batch: status %d (Retry-After %q): %.300s", a.status, a.retryAfter, a.body)
				break
			}
			time.Sleep(time.Duration(secs) * time.Second)
		}
		tally.add(attempts, failure)
		time.Sleep(100 * time.Millisecond)
	}
}

// checkSmallAccepted fails the test unless the small producers' batches
// were answered as the SPEC says, at least minSmallFirstTry of them were
// acknowledged at the first try and minSmallAcked within maxSmallTries.
func checkSmallAccepted(t *testing.T, small *smallTally) {
	t.Helper()
	for _, f := range small.failures {
		t.Error(f)
	}
	if small.batches == 0 {
		t.Fatal("no small batch was sent")
	}
	first := float64(small.firstTry) / float64(small.batches)
	acked := float64(small.acked) / float64(small.batches)
	t.Logf("small batches: %d sent, %.0f%% acknowledged at the first try (want %.0f%%), %.0f%% within %d tries (want %.0f%%); answers %v",
		small.batches, 100*first, 100*minSmallFirstTry, 100*acked, maxSmallTries, 100*minSmallAcked, small.status)
	if first < minSmallFirstTry {
		t.Errorf("only %.0f%% of the small valid batches got 202 at the first try while the hostile bodies ran, want at least %.0f%%",
			100*first, 100*minSmallFirstTry)
	}
	if acked < minSmallAcked {
		t.Errorf("only %.0f%% of the small valid batches were acknowledged within %d tries, want at least %.0f%%",
			100*acked, maxSmallTries, 100*minSmallAcked)
	}
}

// getStatus GETs url and returns the status (0 when it did not answer).
func getStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Logf("GET %s: %v", url, err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
