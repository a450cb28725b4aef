package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/internal/testkit"
)

// Each hostile body gets a short answer that names the field at fault, and
// reading it allocates a small, fixed amount: not a multiple of the body,
// which is what kept 16 such bodies at once from taking 2 GB.
func TestCollectorHostileBodies(t *testing.T) {
	const head = `{"device_id":"d","ts":1,"metrics":{"t":1}`
	mb := strings.Repeat("7", 1<<20)
	keys := testkit.UnknownKeys(700_000)
	million := "[" + strings.Repeat("{},", 999_999) + "{}]"
	tests := []struct {
		name   string
		body   string
		ndjson bool
		gzip   bool
		mod    func(*testConfig)
		status int
		want   string // in the first error listed, or in the error of a non-batch answer
		events int    // rejected events
	}{
		{name: "700,000 unknown keys", body: keys, status: 400, want: "0: unknown field", events: 1},
		{name: "700,000 unknown keys, gzip", body: keys, gzip: true, status: 400, want: "0: unknown field", events: 1},
		{name: "700,000 unknown keys, NDJSON", body: keys, ndjson: true, status: 400, want: "0: unknown field", events: 1},
		{name: "a million empty objects", body: million, status: 413, want: "more than 100000 events"},
		{name: "a million empty objects, all counted", body: million, mod: func(c *testConfig) { c.MaxEvents = 2_000_000 },
			status: 400, want: "device_id: required", events: 1_000_000},
		{name: "nesting 10,000 deep", body: head + `,"x":` + strings.Repeat("[", 9997) + strings.Repeat("]", 9997) + "}",
			status: 400, want: "x: unknown field", events: 1},
		{name: "nesting over 10,000 deep", body: strings.Repeat("[", 10_001) + strings.Repeat("]", 10_001),
			status: 400, want: "invalid JSON near byte 10001: exceeded max depth", events: 1},
		{name: "1 MB number", body: `{"device_id":"d","ts":1,"metrics":{"t":` + mb + "}}",
			status: 400, want: "metrics: t: number 77777777777777777777777777777777… longer than 256 bytes", events: 1},
		{name: "1 MB string over max_length", body: `{"device_id":"` + mb + `","ts":1,"metrics":{"t":1}}`,
			status: 400, want: "device_id: longer than 256 bytes", events: 1},
		{name: "invalid UTF-8 in a key", body: head + ",\"ab\xff\":1}",
			status: 400, want: "ab\uFFFD: unknown field (name not valid UTF-8)", events: 1},
		{name: "invalid UTF-8 in a value", body: "{\"device_id\":\"\xc3\",\"ts\":1,\"metrics\":{\"t\":1}}",
			status: 400, want: "device_id: invalid UTF-8", events: 1},
		{name: "duplicate keys", body: head + `,"device_id":"e"}`, status: 400, want: "device_id: duplicate key", events: 1},
		{name: "truncated body", body: head[:30], status: 400, want: "invalid JSON: unexpected end of input", events: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCollector(t, &testkit.FakeProducer{}, tt.mod)
			body := []byte(tt.body)
			if tt.gzip {
				body = []byte(gz(t, string(tt.body)))
			}
			req := httptest.NewRequest(http.MethodPost, "/v1/streams/iot_telemetry/events", bytes.NewReader(body))
			if tt.gzip {
				req.Header.Set("Content-Encoding", "gzip")
			}
			if tt.ndjson {
				req.Header.Set("Content-Type", "application/x-ndjson")
			}
			rec := httptest.NewRecorder()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			c.ServeHTTP(rec, req)
			runtime.ReadMemStats(&after)

			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %.500s", rec.Code, tt.status, rec.Body)
			}
			if n := rec.Body.Len(); n > 8<<10 {
				t.Errorf("answer of %d bytes, over 8 KiB: %.500s", n, rec.Body)
			}
			// Fixed costs: the 64 KiB read buffer, gzip's window and tables,
			// the request's and the answer's.
			const limit = 1 << 20
			if n := after.TotalAlloc - before.TotalAlloc; n > limit {
				t.Errorf("reading a body of %d bytes allocated %d bytes, over %d", len(tt.body), n, limit)
			}
			checkHostileAnswer(t, rec.Body.Bytes(), tt.status, tt.want, tt.events)
		})
	}
}

// checkHostileAnswer checks that a batch answer rejects events events and
// lists want first, or that another answer's error holds want.
func checkHostileAnswer(t *testing.T, body []byte, status int, want string, events int) {
	t.Helper()
	if status != http.StatusBadRequest {
		var er ErrorResponse
		if err := json.Unmarshal(body, &er); err != nil || !strings.Contains(er.Error, want) {
			t.Errorf("answer %s, want an error with %q", body, want)
		}
		return
	}
	var resp ingest.Response
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	if resp.Rejected != events || resp.Accepted != 0 {
		t.Errorf("accepted %d, rejected %d, want 0 and %d", resp.Accepted, resp.Rejected, events)
	}
	if len(resp.Errors) == 0 || resp.Errors[0].Error != want {
		t.Errorf("errors %v, want %q first", resp.Errors, want)
	}
	if len(resp.Errors) > ingest.DefaultMaxReportedErrors {
		t.Errorf("%d errors listed", len(resp.Errors))
	}
}
