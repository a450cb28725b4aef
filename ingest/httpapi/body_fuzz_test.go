package httpapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sluicehq/sluice/internal/testkit"
)

// FuzzCollectorBody posts arbitrary bodies as JSON and as NDJSON, plain
// and gzip-compressed: compression must not change the answer, and no
// answer may grow past 8 KiB, whatever the body. (FuzzReadBody in ingest
// compares the reading of bodies with the map-based reading it replaced.)
func FuzzCollectorBody(f *testing.F) {
	for _, s := range []string{goodIoT, "[" + goodIoT + "," + goodIoT2 + "]", goodIoT + "\n" + goodIoT2,
		`{"device_id":1,"x":{"y":[1,2]},"ts":"x"}`, `[{},{},7]`, `{"device_id":"d"`, "\xff", ""} {
		f.Add([]byte(s))
	}
	c := newTestCollector(f, &testkit.FakeProducer{}, nil)
	post := func(body []byte, ndjson, gz bool) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/v1/streams/iot_telemetry/events", bytes.NewReader(body))
		if ndjson {
			req.Header.Set("Content-Type", "application/x-ndjson")
		}
		if gz {
			req.Header.Set("Content-Encoding", "gzip")
		}
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, req)
		return rec
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		zipped := []byte(gz(t, string(body)))
		for _, ndjson := range []bool{false, true} {
			plain, gz := post(body, ndjson, false), post(zipped, ndjson, true)
			if plain.Code != gz.Code || !bytes.Equal(plain.Body.Bytes(), gz.Body.Bytes()) {
				t.Fatalf("ndjson %v %q:\nplain %d %s\ngzip  %d %s", ndjson, body, plain.Code, plain.Body, gz.Code, gz.Body)
			}
			if plain.Body.Len() > 8<<10 {
				t.Fatalf("%q: answer of %d bytes", body, plain.Body.Len())
			}
		}
	})
}
