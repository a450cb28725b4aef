package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/loadgen"
	natssink "github.com/sluicehq/sluice/sinks/nats"
)

// syncBuffer is an ack log that several loadgen workers may write.
type syncBuffer struct{ testkit.LogBuffer }

// ackedIDs parses an ack log into event_ids per stream.
func (b *syncBuffer) ackedIDs(t *testing.T) map[string]map[string]bool {
	t.Helper()
	out := map[string]map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	for sc.Scan() {
		stream, id, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			t.Fatalf("bad ack log line %q", sc.Text())
		}
		if out[stream] == nil {
			out[stream] = map[string]bool{}
		}
		if out[stream][id] {
			t.Fatalf("ack log names %s twice", id)
		}
		out[stream][id] = true
	}
	return out
}

// natsRecorder counts every event a NATS subscriber receives and checks it
// arrived on its key's subject.
type natsRecorder struct {
	mu       sync.Mutex
	count    map[string]int // event_id -> deliveries
	misplace []string
}

func recordNATS(t *testing.T, url string) *natsRecorder {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	r := &natsRecorder{count: map[string]int{}}
	keyField := map[string]string{"iot_telemetry": "device_id", "app_logs": "service"}
	sub, err := nc.Subscribe("sluice.>", func(m *nats.Msg) {
		var ev map[string]any
		parts := strings.SplitN(m.Subject, ".", 3)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := json.Unmarshal(m.Data, &ev); err != nil || len(parts) != 3 {
			r.misplace = append(r.misplace, fmt.Sprintf("%s: undecodable %q", m.Subject, m.Data))
			return
		}
		id, _ := ev["event_id"].(string)
		key, _ := ev[keyField[parts[1]]].(string)
		if want := natssink.Subject("sluice.", parts[1], key); m.Subject != want || id == "" || ev["received_at"] == nil {
			r.misplace = append(r.misplace, fmt.Sprintf("event %s on %s, want %s (received_at %v)", id, m.Subject, want, ev["received_at"]))
		}
		r.count[id]++
	})
	if err != nil {
		t.Fatal(err)
	}
	// The subscriber must keep up with a burst of 50,000 rather than be cut
	// off as a slow consumer.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return r
}

// waitEach waits until every id has arrived, then checks none came twice.
func (r *natsRecorder) waitEach(t *testing.T, ids map[string]map[string]bool, timeout time.Duration) {
	t.Helper()
	want := 0
	for _, s := range ids {
		want += len(s)
	}
	deadline := time.Now().Add(timeout)
	for {
		r.mu.Lock()
		got := len(r.count)
		r.mu.Unlock()
		if got >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.misplace[:min(len(r.misplace), 5)] {
		t.Errorf("nats: %s", m)
	}
	missing, twice := 0, 0
	for _, s := range ids {
		for id := range s {
			switch r.count[id] {
			case 0:
				missing++
			case 1:
			default:
				twice++
			}
		}
	}
	if missing > 0 || twice > 0 || len(r.count) != want {
		t.Errorf("nats: %d events missing, %d delivered more than once, %d distinct received, want %d", missing, twice, len(r.count), want)
	}
}

// checkExactlyOnce asserts that each table holds exactly the acknowledged
// event_ids, each once.
func checkExactlyOnce(t *testing.T, db *testDB, acked map[string]map[string]bool) {
	t.Helper()
	for stream, ids := range acked {
		rows, distinct := db.counts(t, stream)
		if rows != uint64(len(ids)) || distinct != uint64(len(ids)) {
			t.Errorf("%s: count() = %d, distinct event_id = %d, acknowledged = %d", stream, rows, distinct, len(ids))
		}
		got, err := db.conn.Query(context.Background(), fmt.Sprintf("SELECT event_id FROM %s.%s", db.Name, stream))
		if err != nil {
			t.Fatal(err)
		}
		stored := map[string]bool{}
		for got.Next() {
			var id string
			if err := got.Scan(&id); err != nil {
				t.Fatal(err)
			}
			stored[id] = true
		}
		got.Close()
		missing := 0
		for id := range ids {
			if !stored[id] {
				missing++
			}
		}
		if missing > 0 {
			t.Errorf("%s: %d acknowledged events missing from ClickHouse", stream, missing)
		}
	}
}

func TestHTTPToClickHouseAndNATSExactlyOnce(t *testing.T) {
	db := newTestDB(t)
	s := startStack(t, db, nil)
	rec := recordNATS(t, s.NATSURL)

	var ackLog syncBuffer
	const total = 50_000
	sum, err := loadgen.Run(context.Background(), loadgen.Config{
		URL:         s.HTTPURL,
		Concurrency: 16,
		BatchSize:   100,
		MaxEvents:   total,
		Mix:         0.5,
		Devices:     500,
		AckLog:      &ackLog,
	}, io.Discard)
	if err != nil {
		t.Fatalf("loadgen: %v", err)
	}
	if sum.AckedTotal != total {
		t.Fatalf("acknowledged %d events, want %d (summary %+v)", sum.AckedTotal, total, sum)
	}
	t.Logf("loadgen: %.0f events/s, p99 ack latency %v", sum.EventsPerSecond, sum.Latency.P99)

	acked := ackLog.ackedIDs(t)
	want := map[string]uint64{}
	for stream, ids := range acked {
		want[stream] = uint64(len(ids))
	}
	db.waitRows(t, want, 90*time.Second)
	checkExactlyOnce(t, db, acked)
	rec.waitEach(t, acked, 30*time.Second)
}
