package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestBadInput posts bad bodies to a running pipeline: each gets the status
// SPEC names and errors that name the field and the problem, and the good
// events of a mixed body land.
func TestBadInput(t *testing.T) {
	db := newTestDB(t)
	s := startStack(t, db, nil)

	gzipped := func(s string) []byte {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		io.WriteString(zw, s)
		zw.Close()
		return b.Bytes()
	}
	iot := func(id string) string {
		return fmt.Sprintf(`{"event_id":%q,"device_id":"sensor-1","ts":"2026-11-24T10:00:00.123Z","metrics":{"temperature":21.5}}`, id)
	}
	type errItem struct {
		Index int    `json:"index"`
		Error string `json:"error"`
	}
	tests := []struct {
		name        string
		stream      string
		contentType string
		gzip        bool
		body        string
		wantStatus  int
		wantAcc     int
		wantErrs    []errItem // each must appear (error compared by prefix)
	}{
		{name: "malformed JSON", stream: "iot_telemetry", body: `{"device_id": "x",`, wantStatus: 400,
			wantErrs: []errItem{{0, "invalid JSON"}}},
		{name: "wrong type", stream: "iot_telemetry", body: `{"device_id":42,"ts":1795514400123,"metrics":{"t":1}}`, wantStatus: 400,
			wantErrs: []errItem{{0, "device_id: must be a string"}}},
		{name: "missing required field", stream: "iot_telemetry", body: `{"ts":1795514400123,"metrics":{"t":1}}`, wantStatus: 400,
			wantErrs: []errItem{{0, "device_id: required"}}},
		{name: "bad timestamp", stream: "iot_telemetry", body: `{"device_id":"d","ts":"yesterday","metrics":{"t":1}}`, wantStatus: 400,
			wantErrs: []errItem{{0, "ts: not RFC 3339 or epoch ms"}}},
		{name: "bad log level", stream: "app_logs", body: `{"ts":1795514400123,"service":"checkout","level":"loud","message":"m"}`, wantStatus: 400,
			wantErrs: []errItem{{0, `level: "loud" is not one of`}}},
		{name: "empty metrics", stream: "iot_telemetry", body: `{"device_id":"d","ts":1795514400123,"metrics":{}}`, wantStatus: 400,
			wantErrs: []errItem{{0, "metrics: must have at least one entry"}}},
		{name: "unknown stream", stream: "nope", body: iot("x"), wantStatus: 404},
		{name: "body over the limit", stream: "iot_telemetry", body: "[" + strings.Repeat(iot("big")+",", 90_000) + iot("end") + "]", wantStatus: 413},
		{name: "mixed NDJSON: good lines accepted, bad ones reported by index", stream: "iot_telemetry", contentType: "application/x-ndjson",
			body:       iot("nd-1") + "\n" + `{"device_id":"d","ts":"never","metrics":{"t":1}}` + "\n" + iot("nd-2") + "\n" + `not json` + "\n" + iot("nd-3") + "\n",
			wantStatus: 202, wantAcc: 3,
			wantErrs: []errItem{{1, "ts: not RFC 3339 or epoch ms"}, {3, "invalid JSON"}}},
		{name: "gzip array", stream: "iot_telemetry", gzip: true, body: "[" + iot("gz-1") + "," + iot("gz-2") + "]", wantStatus: 202, wantAcc: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			if tt.gzip {
				body = gzipped(tt.body)
			}
			req, _ := http.NewRequest(http.MethodPost, s.HTTPURL+"/v1/streams/"+tt.stream+"/events", bytes.NewReader(body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			if tt.gzip {
				req.Header.Set("Content-Encoding", "gzip")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tt.wantStatus, raw)
			}
			if tt.wantStatus != 400 && tt.wantStatus != 202 {
				return
			}
			var got struct {
				Accepted int       `json:"accepted"`
				Rejected int       `json:"rejected"`
				Errors   []errItem `json:"errors"`
			}
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatalf("body %s: %v", raw, err)
			}
			if got.Accepted != tt.wantAcc {
				t.Errorf("accepted %d, want %d; body %s", got.Accepted, tt.wantAcc, raw)
			}
			for _, want := range tt.wantErrs {
				found := false
				for _, e := range got.Errors {
					found = found || (e.Index == want.Index && strings.HasPrefix(e.Error, want.Error))
				}
				if !found {
					t.Errorf("no error %+v in %s", want, raw)
				}
			}
		})
	}
	// The good events of the mixed and gzip bodies land; nothing else does.
	db.waitRows(t, map[string]uint64{"iot_telemetry": 5}, 30*time.Second)
	if rows, _ := db.counts(t, "iot_telemetry"); rows != 5 {
		t.Errorf("iot_telemetry holds %d rows, want the 5 accepted", rows)
	}
	if rows, _ := db.counts(t, "app_logs"); rows != 0 {
		t.Errorf("app_logs holds %d rows, want 0", rows)
	}
}
