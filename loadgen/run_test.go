package loadgen

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/schemas"
)

// reply is what the fake collector answers to one attempt.
type reply struct {
	status     int
	retryAfter string
	body       string        // default: all accepted
	delay      time.Duration // before answering; the request context still wins
	hangUp     bool          // close the connection instead of answering
}

// policy decides the reply to the attempt-th delivery (counting from 1) of a
// request whose events are ids.
type policy func(attempt int, ids []string) reply

// fakeCollector is an HTTP collector that validates what loadgen sends and
// remembers every attempt, so tests can check retries resend the same events.
type fakeCollector struct {
	t      testing.TB
	reg    *schemas.Registry
	token  string
	policy policy

	mu       sync.Mutex
	attempts map[string][][]string  // by first event_id: the ids of each attempt
	times    map[string][]time.Time // by first event_id: when each attempt came
	accepted map[string]string      // event_id -> stream, for every event answered as accepted
	srv      *httptest.Server
	fails    atomic.Int64
}

func newFakeCollector(t testing.TB, token string, p policy) *fakeCollector {
	reg := testkit.Registry(t)
	fc := &fakeCollector{t: t, reg: reg, token: token, policy: p,
		attempts: map[string][][]string{}, times: map[string][]time.Time{}, accepted: map[string]string{}}
	fc.srv = httptest.NewServer(http.HandlerFunc(fc.serve))
	t.Cleanup(fc.srv.Close)
	return fc
}

func (fc *fakeCollector) errorf(w http.ResponseWriter, format string, args ...any) {
	fc.fails.Add(1)
	fc.t.Errorf(format, args...)
	http.Error(w, fmt.Sprintf(format, args...), http.StatusTeapot)
}

func (fc *fakeCollector) serve(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutPrefix(r.URL.Path, "/v1/streams/")
	name, ok2 := strings.CutSuffix(name, "/events")
	stream := fc.reg.Stream(name)
	if r.Method != http.MethodPost || !ok || !ok2 || stream == nil {
		fc.errorf(w, "unexpected %s %s", r.Method, r.URL.Path)
		return
	}
	if fc.token != "" && r.Header.Get("Authorization") != "Bearer "+fc.token {
		fc.errorf(w, "Authorization %q, want bearer %q", r.Header.Get("Authorization"), fc.token)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			fc.errorf(w, "bad gzip: %v", err)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		fc.errorf(w, "read body: %v", err)
		return
	}
	var objs []map[string]any
	switch ct := r.Header.Get("Content-Type"); ct {
	case "application/x-ndjson":
		for line := range bytes.Lines(raw) {
			var o map[string]any
			if err := json.Unmarshal(line, &o); err != nil {
				fc.errorf(w, "NDJSON line: %v", err)
				return
			}
			objs = append(objs, o)
		}
	case "application/json":
		if err := json.Unmarshal(raw, &objs); err != nil {
			fc.errorf(w, "JSON array: %v", err)
			return
		}
	default:
		fc.errorf(w, "Content-Type %q", ct)
		return
	}
	ids := make([]string, len(objs))
	for i, o := range objs {
		if _, errs := stream.Validate(o); errs != nil {
			fc.errorf(w, "invalid %s event: %v", name, errs)
			return
		}
		ids[i] = o["event_id"].(string)
		if !strings.Contains(ids[i], "-"+name+"-") {
			fc.errorf(w, "event %s posted to stream %s", ids[i], name)
			return
		}
	}

	fc.mu.Lock()
	fc.attempts[ids[0]] = append(fc.attempts[ids[0]], ids)
	fc.times[ids[0]] = append(fc.times[ids[0]], time.Now())
	attempt := len(fc.attempts[ids[0]])
	fc.mu.Unlock()

	rep := reply{status: http.StatusAccepted}
	if fc.policy != nil {
		rep = fc.policy(attempt, ids)
	}
	if rep.delay > 0 {
		select {
		case <-time.After(rep.delay):
		case <-r.Context().Done():
			return
		}
	}
	if rep.hangUp {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			fc.errorf(w, "hijack: %v", err)
			return
		}
		conn.Close()
		return
	}
	if rep.body == "" && rep.status == http.StatusAccepted {
		rep.body = fmt.Sprintf(`{"accepted":%d,"rejected":0,"errors":[]}`, len(ids))
	}
	if rep.status == http.StatusAccepted {
		fc.recordAccepted(name, ids, rep.body)
	}
	if rep.retryAfter != "" {
		w.Header().Set("Retry-After", rep.retryAfter)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rep.status)
	io.WriteString(w, rep.body)
}

// recordAccepted notes which events a 202 accepted, per its error list.
func (fc *fakeCollector) recordAccepted(stream string, ids []string, body string) {
	var ar ackResponse
	json.Unmarshal([]byte(body), &ar)
	bad := map[int]bool{}
	for _, e := range ar.Errors {
		bad[e.Index] = true
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	for i, id := range ids {
		if !bad[i] {
			fc.accepted[id] = stream
		}
	}
}

// ackLog is a concurrency-safe buffer for Config.AckLog.
type ackLog struct{ testkit.LogBuffer }

// lines parses the ack log, failing on a line listed twice.
func (a *ackLog) lines(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(a.String()))
	for sc.Scan() {
		stream, id, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			t.Fatalf("ack log line %q: want stream<TAB>event_id", sc.Text())
		}
		if _, dup := out[id]; dup {
			t.Fatalf("ack log lists %s twice", id)
		}
		out[id] = stream
	}
	return out
}

func quietLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func testConfig(t testing.TB, url string) Config {
	return Config{
		URL:            url,
		Mix:            0.5,
		Concurrency:    4,
		BatchSize:      10,
		MaxEvents:      200,
		RunID:          "t" + strconv.FormatInt(time.Now().UnixNano()%1e6, 10),
		ReportInterval: -1,
		MinBackoff:     time.Millisecond,
		MaxBackoff:     10 * time.Millisecond,
		Timeout:        5 * time.Second,
		Logger:         quietLogger(t),
	}
}

// checkAckLog checks that the ack log lists exactly the events the collector
// accepted, and that they add up to the summary.
func checkAckLog(t *testing.T, fc *fakeCollector, log *ackLog, sum Summary) {
	t.Helper()
	got := log.lines(t)
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if len(got) != len(fc.accepted) {
		t.Errorf("ack log has %d events, collector accepted %d", len(got), len(fc.accepted))
	}
	for id, stream := range fc.accepted {
		if got[id] != stream {
			t.Errorf("accepted %s (%s) is %q in the ack log", id, stream, got[id])
		}
	}
	perStream := map[string]int64{}
	for _, s := range got {
		perStream[s]++
	}
	for _, s := range Streams {
		if perStream[s] != sum.Acked[s] {
			t.Errorf("%s: ack log has %d, summary says %d acked", s, perStream[s], sum.Acked[s])
		}
	}
}

// checkSameEvents checks every retry of a request carried the same events.
func checkSameEvents(t *testing.T, fc *fakeCollector) (maxAttempts int) {
	t.Helper()
	fc.mu.Lock()
	defer fc.mu.Unlock()
	for first, tries := range fc.attempts {
		for i, ids := range tries[1:] {
			if !slices.Equal(ids, tries[0]) {
				t.Errorf("attempt %d of request %s carried different events", i+2, first)
			}
		}
		maxAttempts = max(maxAttempts, len(tries))
	}
	return maxAttempts
}

func TestRetriesResendSameEvents(t *testing.T) {
	tests := []struct {
		name    string
		gzip    bool
		ndjson  bool
		timeout time.Duration
		policy  policy
		tries   int           // attempts per request; 0: at least 2
		conc    int           // concurrency, if not the default
		minGap  time.Duration // between the first two attempts of a request
	}{
		{
			name: "503 with Retry-After, then 503, then 202",
			policy: func(attempt int, _ []string) reply {
				switch attempt {
				case 1:
					return reply{status: 503, retryAfter: "1", body: `{"error":"kafka unavailable"}`}
				case 2:
					return reply{status: 503}
				}
				return reply{status: 202}
			},
			tries:  3,
			minGap: time.Second,
			conc:   20, // every request waits out Retry-After at once
		},
		{
			name: "429 gzip ndjson",
			gzip: true, ndjson: true,
			policy: func(attempt int, _ []string) reply {
				if attempt == 1 {
					return reply{status: 429, retryAfter: "0"}
				}
				return reply{status: 202}
			},
			tries: 2,
		},
		{
			name: "500 and 502",
			policy: func(attempt int, _ []string) reply {
				if attempt <= 2 {
					return reply{status: 500 + 2*(attempt-1)}
				}
				return reply{status: 202}
			},
			tries: 3,
		},
		{
			name: "connection dropped",
			policy: func(attempt int, _ []string) reply {
				return reply{status: 202, hangUp: attempt == 1}
			},
		},
		{
			name:    "timeout",
			timeout: 100 * time.Millisecond,
			policy: func(attempt int, _ []string) reply {
				if attempt == 1 {
					return reply{status: 202, delay: 2 * time.Second}
				}
				return reply{status: 202}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fc := newFakeCollector(t, "s3cret", tt.policy)
			log := &ackLog{}
			cfg := testConfig(t, fc.srv.URL)
			cfg.Token, cfg.Gzip, cfg.NDJSON, cfg.AckLog = "s3cret", tt.gzip, tt.ndjson, log
			if tt.timeout > 0 {
				cfg.Timeout = tt.timeout
			}
			if tt.conc > 0 {
				cfg.Concurrency = tt.conc
			}
			sum, err := Run(context.Background(), cfg, nil)
			if err != nil {
				t.Fatalf("Run: %v\n%+v", err, sum)
			}
			if sum.SentTotal != 200 || sum.AckedTotal != 200 || sum.Acked[StreamIoT] != 100 || sum.Acked[StreamLogs] != 100 {
				t.Errorf("sent %d, acked %d %v: want 200, 100 per stream", sum.SentTotal, sum.AckedTotal, sum.Acked)
			}
			if sum.Rejected != 0 || sum.Unacked != 0 || sum.Anomalies != 0 {
				t.Errorf("rejected %d unacked %d anomalies %d, want none", sum.Rejected, sum.Unacked, sum.Anomalies)
			}
			maxTries := checkSameEvents(t, fc)
			requests := int64(200 / cfg.BatchSize)
			if tt.tries > 0 {
				if maxTries != tt.tries || sum.Retries != requests*int64(tt.tries-1) || sum.Requests != requests*int64(tt.tries) {
					t.Errorf("%d attempts per request, %d retries, %d requests; want %d, %d, %d",
						maxTries, sum.Retries, sum.Requests, tt.tries, requests*int64(tt.tries-1), requests*int64(tt.tries))
				}
			} else if maxTries < 2 || sum.Retries < requests {
				t.Errorf("%d attempts per request, %d retries: want every request retried", maxTries, sum.Retries)
			}
			if sum.Errors != sum.Retries {
				t.Errorf("%d errors, want one per retry (%d)", sum.Errors, sum.Retries)
			}
			if tt.minGap > 0 {
				fc.mu.Lock()
				for first, ts := range fc.times {
					if gap := ts[1].Sub(ts[0]); gap < tt.minGap {
						t.Errorf("request %s retried after %s, before Retry-After", first, gap)
					}
				}
				fc.mu.Unlock()
			}
			checkAckLog(t, fc, log, sum)
		})
	}
}

func TestRejections(t *testing.T) {
	tests := []struct {
		name         string
		policy       policy
		acked, rejec int64
		failed       int64
	}{
		{
			name: "some events of every request",
			policy: func(_ int, ids []string) reply {
				// Reject the 4th and 8th event of each request of 10.
				return reply{status: 202, body: fmt.Sprintf(
					`{"accepted":%d,"rejected":2,"errors":[{"index":3,"error":"ts: not RFC 3339 or epoch ms"},{"index":7,"error":"level: \"x\" is not one of trace, debug"}]}`,
					len(ids)-2)}
			},
			acked: 160, rejec: 40,
		},
		{
			name: "whole requests with 400",
			policy: func(_ int, ids []string) reply {
				if strings.Contains(ids[0], "-app_logs-") {
					var errs []string
					for i := range ids {
						errs = append(errs, fmt.Sprintf(`{"index":%d,"error":"service: required"}`, i))
					}
					return reply{status: 400, body: fmt.Sprintf(`{"accepted":0,"rejected":%d,"errors":[%s]}`, len(ids), strings.Join(errs, ","))}
				}
				return reply{status: 202}
			},
			acked: 100, rejec: 100,
		},
		{
			name: "400 without counts",
			policy: func(_ int, ids []string) reply {
				if strings.Contains(ids[0], "-app_logs-") {
					return reply{status: 400, body: "bad request"}
				}
				return reply{status: 202}
			},
			acked: 100, failed: 100,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fc := newFakeCollector(t, "", tt.policy)
			log := &ackLog{}
			cfg := testConfig(t, fc.srv.URL)
			cfg.AckLog = log
			sum, err := Run(context.Background(), cfg, nil)
			if tt.rejec > 0 && !errors.Is(err, ErrRejected) {
				t.Errorf("Run error %v, want ErrRejected", err)
			}
			if tt.failed > 0 && !errors.Is(err, ErrUnacknowledged) {
				t.Errorf("Run error %v, want ErrUnacknowledged", err)
			}
			if sum.AckedTotal != tt.acked || sum.Rejected != tt.rejec || sum.Failed != tt.failed || sum.Unacked != tt.failed {
				t.Errorf("acked %d rejected %d failed %d unacked %d, want %d %d %d %d",
					sum.AckedTotal, sum.Rejected, sum.Failed, sum.Unacked, tt.acked, tt.rejec, tt.failed, tt.failed)
			}
			if sum.Retries != 0 {
				t.Errorf("%d retries, want none: rejections are final", sum.Retries)
			}
			if len(sum.ErrorSamples) == 0 || len(sum.ErrorSamples) > maxSamples {
				t.Errorf("error samples %q: want a few", sum.ErrorSamples)
			}
			checkAckLog(t, fc, log, sum)
		})
	}
}

func TestRefusedRequests(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		stopsEarly bool
	}{
		{"unauthorized stops the run", 401, true},
		{"unknown stream stops the run", 404, true},
		{"too large is counted and the run goes on", 413, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fc := newFakeCollector(t, "", func(int, []string) reply {
				return reply{status: tt.status, body: `{"error":"nope ` + strconv.Itoa(tt.status) + `"}`}
			})
			cfg := testConfig(t, fc.srv.URL)
			cfg.Concurrency = 1
			sum, err := Run(context.Background(), cfg, nil)
			if !errors.Is(err, ErrUnacknowledged) {
				t.Errorf("Run error %v, want ErrUnacknowledged", err)
			}
			if sum.Retries != 0 || sum.AckedTotal != 0 || sum.Failed != sum.SentTotal || sum.Unacked != sum.SentTotal {
				t.Errorf("retries %d acked %d failed %d unacked %d sent %d: want all sent failed, none retried",
					sum.Retries, sum.AckedTotal, sum.Failed, sum.Unacked, sum.SentTotal)
			}
			if tt.stopsEarly && sum.SentTotal != int64(cfg.BatchSize) {
				t.Errorf("sent %d events, want one request's worth before stopping", sum.SentTotal)
			}
			if !tt.stopsEarly && sum.SentTotal != cfg.MaxEvents {
				t.Errorf("sent %d events, want all %d", sum.SentTotal, cfg.MaxEvents)
			}
			if len(sum.ErrorSamples) == 0 || !strings.Contains(sum.ErrorSamples[0], "nope") {
				t.Errorf("error samples %q: want the response body", sum.ErrorSamples)
			}
			if sum.ErrorsByCause[strconv.Itoa(tt.status)] != sum.Errors {
				t.Errorf("errors by cause %v, want all %d", sum.ErrorsByCause, tt.status)
			}
		})
	}
}

func TestInconsistentResponses(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"counts do not add up", `{"accepted":3,"rejected":0,"errors":[]}`},
		{"rejections without indexes", `{"accepted":9,"rejected":1,"errors":[]}`},
		{"not JSON", `ok`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fc := newFakeCollector(t, "", func(int, []string) reply { return reply{status: 202, body: tt.body} })
			log := &ackLog{}
			cfg := testConfig(t, fc.srv.URL)
			cfg.AckLog = log
			sum, err := Run(context.Background(), cfg, nil)
			if !errors.Is(err, ErrUnacknowledged) {
				t.Errorf("Run error %v, want ErrUnacknowledged", err)
			}
			if sum.Anomalies != 20 || sum.AckedTotal != 0 || sum.Unacked != 200 {
				t.Errorf("anomalies %d acked %d unacked %d, want 20, 0, 200", sum.Anomalies, sum.AckedTotal, sum.Unacked)
			}
			if n := len(log.lines(t)); n != 0 {
				t.Errorf("ack log has %d lines, want none", n)
			}
		})
	}
}

func TestShutdown(t *testing.T) {
	var unavailableUntil atomic.Int64
	tests := []struct {
		name       string
		grace      time.Duration
		abortAfter time.Duration // 0: never
		policy     policy
		clean      bool
		maxTime    time.Duration
	}{
		{
			name:  "in-flight requests finish their retries within grace",
			grace: 10 * time.Second,
			policy: func(int, []string) reply {
				if time.Now().UnixNano() < unavailableUntil.Load() {
					return reply{status: 503}
				}
				return reply{status: 202}
			},
			clean:   true,
			maxTime: 5 * time.Second,
		},
		{
			name:    "grace runs out",
			grace:   300 * time.Millisecond,
			policy:  func(int, []string) reply { return reply{status: 503} },
			maxTime: 3 * time.Second,
		},
		{
			name:       "abort cuts grace short",
			grace:      time.Hour,
			abortAfter: 400 * time.Millisecond,
			policy:     func(int, []string) reply { return reply{status: 503, retryAfter: "1"} },
			maxTime:    3 * time.Second,
		},
		{
			name:    "no grace",
			grace:   -1,
			policy:  func(int, []string) reply { return reply{status: 202, delay: time.Hour} },
			maxTime: 3 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := newFakeCollector(t, "", tt.policy)
			log := &ackLog{}
			cfg := testConfig(t, fc.srv.URL)
			cfg.MaxEvents, cfg.Grace, cfg.AckLog = 0, tt.grace, log
			cfg.MaxBackoff = 50 * time.Millisecond
			cfg.Timeout = time.Hour
			abort := make(chan struct{})
			cfg.Abort = abort
			// The collector is unavailable from just before the stop until
			// 300ms into the grace period.
			unavailableUntil.Store(time.Now().Add(500 * time.Millisecond).UnixNano())
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(200*time.Millisecond, cancel)
			if tt.abortAfter > 0 {
				time.AfterFunc(tt.abortAfter, func() { close(abort) })
			}
			start := time.Now()
			sum, err := Run(ctx, cfg, nil)
			if took := time.Since(start); took > tt.maxTime {
				t.Errorf("Run took %s, want under %s", took, tt.maxTime)
			}
			if sum.SentTotal == 0 {
				t.Fatal("nothing sent")
			}
			if tt.clean {
				if err != nil || sum.AckedTotal != sum.SentTotal || sum.Retries == 0 {
					t.Errorf("err %v, acked %d of %d with %d retries: want all acked after retries", err, sum.AckedTotal, sum.SentTotal, sum.Retries)
				}
			} else {
				if !errors.Is(err, ErrUnacknowledged) || sum.Abandoned == 0 || sum.Abandoned != sum.Unacked {
					t.Errorf("err %v, abandoned %d unacked %d: want abandoned events reported", err, sum.Abandoned, sum.Unacked)
				}
			}
			checkAckLog(t, fc, log, sum)
		})
	}
}

func TestRateLimit(t *testing.T) {
	fc := newFakeCollector(t, "", nil)
	cfg := testConfig(t, fc.srv.URL)
	cfg.MaxEvents, cfg.Rate, cfg.Duration, cfg.BatchSize = 0, 4000, time.Second, 20
	sum, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	// One second at 4000/s, plus the initial burst of 200.
	if sum.AckedTotal < 3400 || sum.AckedTotal > 4400 {
		t.Errorf("acked %d in 1s at 4000 ev/s", sum.AckedTotal)
	}
}

func TestReportAndSummaryOutput(t *testing.T) {
	fc := newFakeCollector(t, "", func(attempt int, _ []string) reply {
		if attempt == 1 {
			return reply{status: 503, delay: 5 * time.Millisecond}
		}
		return reply{status: 202, delay: 5 * time.Millisecond}
	})
	cfg := testConfig(t, fc.srv.URL)
	cfg.ReportInterval, cfg.MaxEvents, cfg.Rate = 100*time.Millisecond, 600, 2000
	var out bytes.Buffer
	sum, err := Run(context.Background(), cfg, &out)
	if err != nil {
		t.Fatal(err)
	}
	text := out.String()
	// A progress line every interval; on a loaded machine the first may
	// come a tick late, so its time is not pinned.
	if !regexp.MustCompile(`(?m)^t=\d+\.\ds sent=\d+ acked=`).MatchString(text) {
		t.Errorf("output lacks a progress line:\n%s", text)
	}
	for _, want := range []string{" acked=", " ev/s p50=", "ms p99=", " retries=", " errors=",
		"600 events acknowledged", "iot_telemetry  sent=300 acked=300", "(503: 60)", "OK: every event"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if sum.Latency.Count != 60 || sum.Latency.P50 < 5*time.Millisecond || sum.Latency.Max < sum.Latency.P99 {
		t.Errorf("latency %+v: want 60 acknowledged requests of at least 5ms", sum.Latency)
	}

	js, err := json.Marshal(sum)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if back["ok"] != true || back["acked_total"] != 600.0 || back["latency"].(map[string]any)["p50_ms"].(float64) < 5 {
		t.Errorf("JSON summary: %s", js)
	}
}

// BenchmarkRun measures loadgen end to end against a collector that does
// the least it can: count events and acknowledge them.
func BenchmarkRun(b *testing.B) {
	for _, bs := range []int{100, 500} {
		b.Run("batch="+strconv.Itoa(bs), func(b *testing.B) {
			srv := httptest.NewServer(http.HandlerFunc(trivialCollector))
			defer srv.Close()
			cfg := Config{
				URL: srv.URL, Mix: 0.5, Concurrency: 8, BatchSize: bs, MaxEvents: int64(max(b.N, bs)),
				ReportInterval: -1, Logger: quietLogger(b),
			}
			b.ReportAllocs()
			b.ResetTimer()
			sum, err := Run(context.Background(), cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(sum.EventsPerSecond, "events/s")
		})
	}
}

var (
	eventIDKey = []byte(`"event_id"`)
	bodyPool   = sync.Pool{New: func() any { return new(bytes.Buffer) }}
)

func trivialCollector(w http.ResponseWriter, r *http.Request) {
	buf := bodyPool.Get().(*bytes.Buffer)
	defer bodyPool.Put(buf)
	buf.Reset()
	buf.ReadFrom(r.Body)
	n := bytes.Count(buf.Bytes(), eventIDKey)
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(w, `{"accepted":%d,"rejected":0,"errors":[]}`, n)
}
