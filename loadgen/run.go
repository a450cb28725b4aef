package loadgen

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/time/rate"
)

// maxSamples bounds how many error bodies and rejections are kept and logged;
// beyond a few they only repeat.
const maxSamples = 5

// maxRetryAfter caps a collector's Retry-After so a bogus header cannot
// stall a run for hours.
const maxRetryAfter = 5 * time.Minute

// maxResponse bounds how much of a response body is read.
const maxResponse = 1 << 20

// Latencies are recorded in microseconds, from 1µs to 10 minutes.
const (
	histMin    = 1
	histMax    = int64(10 * time.Minute / time.Microsecond)
	histDigits = 3
)

func newRunID() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on supported platforms; a time-based id
		// is still unique enough for a load test.
		return strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	return hex.EncodeToString(b[:])
}

// Run generates load as cfg describes until cfg.Duration has passed,
// cfg.MaxEvents were generated, or ctx is cancelled; then it lets requests in
// flight finish their retries for up to cfg.Grace. It writes progress lines
// every cfg.ReportInterval and a final summary to out (nil discards them).
//
// The error is non-nil when cfg is invalid (with a zero Summary), when the
// ack log could not be written, or when the run was not clean: then it wraps
// ErrRejected and/or ErrUnacknowledged and the Summary says what happened.
func Run(ctx context.Context, cfg Config, out io.Writer) (Summary, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Summary{}, err
	}
	if out == nil {
		out = io.Discard
	}
	r := newRunner(cfg)
	sum, ackErr := r.run(ctx, out)
	sum.Print(out)
	return sum, errors.Join(sum.Err(), ackErr)
}

// runner is the state of one run.
type runner struct {
	cfg    Config
	log    *slog.Logger
	gen    *generator
	client *http.Client
	urls   [2]string
	lim    *rate.Limiter // nil when unlimited

	// genCtx ends generation of new batches; reqCtx ends requests, later.
	genCtx    context.Context
	stopGen   context.CancelCauseFunc
	reqCtx    context.Context
	stopReqs  context.CancelFunc
	stopping  atomic.Bool
	start     time.Time
	allocMu   sync.Mutex
	nextBatch uint64
	allocated int64
	nextSeq   [2]int64
	workers   atomic.Int64 // numbers workers, for MQTT client ids
	topics    [2][]string  // MQTT: each device's and service's topic

	st stats
}

// stats are the run's counters. Atomics keep the hot path lock-free; the
// mutex guards only what is touched once per request.
type stats struct {
	sent      [2]atomic.Int64
	acked     [2]atomic.Int64
	rejected  atomic.Int64
	failed    atomic.Int64
	abandoned atomic.Int64
	anomalies atomic.Int64
	anomalous atomic.Int64 // events in anomalous responses
	requests  atomic.Int64
	retries   atomic.Int64
	errors    atomic.Int64

	mu       sync.Mutex
	causes   map[string]int64
	samples  []string
	interval *hdrhistogram.Histogram
	total    *hdrhistogram.Histogram

	ackMu  sync.Mutex
	ackLog *bufio.Writer
	ackErr error
}

func newRunner(cfg Config) *runner {
	r := &runner{cfg: cfg, log: cfg.Logger}
	base := strings.TrimRight(cfg.URL, "/")
	for i, s := range Streams {
		r.urls[i] = base + "/v1/streams/" + s + "/events"
	}
	if cfg.Rate > 0 {
		// Enough burst to absorb timer jitter across workers (50ms of
		// events) but never less than one batch, or WaitN would fail.
		burst := max(cfg.BatchSize, int(math.Min(cfg.Rate/20, 1<<30)))
		r.lim = rate.NewLimiter(rate.Limit(cfg.Rate), burst)
	}
	r.client = cfg.HTTPClient
	if r.client == nil {
		r.client = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        2 * cfg.Concurrency,
			MaxIdleConnsPerHost: 2 * cfg.Concurrency,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		}}
	}
	r.st.causes = map[string]int64{}
	r.st.interval = hdrhistogram.New(histMin, histMax, histDigits)
	r.st.total = hdrhistogram.New(histMin, histMax, histDigits)
	if cfg.AckLog != nil {
		r.st.ackLog = bufio.NewWriterSize(cfg.AckLog, 256<<10)
	}
	return r
}

func (r *runner) run(ctx context.Context, out io.Writer) (Summary, error) {
	r.start = time.Now()
	r.gen = newGenerator(r.cfg.RunID, r.cfg.Devices, r.cfg.Services, r.start)
	if r.cfg.Protocol == ProtocolMQTT {
		r.topics = mqttTopics(r.gen)
	}

	var cancelDur context.CancelFunc = func() {}
	genCtx := ctx
	if r.cfg.Duration > 0 {
		genCtx, cancelDur = context.WithTimeout(ctx, r.cfg.Duration)
	}
	defer cancelDur()
	r.genCtx, r.stopGen = context.WithCancelCause(genCtx)
	defer r.stopGen(nil)
	// Requests outlive ctx: a cancelled run still owes its in-flight
	// events their retries, for up to the grace period.
	r.reqCtx, r.stopReqs = context.WithCancel(context.WithoutCancel(ctx))
	defer r.stopReqs()

	r.log.Info("loadgen starting", "run_id", r.cfg.RunID, "protocol", r.cfg.Protocol, "target", r.cfg.target(),
		"rate", r.cfg.Rate, "concurrency", r.cfg.Concurrency, "batch_size", r.cfg.BatchSize,
		"duration", r.cfg.Duration, "events", r.cfg.MaxEvents)

	workersDone := make(chan struct{})
	var wg sync.WaitGroup
	for range r.cfg.Concurrency {
		wg.Go(r.worker)
	}
	go func() { wg.Wait(); close(workersDone) }()
	go r.watchShutdown(workersDone)

	reportDone := make(chan struct{})
	var reporter sync.WaitGroup
	if r.cfg.ReportInterval > 0 {
		reporter.Go(func() { r.report(out, reportDone) })
	}

	<-workersDone
	close(reportDone)
	reporter.Wait()
	elapsed := time.Since(r.start)
	if t, ok := r.client.Transport.(interface{ CloseIdleConnections() }); ok && r.cfg.HTTPClient == nil {
		t.CloseIdleConnections()
	}

	var ackErr error
	if r.st.ackLog != nil {
		r.st.ackMu.Lock()
		if err := r.st.ackLog.Flush(); err != nil && r.st.ackErr == nil {
			r.st.ackErr = err
		}
		if r.st.ackErr != nil {
			ackErr = fmt.Errorf("write ack log: %w", r.st.ackErr)
		}
		r.st.ackMu.Unlock()
	}
	return r.summary(elapsed), ackErr
}

// watchShutdown starts the grace period once generation stops, and ends
// requests when it runs out or Abort is closed.
func (r *runner) watchShutdown(workersDone <-chan struct{}) {
	select {
	case <-workersDone:
		return
	case <-r.cfg.Abort:
		r.stopGen(errors.New("aborted"))
		r.stopReqs()
		return
	case <-r.genCtx.Done():
	}
	r.stopping.Store(true)
	r.log.Info("loadgen stopping: no new events; waiting for requests in flight",
		"grace", r.cfg.Grace, "cause", context.Cause(r.genCtx))
	grace := time.NewTimer(r.cfg.Grace)
	defer grace.Stop()
	select {
	case <-workersDone:
	case <-grace.C:
		r.log.Warn("loadgen grace period over: abandoning requests still in flight")
		r.stopReqs()
	case <-r.cfg.Abort:
		r.log.Warn("loadgen aborted: abandoning requests still in flight")
		r.stopReqs()
	}
}

// alloc reserves the next batch. Batches are numbered, and a batch's stream
// and sequence numbers depend only on its number, so a run's event_ids are
// the same whatever the timing of the workers.
func (r *runner) alloc() (batch, bool) {
	r.allocMu.Lock()
	defer r.allocMu.Unlock()
	n := r.cfg.BatchSize
	if r.cfg.MaxEvents > 0 {
		left := r.cfg.MaxEvents - r.allocated
		if left <= 0 {
			return batch{}, false
		}
		n = int(min(int64(n), left))
	}
	k := r.nextBatch
	r.nextBatch++
	// Batch k is iot when the running quota floor((k+1)*mix) steps up, which
	// spreads the two streams evenly and hits the mix exactly.
	stream := logsIdx
	if math.Floor(float64(k+1)*r.cfg.Mix) > math.Floor(float64(k)*r.cfg.Mix) {
		stream = iotIdx
	}
	b := batch{index: k, stream: stream, first: r.nextSeq[stream] + 1, n: n}
	r.nextSeq[stream] += int64(n)
	r.allocated += int64(n)
	return b, true
}

// next waits for the rate limiter and reserves the next batch; false means
// generation is over.
func (r *runner) next() (batch, bool) {
	if r.genCtx.Err() != nil {
		return batch{}, false
	}
	if r.lim != nil {
		if err := r.lim.WaitN(r.genCtx, r.cfg.BatchSize); err != nil {
			return batch{}, false // stopping, or the wait would outlast Duration
		}
	}
	b, ok := r.alloc()
	if !ok {
		r.stopGen(errors.New("event limit reached"))
	}
	return b, ok
}

// newWorker returns a worker's buffers, its RNG seeded per batch.
func newWorker() *worker {
	w := &worker{pcg: mrand.NewPCG(0, 0)}
	w.rng = mrand.New(w.pcg)
	return w
}

// worker is one client: it builds a batch, delivers it (retrying as long
// as it takes), and only then builds the next. HTTP is done here; MQTT
// and syslog in mqtt.go and syslog.go.
func (r *runner) worker() {
	switch r.cfg.Protocol {
	case ProtocolMQTT:
		r.mqttWorker()
		return
	case ProtocolSyslog:
		r.syslogWorker()
		return
	}
	w := newWorker()
	if r.cfg.Gzip {
		w.gz, _ = gzip.NewWriterLevel(io.Discard, gzip.BestSpeed) // level is valid
	}
	seed := fnvString(r.cfg.RunID)
	for {
		b, ok := r.next()
		if !ok {
			return
		}
		w.pcg.Seed(seed, b.index)
		w.body = r.gen.appendBatch(w.body[:0], b, w.rng, time.Now(), r.cfg.NDJSON)
		body := w.body
		if w.gz != nil {
			w.zbuf.Reset()
			w.gz.Reset(&w.zbuf)
			w.gz.Write(w.body) // writes to a bytes.Buffer cannot fail
			w.gz.Close()
			body = w.zbuf.Bytes()
		}
		r.st.sent[b.stream].Add(int64(b.n))
		r.deliver(w, b, func() (outcome, time.Duration) { return r.attempt(w, b, body) })
	}
}

// worker holds one client's reusable buffers.
type worker struct {
	pcg      *mrand.PCG
	rng      *mrand.Rand
	body     []byte
	zbuf     bytes.Buffer
	gz       *gzip.Writer
	resp     bytes.Buffer
	rejected []bool
	line     []byte
	frame    []byte // syslog: one message before its length prefix
}

// outcome is what one attempt led to.
type outcome int

const (
	done    outcome = iota // acknowledged, rejected or refused: final
	retry                  // worth trying again
	aborted                // the run is over
)

// deliver makes attempts until the collector gives a final answer or the
// run's requests are cut off. Every attempt carries the same bytes, hence
// the same event_ids, which is what makes retrying safe.
func (r *runner) deliver(w *worker, b batch, try func() (outcome, time.Duration)) {
	backoff := r.cfg.MinBackoff
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			r.st.retries.Add(1)
		}
		res, retryAfter := try()
		switch res {
		case done:
			return
		case aborted:
			r.st.abandoned.Add(int64(b.n))
			return
		}
		wait := retryAfter
		if wait <= 0 {
			// Full jitter keeps clients that failed together from
			// retrying together.
			wait = backoff/2 + time.Duration(w.rng.Int64N(int64(backoff/2)+1))
		} else {
			wait += time.Duration(w.rng.Int64N(int64(wait/10) + 1))
		}
		backoff = min(2*backoff, r.cfg.MaxBackoff)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-r.reqCtx.Done():
			t.Stop()
			r.st.abandoned.Add(int64(b.n))
			return
		}
	}
}

// ackResponse is the collector's answer to a POST of events.
type ackResponse struct {
	Accepted *int64 `json:"accepted"`
	Rejected *int64 `json:"rejected"`
	Errors   []struct {
		Index int    `json:"index"`
		Error string `json:"error"`
	} `json:"errors"`
}

// attempt makes one HTTP request and accounts for its result. For a retry it
// also returns the collector's Retry-After, if any.
func (r *runner) attempt(w *worker, b batch, body []byte) (outcome, time.Duration) {
	if r.reqCtx.Err() != nil {
		return aborted, 0
	}
	ctx, cancel := context.WithTimeout(r.reqCtx, r.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.urls[b.stream], bytes.NewReader(body))
	if err != nil {
		// The URL was validated up front, so this is a programming error;
		// retrying would loop forever.
		r.fail(b, "request", fmt.Sprintf("build request: %v", err))
		return done, 0
	}
	r.setHeaders(req.Header)

	r.st.requests.Add(1)
	start := time.Now()
	resp, err := r.client.Do(req)
	if err == nil {
		w.resp.Reset()
		_, err = w.resp.ReadFrom(io.LimitReader(resp.Body, maxResponse))
		// Drain what is left so the connection can be reused.
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
		resp.Body.Close()
	}
	lat := time.Since(start)
	if err != nil {
		if r.reqCtx.Err() != nil {
			return aborted, 0
		}
		cause := "connection"
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			cause = "timeout"
		}
		r.attemptFailed(cause)
		return retry, 0
	}

	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		r.recordLatency(lat)
		r.acknowledged(w, b, code)
		return done, 0
	case code == http.StatusTooManyRequests, code == http.StatusRequestTimeout, code >= 500:
		r.attemptFailed(strconv.Itoa(code))
		return retry, parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	case code == http.StatusBadRequest:
		// Nothing in the body was valid: the same JSON as a 202, all rejected.
		r.attemptFailed(strconv.Itoa(code))
		var ar ackResponse
		if json.Unmarshal(w.resp.Bytes(), &ar) == nil && ar.Rejected != nil && *ar.Rejected == int64(b.n) {
			r.st.rejected.Add(int64(b.n))
			r.sample(fmt.Sprintf("%s: 400: %s", r.batchName(b), trim(w.resp.Bytes())))
			r.logRejections(b, ar)
			return done, 0
		}
		r.fail(b, strconv.Itoa(code), trim(w.resp.Bytes()))
		return done, 0
	default:
		r.attemptFailed(strconv.Itoa(code))
		r.fail(b, strconv.Itoa(code), trim(w.resp.Bytes()))
		switch code {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
			// Wrong token, stream or URL: every further request would
			// fail the same way, so stop generating.
			r.stopGen(fmt.Errorf("collector answered %d", code))
		}
		return done, 0
	}
}

// acknowledged accounts for a 2xx answer: the events the collector accepted
// are acknowledged and go to the ack log, the ones it rejected are counted.
func (r *runner) acknowledged(w *worker, b batch, code int) {
	var ar ackResponse
	if err := json.Unmarshal(w.resp.Bytes(), &ar); err != nil || ar.Accepted == nil {
		r.anomaly(b, fmt.Sprintf("%d with unreadable body: %s", code, trim(w.resp.Bytes())))
		return
	}
	accepted, rejected := *ar.Accepted, int64(0)
	if ar.Rejected != nil {
		rejected = *ar.Rejected
	}
	if accepted < 0 || rejected < 0 || accepted+rejected != int64(b.n) {
		r.anomaly(b, fmt.Sprintf("%d: accepted %d + rejected %d != %d events sent", code, accepted, rejected, b.n))
		return
	}
	// Which events were rejected must be known exactly, or the ack log
	// would list events that were not acknowledged.
	if cap(w.rejected) < b.n {
		w.rejected = make([]bool, b.n)
	}
	w.rejected = w.rejected[:b.n]
	clear(w.rejected)
	var distinct int64
	for _, e := range ar.Errors {
		if e.Index >= 0 && e.Index < b.n && !w.rejected[e.Index] {
			w.rejected[e.Index] = true
			distinct++
		}
	}
	if distinct != rejected {
		r.anomaly(b, fmt.Sprintf("%d: rejected %d but errors name %d distinct events", code, rejected, distinct))
		return
	}
	if rejected > 0 {
		r.st.rejected.Add(rejected)
		r.logRejections(b, ar)
	}
	r.writeAcks(w, b)
	r.st.acked[b.stream].Add(accepted)
}

func (r *runner) writeAcks(w *worker, b batch) {
	if r.st.ackLog == nil {
		return
	}
	stream := Streams[b.stream]
	line := w.line[:0]
	for i := range b.n {
		if w.rejected[i] {
			continue
		}
		line = append(line, stream...)
		line = append(line, '\t')
		line = appendEventID(line, r.cfg.RunID, stream, b.first+int64(i))
		line = append(line, '\n')
	}
	w.line = line
	r.st.ackMu.Lock()
	defer r.st.ackMu.Unlock()
	if _, err := r.st.ackLog.Write(line); err != nil && r.st.ackErr == nil {
		r.st.ackErr = err
		r.log.Error("loadgen cannot write ack log", "err", err)
	}
}

// logRejections reports rejected events: loadgen only generates valid
// events, so each one points at a bug in loadgen or the collector.
func (r *runner) logRejections(b batch, ar ackResponse) {
	for _, e := range ar.Errors {
		if e.Index < 0 || e.Index >= b.n {
			continue
		}
		id := EventID(r.cfg.RunID, Streams[b.stream], b.first+int64(e.Index))
		if r.sample(fmt.Sprintf("rejected %s: %s", id, e.Error)) {
			r.log.Error("collector rejected a loadgen event (a bug on one side)", "event_id", id, "error", e.Error)
		}
	}
}

func (r *runner) anomaly(b batch, msg string) {
	r.st.anomalies.Add(1)
	r.st.anomalous.Add(int64(b.n))
	msg = r.batchName(b) + ": " + msg
	if r.sample(msg) {
		r.log.Error("collector response does not add up; counting its events as unacknowledged", "detail", msg)
	}
}

// fail accounts for a request refused for good.
func (r *runner) fail(b batch, cause, body string) {
	r.st.failed.Add(int64(b.n))
	msg := fmt.Sprintf("%s: %s: %s", r.batchName(b), cause, body)
	if r.sample(msg) {
		r.log.Warn("collector refused a request; not retrying", "detail", msg)
	}
}

func (r *runner) batchName(b batch) string {
	s := Streams[b.stream]
	return fmt.Sprintf("%s %s..%d", s, EventID(r.cfg.RunID, s, b.first), b.first+int64(b.n)-1)
}

// setHeaders sets a request's headers as the configuration says: the body's
// framing and encoding, the token, and who sends it.
func (r *runner) setHeaders(h http.Header) {
	if r.cfg.NDJSON {
		h.Set("Content-Type", "application/x-ndjson")
	} else {
		h.Set("Content-Type", "application/json")
	}
	if r.cfg.Gzip {
		h.Set("Content-Encoding", "gzip")
	}
	if r.cfg.Token != "" {
		h.Set("Authorization", "Bearer "+r.cfg.Token)
	}
	h.Set("User-Agent", "sluice-loadgen")
}

func (r *runner) attemptFailed(cause string) {
	r.st.errors.Add(1)
	r.st.mu.Lock()
	r.st.causes[cause]++
	r.st.mu.Unlock()
}

// sample keeps msg if fewer than maxSamples are kept, and says whether it did.
func (r *runner) sample(msg string) bool {
	r.st.mu.Lock()
	defer r.st.mu.Unlock()
	if len(r.st.samples) >= maxSamples {
		return false
	}
	r.st.samples = append(r.st.samples, msg)
	return true
}

func (r *runner) recordLatency(d time.Duration) {
	us := min(max(d.Microseconds(), histMin), histMax)
	r.st.mu.Lock()
	r.st.interval.RecordValue(us) // in range by construction
	r.st.total.RecordValue(us)
	r.st.mu.Unlock()
}

// report writes a progress line every interval until done is closed.
func (r *runner) report(out io.Writer, done <-chan struct{}) {
	t := time.NewTicker(r.cfg.ReportInterval)
	defer t.Stop()
	prevAcked, prevAt := int64(0), r.start
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			var sent, acked int64
			for i := range Streams {
				sent += r.st.sent[i].Load()
				acked += r.st.acked[i].Load()
			}
			r.st.mu.Lock()
			p50 := time.Duration(r.st.interval.ValueAtQuantile(50)) * time.Microsecond
			p99 := time.Duration(r.st.interval.ValueAtQuantile(99)) * time.Microsecond
			r.st.interval.Reset()
			r.st.mu.Unlock()
			evs := float64(acked-prevAcked) / now.Sub(prevAt).Seconds()
			prevAcked, prevAt = acked, now
			var state string
			if r.stopping.Load() {
				state = " stopping"
			}
			fmt.Fprintf(out, "t=%ss sent=%d acked=%d rate=%.0f ev/s p50=%s p99=%s retries=%d errors=%d%s\n",
				strconv.FormatFloat(now.Sub(r.start).Round(100*time.Millisecond).Seconds(), 'f', -1, 64), sent, acked, evs, fmtDur(p50), fmtDur(p99),
				r.st.retries.Load(), r.st.errors.Load(), state)
			// Flushing here bounds what a crash loses from the ack log.
			r.st.ackMu.Lock()
			if r.st.ackLog != nil {
				if err := r.st.ackLog.Flush(); err != nil && r.st.ackErr == nil {
					r.st.ackErr = err
				}
			}
			r.st.ackMu.Unlock()
		}
	}
}

func (r *runner) summary(elapsed time.Duration) Summary {
	s := Summary{
		RunID:     r.cfg.RunID,
		Elapsed:   elapsed,
		Sent:      map[string]int64{},
		Acked:     map[string]int64{},
		Rejected:  r.st.rejected.Load(),
		Failed:    r.st.failed.Load(),
		Abandoned: r.st.abandoned.Load(),
		Anomalies: r.st.anomalies.Load(),
		Requests:  r.st.requests.Load(),
		Retries:   r.st.retries.Load(),
		Errors:    r.st.errors.Load(),
	}
	for i, name := range Streams {
		s.Sent[name] = r.st.sent[i].Load()
		s.Acked[name] = r.st.acked[i].Load()
		s.SentTotal += s.Sent[name]
		s.AckedTotal += s.Acked[name]
	}
	s.Unacked = s.SentTotal - s.AckedTotal - s.Rejected
	if elapsed > 0 {
		s.EventsPerSecond = float64(s.AckedTotal) / elapsed.Seconds()
	}
	r.st.mu.Lock()
	defer r.st.mu.Unlock()
	if len(r.st.causes) > 0 {
		s.ErrorsByCause = make(map[string]int64, len(r.st.causes))
		for k, v := range r.st.causes {
			s.ErrorsByCause[k] = v
		}
	}
	s.ErrorSamples = append([]string(nil), r.st.samples...)
	h := r.st.total
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	s.Latency = Latency{
		Count: h.TotalCount(),
		P50:   us(h.ValueAtQuantile(50)),
		P90:   us(h.ValueAtQuantile(90)),
		P99:   us(h.ValueAtQuantile(99)),
		Max:   us(h.Max()),
		Mean:  time.Duration(h.Mean() * float64(time.Microsecond)),
	}
	return s
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
// It returns 0 when there is none or it cannot be read.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs <= 0 || math.IsNaN(secs) {
			return 0
		}
		d = time.Duration(math.Min(secs, maxRetryAfter.Seconds()) * float64(time.Second))
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

// trim shortens a response body for logs.
func trim(b []byte) string {
	const limit = 512
	s := strings.TrimSpace(string(b[:min(len(b), limit)]))
	if len(b) > limit {
		s += "…"
	}
	if s == "" {
		s = "(empty body)"
	}
	return s
}

// fnvString hashes s with 64-bit FNV-1a.
func fnvString(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}
