package httpapi

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sluicehq/sluice/backpressure"
	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/internal/testkit"
)

// testConfig is a gate's and an HTTP collector's settings together, so that
// a test can change either.
type testConfig struct {
	ingest.GateConfig
	http CollectorConfig
	// reg receives the gate's and the collector's metrics; newTestCollector
	// makes one when a test does not.
	reg *prometheus.Registry
}

func newTestCollector(t testing.TB, p ingest.Producer, mod func(*testConfig)) *Collector {
	t.Helper()
	cfg := testConfig{GateConfig: ingest.GateConfig{Registry: testkit.Registry(t), Producer: p, Logger: testkit.QuietLogger()}}
	cfg.http.Logger = testkit.QuietLogger()
	if mod != nil {
		mod(&cfg)
	}
	if cfg.reg == nil {
		cfg.reg = prometheus.NewRegistry()
	}
	reg := cfg.reg
	cfg.GateConfig.Registerer = reg
	g, err := ingest.NewGate(cfg.GateConfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.http.Gate, cfg.http.Registerer = g, reg
	c, err := NewCollector(cfg.http)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const (
	goodIoT  = `{"device_id":"sensor-1","ts":"2026-11-24T10:00:00.123Z","metrics":{"temperature":21.5}}`
	goodIoT2 = `{"device_id":"sensor-2","ts":1795514400123,"metrics":{"humidity":40},"tags":{"site":"plant-a"}}`
	goodLog  = `{"ts":"2026-11-24T10:00:00Z","service":"checkout","level":"error","message":"payment declined"}`
)

func gz(t testing.TB, s string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := io.WriteString(zw, s); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// gzipBomb compresses n bytes of whitespace inside an array: tiny on the
// wire, far over the limit once inflated.
func gzipBomb(t testing.TB, n int) string {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write([]byte("["))
	chunk := bytes.Repeat([]byte(" "), 1<<20)
	for written := 0; written < n; written += len(chunk) {
		_, _ = zw.Write(chunk)
	}
	_, _ = zw.Write([]byte("]"))
	_ = zw.Close()
	return buf.String()
}

func TestCollectorEvents(t *testing.T) {
	type want struct {
		status   int
		accepted int
		rejected int
		errors   []indexError // exact list, when not nil
		omitted  int
		errorMsg string // substring of ErrorResponse.Error for non-batch answers
		produced int
	}
	tests := []struct {
		name    string
		stream  string
		headers map[string]string
		body    string
		mod     func(*testConfig)
		want    want
	}{
		{name: "one object", stream: "iot_telemetry", body: goodIoT,
			want: want{status: 202, accepted: 1, errors: []indexError{}, produced: 1}},
		{name: "array of objects", stream: "iot_telemetry", body: "[" + goodIoT + "," + goodIoT2 + "]",
			want: want{status: 202, accepted: 2, errors: []indexError{}, produced: 2}},
		{name: "app_logs object", stream: "app_logs", body: goodLog,
			want: want{status: 202, accepted: 1, errors: []indexError{}, produced: 1}},
		{name: "concatenated objects", stream: "iot_telemetry", body: goodIoT + "\n" + goodIoT2 + "\n",
			want: want{status: 202, accepted: 2, errors: []indexError{}, produced: 2}},
		{name: "mixed array reports the bad one by index", stream: "iot_telemetry",
			body: "[" + goodIoT + `,{"ts":"2026-11-24T10:00:00Z","metrics":{"t":1}},` + goodIoT2 + "]",
			want: want{status: 202, accepted: 2, rejected: 1,
				errors: []indexError{{1, "device_id: required"}}, produced: 2}},
		{name: "missing required field", stream: "iot_telemetry", body: `{"ts":"2026-11-24T10:00:00Z","metrics":{"t":1}}`,
			want: want{status: 400, rejected: 1, errors: []indexError{{0, "device_id: required"}}}},
		{name: "wrong type", stream: "iot_telemetry", body: `{"device_id":42,"ts":"2026-11-24T10:00:00Z","metrics":{"t":1}}`,
			want: want{status: 400, rejected: 1, errors: []indexError{{0, "device_id: must be a string, got number"}}}},
		{name: "bad ts", stream: "iot_telemetry", body: `{"device_id":"d","ts":"yesterday","metrics":{"t":1}}`,
			want: want{status: 400, rejected: 1, errors: []indexError{{0, "ts: not RFC 3339 or epoch ms"}}}},
		{name: "several problems in one event", stream: "iot_telemetry", body: `{"ts":"yesterday","metrics":{}}`,
			want: want{status: 400, rejected: 1, errors: []indexError{
				{0, "device_id: required"}, {0, "ts: not RFC 3339 or epoch ms"}, {0, "metrics: must have at least one entry"}}}},
		{name: "bad log level", stream: "app_logs",
			body: `{"ts":"2026-11-24T10:00:00Z","service":"s","level":"verbose","message":"m"}`,
			want: want{status: 400, rejected: 1, errors: []indexError{
				{0, `level: "verbose" is not one of trace, debug, info, warn, error, fatal`}}}},
		{name: "received_at from a producer", stream: "iot_telemetry",
			body: `{"device_id":"d","ts":"2026-11-24T10:00:00Z","metrics":{"t":1},"received_at":"2026-11-24T10:00:00Z"}`,
			want: want{status: 400, rejected: 1, errors: []indexError{{0, "received_at: set by Sluice, not by producers"}}}},
		{name: "number out of range", stream: "iot_telemetry",
			body: "[" + goodIoT + `,{"device_id":"d","ts":"2026-11-24T10:00:00Z","metrics":{"t":1e400}}]`,
			want: want{status: 202, accepted: 1, rejected: 1, errors: []indexError{{1, "metrics: t: number 1e400 out of range"}}, produced: 1}},
		{name: "malformed JSON object", stream: "iot_telemetry", body: `{"device_id" "x"}`,
			want: want{status: 400, rejected: 1, errors: []indexError{
				{0, `invalid JSON near byte 14: invalid character '"' after object key`}}}},
		{name: "truncated JSON", stream: "iot_telemetry", body: `{"device_id":`,
			want: want{status: 400, rejected: 1, errors: []indexError{{0, "invalid JSON: unexpected end of input"}}}},
		{name: "malformed array rejects the whole body", stream: "iot_telemetry",
			body: "[" + goodIoT + "," + goodIoT2 + " {",
			want: want{status: 400, rejected: 3, errors: []indexError{
				{2, fmt.Sprintf("invalid JSON near byte %d: expected comma after array element", len(goodIoT+goodIoT2)+3)}}}},
		{name: "unterminated array", stream: "iot_telemetry", body: "[" + goodIoT,
			want: want{status: 400, rejected: 2, errors: []indexError{{1, "invalid JSON: unexpected end of input"}}}},
		{name: "data after the array", stream: "iot_telemetry", body: "[" + goodIoT + "] x",
			want: want{status: 400, rejected: 2, errors: []indexError{
				{1, "invalid JSON near byte 91: invalid character 'x' looking for beginning of value"}}}},
		{name: "array with a non-object", stream: "iot_telemetry", body: "[" + goodIoT + `, 7, "s", null, []]`,
			want: want{status: 202, accepted: 1, rejected: 4, errors: []indexError{
				{1, "not a JSON object (got number)"}, {2, "not a JSON object (got string)"},
				{3, "not a JSON object (got null)"}, {4, "not a JSON object (got array)"}}, produced: 1}},
		{name: "top-level scalar", stream: "iot_telemetry", body: `42`,
			want: want{status: 400, rejected: 1, errors: []indexError{{0, "not a JSON object (got number)"}}}},
		{name: "empty body", stream: "iot_telemetry", body: "",
			want: want{status: 400, errors: []indexError{{0, "empty body: expected a JSON object, an array of objects, or NDJSON"}}}},
		{name: "empty array", stream: "iot_telemetry", body: " [ ] ",
			want: want{status: 400, errors: []indexError{{0, "empty array: no events"}}}},
		{name: "NDJSON mixed good and bad lines", stream: "iot_telemetry",
			headers: map[string]string{"Content-Type": "application/x-ndjson"},
			body:    goodIoT + "\n\n" + `{"device_id":"d","ts":"x","metrics":{"t":1}}` + "\r\n   \n" + `{"device_id":` + "\n" + `[1]` + "\n" + goodIoT2,
			want: want{status: 202, accepted: 2, rejected: 3, errors: []indexError{
				{1, "ts: not RFC 3339 or epoch ms"},
				{2, "invalid JSON: unexpected end of input"},
				{3, "not a JSON object (got array)"}}, produced: 2}},
		{name: "NDJSON with charset and syntax error", stream: "iot_telemetry",
			headers: map[string]string{"Content-Type": "application/x-ndjson; charset=utf-8"},
			body:    `{"device_id" 1}` + "\n" + goodIoT,
			want: want{status: 202, accepted: 1, rejected: 1, errors: []indexError{
				{0, "invalid JSON near byte 14: invalid character '1' after object key"}}, produced: 1}},
		{name: "NDJSON all blank", stream: "iot_telemetry",
			headers: map[string]string{"Content-Type": "application/x-ndjson"}, body: "\n\n  \n",
			want: want{status: 400, errors: []indexError{{0, "empty body: no NDJSON lines"}}}},
		{name: "gzip body", stream: "iot_telemetry", headers: map[string]string{"Content-Encoding": "gzip"},
			body: gz(t, "["+goodIoT+","+goodIoT2+"]"),
			want: want{status: 202, accepted: 2, errors: []indexError{}, produced: 2}},
		{name: "gzip NDJSON", stream: "iot_telemetry",
			headers: map[string]string{"Content-Encoding": "gzip", "Content-Type": "application/x-ndjson"},
			body:    gz(t, goodIoT+"\n"+goodIoT2+"\n"),
			want:    want{status: 202, accepted: 2, errors: []indexError{}, produced: 2}},
		{name: "not gzip", stream: "iot_telemetry", headers: map[string]string{"Content-Encoding": "gzip"}, body: goodIoT,
			want: want{status: 400, errorMsg: "invalid gzip body: gzip: invalid header"}},
		{name: "truncated gzip", stream: "iot_telemetry", headers: map[string]string{"Content-Encoding": "gzip"},
			body: gz(t, "["+goodIoT+"]")[:30],
			want: want{status: 400, errorMsg: "invalid gzip body: unexpected EOF"}},
		{name: "gzip bomb", stream: "iot_telemetry", headers: map[string]string{"Content-Encoding": "gzip"},
			body: gzipBomb(t, 16<<20),
			want: want{status: 413, errorMsg: "body larger than 8388608 bytes"}},
		{name: "unsupported encoding", stream: "iot_telemetry", headers: map[string]string{"Content-Encoding": "br"}, body: goodIoT,
			want: want{status: 415, errorMsg: `unsupported Content-Encoding "br"`}},
		{name: "body over the limit", stream: "iot_telemetry", body: "[" + goodIoT + "," + goodIoT2 + "]",
			mod:  func(c *testConfig) { c.http.MaxBodyBytes = 100 },
			want: want{status: 413, errorMsg: "body larger than 100 bytes"}},
		{name: "body over the limit without length", stream: "iot_telemetry",
			headers: map[string]string{"X-Test-Chunked": "1"}, body: "[" + goodIoT + "," + goodIoT2 + "]",
			mod:  func(c *testConfig) { c.http.MaxBodyBytes = 100 },
			want: want{status: 413, errorMsg: "body larger than 100 bytes"}},
		{name: "body exactly at the limit", stream: "iot_telemetry", body: goodIoT,
			mod:  func(c *testConfig) { c.http.MaxBodyBytes = int64(len(goodIoT)) },
			want: want{status: 202, accepted: 1, errors: []indexError{}, produced: 1}},
		{name: "too many events", stream: "iot_telemetry", body: "[" + goodIoT + "," + goodIoT + "," + goodIoT + "]",
			mod:  func(c *testConfig) { c.MaxEvents = 2 },
			want: want{status: 413, errorMsg: "more than 2 events in one request"}},
		{name: "error list is capped", stream: "iot_telemetry", body: `[1,2,3,4,5]`,
			mod: func(c *testConfig) { c.MaxReportedErrors = 2 },
			want: want{status: 400, rejected: 5, omitted: 3, errors: []indexError{
				{0, "not a JSON object (got number)"}, {1, "not a JSON object (got number)"}}}},
		{name: "oversized event", stream: "iot_telemetry", body: goodIoT,
			mod:  func(c *testConfig) { c.MaxEventBytes = 50 },
			want: want{status: 400, rejected: 1, errors: []indexError{{0, "event: 186 bytes encoded, over the 50-byte limit"}}}},
		{name: "more events than admission capacity", stream: "iot_telemetry", body: "[" + goodIoT + "," + goodIoT2 + "]",
			mod: func(c *testConfig) {
				c.Admission = backpressure.NewAdmission(backpressure.AdmissionConfig{Capacity: 1})
			},
			want: want{status: 413, errorMsg: "2 valid events in one request, but at most 1 can be in flight"}},
		{name: "unknown stream", stream: "nope", body: goodIoT,
			want: want{status: 404, errorMsg: `unknown stream "nope"`}},
		{name: "token missing", stream: "iot_telemetry", body: goodIoT,
			mod:  func(c *testConfig) { c.http.Tokens = []string{"s3cret"} },
			want: want{status: 401, errorMsg: "missing or invalid bearer token"}},
		{name: "token wrong", stream: "iot_telemetry", body: goodIoT,
			headers: map[string]string{"Authorization": "Bearer s3cre"},
			mod:     func(c *testConfig) { c.http.Tokens = []string{"s3cret"} },
			want:    want{status: 401, errorMsg: "missing or invalid bearer token"}},
		{name: "token for unknown stream still 401", stream: "nope", body: goodIoT,
			mod:  func(c *testConfig) { c.http.Tokens = []string{"s3cret"} },
			want: want{status: 401, errorMsg: "missing or invalid bearer token"}},
		{name: "token right", stream: "iot_telemetry", body: goodIoT,
			headers: map[string]string{"Authorization": "bearer other"},
			mod:     func(c *testConfig) { c.http.Tokens = []string{"s3cret", "other"} },
			want:    want{status: 202, accepted: 1, errors: []indexError{}, produced: 1}},
		{name: "kafka fails", stream: "iot_telemetry", body: goodIoT,
			mod:  func(c *testConfig) { c.Producer = testkit.FailingProducer(errors.New("broker gone")) },
			want: want{status: 503, errorMsg: "kafka did not acknowledge the events: nothing in this request was accepted"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fp := &testkit.FakeProducer{}
			c := newTestCollector(t, fp, tt.mod)
			var body io.Reader = strings.NewReader(tt.body)
			if tt.headers["X-Test-Chunked"] != "" {
				body = io.MultiReader(body) // hides the length
			}
			req := httptest.NewRequest(http.MethodPost, "/v1/streams/"+tt.stream+"/events", body)
			if tt.headers["X-Test-Chunked"] != "" {
				req.ContentLength = -1
			}
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			c.ServeHTTP(rec, req)

			if rec.Code != tt.want.status {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.want.status, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if tt.want.status == 202 || tt.want.status == 400 && tt.want.errorMsg == "" {
				checkBatchResponse(t, rec.Body.Bytes(), tt.want.accepted, tt.want.rejected, tt.want.omitted, tt.want.errors)
			} else {
				var er ErrorResponse
				if err := json.Unmarshal(rec.Body.Bytes(), &er); err != nil {
					t.Fatalf("body %q: %v", rec.Body, err)
				}
				if !strings.Contains(er.Error, tt.want.errorMsg) {
					t.Errorf("error = %q, want it to contain %q", er.Error, tt.want.errorMsg)
				}
			}
			if got := len(fp.Produced()); got != tt.want.produced {
				t.Errorf("produced %d messages, want %d", got, tt.want.produced)
			}
			switch tt.want.status {
			case 401:
				if rec.Header().Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			case 429, 503:
				if rec.Header().Get("Retry-After") == "" {
					t.Errorf("%d without Retry-After", tt.want.status)
				}
			case 404:
				var er ErrorResponse
				_ = json.Unmarshal(rec.Body.Bytes(), &er)
				if strings.Join(er.Streams, ",") != "app_logs,iot_telemetry" {
					t.Errorf("streams = %v", er.Streams)
				}
			}
		})
	}
}

// indexError is ingest.IndexError in the tables, written {index, "error"}.
type indexError struct {
	Index int
	Error string
}

func checkBatchResponse(t *testing.T, body []byte, accepted, rejected, omitted int, wantErrs []indexError) {
	t.Helper()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	if string(raw["errors"]) == "null" || raw["errors"] == nil {
		t.Errorf("errors is %s, want an array", raw["errors"])
	}
	var resp ingest.Response
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Accepted != accepted || resp.Rejected != rejected || resp.ErrorsOmitted != omitted {
		t.Errorf("accepted/rejected/omitted = %d/%d/%d, want %d/%d/%d; body %s",
			resp.Accepted, resp.Rejected, resp.ErrorsOmitted, accepted, rejected, omitted, body)
	}
	if wantErrs != nil && fmt.Sprint(resp.Errors) != fmt.Sprint(wantErrs) {
		t.Errorf("errors =\n  %v\nwant\n  %v", resp.Errors, wantErrs)
	}
}

// The produced messages carry the envelope: the stream's topic, the
// partition key, the producer's event_id or an assigned UUIDv7, and
// received_at.
func TestCollectorMessages(t *testing.T) {
	fp := &testkit.FakeProducer{}
	c := newTestCollector(t, fp, func(cfg *testConfig) { cfg.TopicPrefix = "test." })
	body := `[{"event_id":"mine-1","device_id":"sensor-9","ts":1795514400123,"metrics":{"t":1.5}},` + goodIoT + "]"
	before := time.Now().UTC().Truncate(time.Millisecond)
	rec := httptest.NewRecorder()
	c.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/streams/iot_telemetry/events", strings.NewReader(body)))
	if rec.Code != 202 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	msgs := fp.Produced()
	if len(msgs) != 2 {
		t.Fatalf("%d messages", len(msgs))
	}
	st := testkit.Registry(t).Stream("iot_telemetry")
	for i, want := range []struct{ key, id string }{{"sensor-9", "mine-1"}, {"sensor-1", ""}} {
		m := msgs[i]
		if m.Topic != "test.iot_telemetry" || string(m.Key) != want.key {
			t.Errorf("msg %d: topic %q key %q", i, m.Topic, m.Key)
		}
		ev, err := st.Decode(m.Value)
		if err != nil {
			t.Fatalf("msg %d: Decode(%s): %v", i, m.Value, err)
		}
		if want.id != "" && ev.ID != want.id {
			t.Errorf("msg %d: event_id %q, want %q", i, ev.ID, want.id)
		}
		if want.id == "" {
			u, err := uuid.Parse(ev.ID)
			if err != nil || u.Version() != 7 {
				t.Errorf("msg %d: assigned event_id %q is not a UUIDv7", i, ev.ID)
			}
		}
		if ev.ReceivedAt.Before(before) || ev.ReceivedAt.After(time.Now()) || !m.Time.Equal(ev.ReceivedAt) {
			t.Errorf("msg %d: received_at %s, message time %s", i, ev.ReceivedAt, m.Time)
		}
	}
}

func TestCollectorAdmissionBusy(t *testing.T) {
	fp := &testkit.FakeProducer{Block: make(chan struct{})}
	c := newTestCollector(t, fp, func(cfg *testConfig) {
		cfg.Admission = backpressure.NewAdmission(backpressure.AdmissionConfig{
			Capacity: 2, MaxWait: 20 * time.Millisecond, RetryAfter: 3 * time.Second})
	})
	post := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/streams/iot_telemetry/events",
			strings.NewReader("["+goodIoT+","+goodIoT2+"]")))
		return rec
	}
	first := make(chan *httptest.ResponseRecorder)
	go func() { first <- post() }()
	deadline := time.Now().Add(5 * time.Second)
	for fp.Calls() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("first request never reached the producer")
		}
		time.Sleep(time.Millisecond)
	}
	rec := post()
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "3" {
		t.Errorf("second request: %d Retry-After %q, want 429 and 3; %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	close(fp.Block)
	if rec := <-first; rec.Code != http.StatusAccepted {
		t.Errorf("first request: %d %s", rec.Code, rec.Body)
	}
	if rec := post(); rec.Code != http.StatusAccepted {
		t.Errorf("after release: %d %s", rec.Code, rec.Body)
	}
}

// When Kafka keeps failing the breaker opens, and from then on requests are
// refused without reaching the producer.
func TestCollectorBreakerOpens(t *testing.T) {
	fp := testkit.FailingProducer(errors.New("broker gone"))
	br := backpressure.NewBreaker(backpressure.BreakerConfig{Failures: 3, OpenTimeout: time.Minute, Logger: testkit.QuietLogger()})
	c := newTestCollector(t, fp, func(cfg *testConfig) { cfg.Breaker = br })
	for i := range 5 {
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/streams/iot_telemetry/events", strings.NewReader(goodIoT)))
		if rec.Code != 503 || rec.Header().Get("Retry-After") == "" {
			t.Errorf("request %d: %d Retry-After %q", i, rec.Code, rec.Header().Get("Retry-After"))
		}
		if i >= 3 && !strings.Contains(rec.Body.String(), "circuit open") {
			t.Errorf("request %d: %s", i, rec.Body)
		}
	}
	if n := fp.Calls(); n != 3 {
		t.Errorf("producer called %d times, want 3", n)
	}
	if ra := br.RetryAfter(); ra < 50*time.Second {
		t.Errorf("RetryAfter = %s, want about a minute", ra)
	}
}

// streamShedder sheds one stream, as backlog.Watcher does one whose backlog
// nears Kafka's retention.
type streamShedder string

func (s streamShedder) Shed(stream string) (time.Duration, string, bool) {
	return 12 * time.Second, "partition 3 is 5m old", stream == string(s)
}

// A shed stream gets 503 with the shedder's Retry-After and a body that
// says why; nothing of it reaches Kafka, and other streams pass.
func TestCollectorShedsBacklog(t *testing.T) {
	fp := &testkit.FakeProducer{}
	c := newTestCollector(t, fp, func(cfg *testConfig) { cfg.Shedder = streamShedder("iot_telemetry") })
	rec := httptest.NewRecorder()
	c.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/streams/iot_telemetry/events", strings.NewReader(goodIoT)))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "12" {
		t.Errorf("shed stream: %d Retry-After %q, want 503 and 12", rec.Code, rec.Header().Get("Retry-After"))
	}
	if want := "the backlog of stream iot_telemetry is near what Kafka retains"; !strings.Contains(rec.Body.String(), want) {
		t.Errorf("body %s, want it to say %q", rec.Body, want)
	}
	if fp.Calls() != 0 {
		t.Errorf("%d produce calls for a shed stream", fp.Calls())
	}
	rec = httptest.NewRecorder()
	c.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/streams/app_logs/events", strings.NewReader(goodLog)))
	if rec.Code != http.StatusAccepted {
		t.Errorf("a stream not shed: %d %s", rec.Code, rec.Body)
	}
}

// The collector answers only event posts; ops serves the probes beside it.
func TestCollectorRoutes(t *testing.T) {
	tests := []struct {
		name, method, path string
		wantStatus         int
	}{
		{name: "wrong method", method: http.MethodGet, path: "/v1/streams/iot_telemetry/events", wantStatus: 405},
		{name: "unknown path", method: http.MethodGet, path: "/v2/things", wantStatus: 404},
		{name: "probes are not the collector's", method: http.MethodGet, path: "/readyz", wantStatus: 404},
	}
	c := newTestCollector(t, &testkit.FakeProducer{}, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			c.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			if rec.Code != tt.wantStatus {
				t.Errorf("%s %s = %d %s, want %d", tt.method, tt.path, rec.Code, rec.Body, tt.wantStatus)
			}
		})
	}
}

func TestCollectorMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := newTestCollector(t, &testkit.FakeProducer{}, func(cfg *testConfig) { cfg.reg = reg })
	for _, body := range []string{"[" + goodIoT + ",1]", "{"} {
		c.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/v1/streams/iot_telemetry/events", strings.NewReader(body)))
	}
	c.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/v1/streams/bogus/events", strings.NewReader(goodIoT)))
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, want := range []string{
		`sluice_ingest_events_total{result="accepted",source="http",stream="iot_telemetry"} 1`,
		`sluice_ingest_events_total{result="rejected",source="http",stream="iot_telemetry"} 2`,
		`sluice_ingest_requests_total{code="202",stream="iot_telemetry"} 1`,
		`sluice_ingest_requests_total{code="400",stream="iot_telemetry"} 1`,
		`sluice_ingest_requests_total{code="404",stream=""} 1`,
		`sluice_ingest_produce_duration_seconds_count{result="ok",source="http",stream="iot_telemetry"} 1`,
		`sluice_ingest_inflight_requests 0`,
		`sluice_ingest_inflight_events 0`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestNewCollectorConfigErrors(t *testing.T) {
	reg := testkit.Registry(t)
	gate, err := ingest.NewGate(ingest.GateConfig{Registry: reg, Producer: &testkit.FakeProducer{}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		new  func() error
		want string
	}{
		{name: "no registry", new: func() error {
			_, err := ingest.NewGate(ingest.GateConfig{Producer: &testkit.FakeProducer{}})
			return err
		}, want: "no stream registry"},
		{name: "no producer", new: func() error { _, err := ingest.NewGate(ingest.GateConfig{Registry: reg}); return err }, want: "no producer"},
		{name: "no gate", new: func() error { _, err := NewCollector(CollectorConfig{}); return err }, want: "no gate"},
		{name: "empty token", new: func() error {
			_, err := NewCollector(CollectorConfig{Gate: gate, Tokens: []string{"a", ""}})
			return err
		}, want: "token 1 is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.new()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// chunkReader returns at most n bytes per Read, like a network body.
type chunkReader struct {
	r io.Reader
	n int
}

func (c chunkReader) Read(p []byte) (int, error) {
	if len(p) > c.n {
		p = p[:c.n]
	}
	return c.r.Read(p)
}

// json.Decoder rescans buffered whitespace on every refill; fed in small
// chunks, a body of blanks costs it quadratic time (half a minute of CPU
// here for 8 MiB in 512-byte reads). fullReader makes it linear.
func TestCollectorWhitespaceFlood(t *testing.T) {
	blanks := strings.Repeat(" ", DefaultMaxBodyBytes-2)
	tests := []struct {
		name        string
		contentType string
		body        string
		wantStatus  int
	}{
		{name: "JSON array", body: "[" + blanks + "]", wantStatus: 400},
		{name: "before a value", body: blanks[2:] + goodIoT[:1] + goodIoT[1:], wantStatus: 202},
		{name: "NDJSON line", contentType: "application/x-ndjson", body: blanks, wantStatus: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCollector(t, &testkit.FakeProducer{}, nil)
			body := tt.body
			if len(body) > DefaultMaxBodyBytes {
				body = body[len(body)-DefaultMaxBodyBytes:]
			}
			req := httptest.NewRequest(http.MethodPost, "/v1/streams/iot_telemetry/events",
				chunkReader{r: strings.NewReader(body), n: 512})
			req.ContentLength = -1
			req.Header.Set("Content-Type", tt.contentType)
			rec := httptest.NewRecorder()
			start := time.Now()
			c.ServeHTTP(rec, req)
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("took %s", took)
			}
			if rec.Code != tt.wantStatus {
				t.Errorf("status %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
		})
	}
}

// Bodies being parsed are bounded: a request over the bound gets 429, and a
// request waiting for Kafka no longer holds a parsing slot.
func TestCollectorParsingBound(t *testing.T) {
	fp := &testkit.FakeProducer{Block: make(chan struct{})}
	c := newTestCollector(t, fp, func(cfg *testConfig) { cfg.http.MaxParsing = 1 })
	post := func(body io.Reader) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/streams/iot_telemetry/events", body))
		return rec
	}
	pr, pw := io.Pipe()
	slow := make(chan *httptest.ResponseRecorder)
	go func() { slow <- post(pr) }()
	// The slow body is being read: past the pre-read that comes before
	// the slot, so the parser holds the slot while it waits for the rest.
	if _, err := io.WriteString(pw, "["+goodIoT+strings.Repeat(" ", prereadBytes)); err != nil {
		t.Fatal(err)
	}
	// A body of unknown length (chunked) takes the large bodies' slots.
	chunked := func() io.Reader { return io.MultiReader(strings.NewReader(goodIoT2)) }
	if rec := post(chunked()); rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("while a body is parsed: %d Retry-After %q, want 429 with Retry-After; %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	// A small body of known length has slots of its own.
	small := make(chan *httptest.ResponseRecorder)
	go func() { small <- post(strings.NewReader(goodIoT2)) }()
	smallBy := time.Now().Add(5 * time.Second)
	for fp.Calls() == 0 { // the slow body still holds the large slot
		if time.Now().After(smallBy) {
			t.Fatal("a small body waited for the large bodies' slot")
		}
		time.Sleep(time.Millisecond)
	}
	io.WriteString(pw, "]")
	pw.Close()
	deadline := time.Now().Add(5 * time.Second)
	for fp.Calls() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the slow request and the small one never reached the producer")
		}
		time.Sleep(time.Millisecond)
	}
	// The slow request now waits for Kafka; its slot is free.
	third := make(chan *httptest.ResponseRecorder)
	go func() { third <- post(chunked()) }()
	for fp.Calls() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("a request waiting for Kafka still holds the parsing slot")
		}
		time.Sleep(time.Millisecond)
	}
	close(fp.Block)
	for _, ch := range []chan *httptest.ResponseRecorder{slow, small, third} {
		if rec := <-ch; rec.Code != http.StatusAccepted {
			t.Errorf("got %d %s, want 202", rec.Code, rec.Body)
		}
	}
}
