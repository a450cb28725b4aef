package relp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/ingest/relp"
	"github.com/sluicehq/sluice/internal/testkit"
)

// landed maps each app_logs message in Kafka to its events' ids and counts
// the events.
func landed(t *testing.T, k *testkit.Kafka) (ids map[string]map[string]bool, events []map[string]any) {
	t.Helper()
	ids = map[string]map[string]bool{}
	for _, m := range k.ReadTopic(t, testkit.StreamTopic("app_logs")) {
		var ev map[string]any
		if err := json.Unmarshal(m.Value, &ev); err != nil {
			t.Fatal(err)
		}
		msg := fmt.Sprint(ev["message"])
		if ids[msg] == nil {
			ids[msg] = map[string]bool{}
		}
		ids[msg][fmt.Sprint(ev["event_id"])] = true
		events = append(events, ev)
	}
	return ids, events
}

// waitLanded waits until every one of n messages is in Kafka.
func waitLanded(t *testing.T, k *testkit.Kafka, n int, timeout time.Duration) (map[string]map[string]bool, []map[string]any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ids, events := landed(t, k)
		if len(ids) >= n {
			return ids, events
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages in Kafka after %s", len(ids), n, timeout)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// rsyslogLines are n RFC 3164 lines for rsyslogd's input, with the same
// fields as line(i). RFC 3164 because rsyslogd forwards with
// RSYSLOG_ForwardFormat, which writes the TAG of an RFC 5424 input without
// its colon ("checkout[1000] payment"), and syslog.ToEvent does not yet
// read that TAG right.
func rsyslogLines(n int) []string {
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf("<%d>Nov 30 10:00:%02d web-%d checkout[%d]: payment %05d", 16*8+i%8, i%60, i%3, 1000+i, i)
	}
	return lines
}

// TestRsyslogOverRELP: Debian's rsyslogd forwards with omrelp; every line
// lands in Kafka once, mapped as the SPEC says.
func TestRsyslogOverRELP(t *testing.T) {
	k := testkit.StartKafka(t)
	s := startServer(t, testkit.NewGate(t, k, nil), nil)
	r := testkit.StartRsyslog(t, s.addr())
	const n = 3000
	r.Feed(t, rsyslogLines(n))
	ids, events := waitLanded(t, k, n, 60*time.Second)
	time.Sleep(500 * time.Millisecond) // a straggling duplicate would show now
	if ids, events = landed(t, k); len(events) != n || len(ids) != n {
		t.Fatalf("%d events for %d distinct messages, want %d once each", len(events), len(ids), n)
	}
	for _, ev := range events {
		var i int
		if _, err := fmt.Sscanf(fmt.Sprint(ev["message"]), "payment %05d", &i); err != nil {
			t.Fatalf("unexpected event %v", ev)
		}
		attrs, _ := ev["attrs"].(map[string]any)
		if ev["service"] != "checkout" || ev["host"] != fmt.Sprintf("web-%d", i%3) || ev["level"] != levels[i%8] ||
			attrs["procid"] != fmt.Sprint(1000+i) || attrs["facility"] != "local0" {
			t.Fatalf("line %d mapped to %v", i, ev)
		}
	}
	if got := s.metric(t, "sluice_relp_frames_answered_total"); got != n {
		t.Errorf("%v frames answered, want %d", got, n)
	}
}

// ackLost writes to Kafka, then never returns: Kafka holds the events but
// their rsp never goes out, as when Sluice dies between the two.
type ackLost struct {
	ingest.Producer
	wrote chan struct{}
}

func (p *ackLost) Produce(ctx context.Context, msgs []ingest.Message) error {
	if err := p.Producer.Produce(ctx, msgs); err != nil {
		return err
	}
	select {
	case p.wrote <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return ctx.Err()
}

// TestRsyslogResendsUnanswered: a server whose answers never go out is
// stopped; rsyslogd resends those frames to the next server on the same
// address, and the resent lines keep their event_id, so the duplicates in
// Kafka count once downstream.
func TestRsyslogResendsUnanswered(t *testing.T) {
	k := testkit.StartKafka(t)
	lost := &ackLost{wrote: make(chan struct{}, 1)}
	g1 := testkit.NewGate(t, k, nil, func(cfg *ingest.GateConfig) {
		lost.Producer = cfg.Producer
		cfg.Producer = lost
	})
	first := startServer(t, g1, func(cfg *relp.Config) { cfg.ShutdownGrace = 100 * time.Millisecond })
	addr := first.addr()
	r := testkit.StartRsyslog(t, addr)
	const n = 1000
	r.Feed(t, rsyslogLines(n))
	select {
	case <-lost.wrote:
	case <-time.After(30 * time.Second):
		t.Fatal("rsyslogd's frames never reached Kafka")
	}
	first.stop()
	if got := first.metric(t, "sluice_relp_frames_answered_total"); got != 0 {
		t.Fatalf("the first server answered %v frames", got)
	}

	startServer(t, testkit.NewGate(t, k, nil), func(cfg *relp.Config) { cfg.Addr = addr })
	ids, events := waitLanded(t, k, n, 60*time.Second)
	if len(events) <= n {
		t.Fatalf("%d events for %d lines: the test needs resent duplicates", len(events), n)
	}
	for msg, set := range ids {
		if len(set) != 1 {
			t.Fatalf("%q resent under %d event_ids", msg, len(set))
		}
	}
	t.Logf("%d lines, %d events in Kafka, each line under one event_id", n, len(events))
}
