package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testkit"
)

// TestRELPKillCollector: Debian's rsyslogd forwards over RELP (omrelp) to a
// `sluice run --role ingest` process that is SIGKILLed mid-stream and
// started again on the same address. rsyslogd resends what was not
// answered, and every line it was handed is in ClickHouse exactly once.
func TestRELPKillCollector(t *testing.T) {
	s := newSplitStack(t, newTestDB(t))
	relpAddr := freeAddr(t)
	s.ingestArg = append(s.ingestArg, "--relp-addr", relpAddr)
	s.startWorker()
	s.startIngest()
	rs := testkit.StartRsyslog(t, relpAddr)

	const chunks, perChunk = 10, 1000
	feed := func(c int) {
		lines := make([]string, perChunk)
		for i := range lines {
			n := c*perChunk + i
			lines[i] = fmt.Sprintf("<%d>Nov 30 10:00:%02d web-%d svc-%d[%d]: relp e2e line %06d", 16*8+n%8, n%60, n%5, n%7, n, n)
		}
		rs.Feed(t, lines)
	}
	for c := range chunks {
		feed(c)
		if c == chunks/2 {
			// While this chunk streams in, so that rsyslogd is
			// mid-window with frames sent and not yet answered.
			got := waitReceived(t, s.ingestURL, float64(c*perChunk+perChunk/4))
			s.ingest.kill()
			t.Logf("collector SIGKILLed after reading %v of the %d frames handed to rsyslogd", got, (c+1)*perChunk)
			s.startIngest()
		}
		time.Sleep(150 * time.Millisecond)
	}
	const n = chunks * perChunk
	s.db.waitRows(t, map[string]uint64{"app_logs": n}, 60*time.Second)
	rows, distinct := s.db.counts(t, "app_logs")
	var messages uint64
	row := s.db.conn.QueryRow(context.Background(), fmt.Sprintf("SELECT uniqExact(message) FROM %s.app_logs", s.db.Name))
	if err := row.Scan(&messages); err != nil {
		t.Fatal(err)
	}
	if rows != n || distinct != n || messages != n {
		t.Fatalf("app_logs: %d rows, %d distinct event_ids, %d distinct messages; want %d of each", rows, distinct, messages, n)
	}
	// Resent frames that Kafka already held show up there twice, under
	// the same event_id; ClickHouse counted them once.
	k := &testkit.Kafka{Brokers: []string{s.kafkaAddr}}
	t.Logf("%d lines, %d records in Kafka's app_logs topic", n, len(k.ReadTopic(t, testkit.StreamTopic("app_logs"))))
}

// waitReceived polls the collector's count of RELP frames read until it
// reaches want, for at most 10 seconds, and returns the last count.
func waitReceived(t *testing.T, url string, want float64) float64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := metric(t, url, "sluice_relp_frames_received_total")
		if got >= want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(2 * time.Millisecond)
	}
}
