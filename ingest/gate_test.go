package ingest_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sluicehq/sluice/backlog"
	"github.com/sluicehq/sluice/backpressure"
	"github.com/sluicehq/sluice/deadletter"
	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/kafkatopic"
)

func newTestGate(t *testing.T, p ingest.Producer, mod func(*ingest.GateConfig)) *ingest.Gate {
	t.Helper()
	cfg := ingest.GateConfig{Registry: testkit.Registry(t), Producer: p, Logger: testkit.QuietLogger()}
	if mod != nil {
		mod(&cfg)
	}
	g, err := ingest.NewGate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestGateDeadLettersInTheSameCommit(t *testing.T) {
	fp := &testkit.FakeProducer{}
	g := newTestGate(t, fp, nil)
	b, err := g.Begin("iot_telemetry", ingest.Origin{
		Source: "mqtt", Detail: "devices/d-7/telemetry", DeadLetter: true,
		Fields: map[string]string{"device_id": "d-7"},
	})
	if err != nil {
		t.Fatal(err)
	}
	payload := `{"ts":"2026-11-24T10:00:00Z","metrics":{"t":1}} {"ts":"yesterday","metrics":{"t":1}}`
	if err := b.ReadJSON(strings.NewReader(payload)); err != nil {
		t.Fatal(err)
	}
	if r := b.Report(); r.Accepted != 1 || r.Rejected != 1 {
		t.Fatalf("report %+v, want 1 accepted, 1 rejected", r)
	}
	if err := b.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	msgs := fp.Produced()
	if len(msgs) != 2 || fp.Calls() != 1 {
		t.Fatalf("%d messages in %d produce calls, want the event and its dead letter in one", len(msgs), fp.Calls())
	}
	if string(msgs[0].Key) != "d-7" {
		t.Errorf("key %q: the device id should come from the topic", msgs[0].Key)
	}
	if msgs[1].Topic != kafkatopic.DLQ(kafkatopic.DefaultPrefix) {
		t.Fatalf("second message went to %s, want the dead-letter topic", msgs[1].Topic)
	}
	rec, err := deadletter.Decode(msgs[1].Value)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Source != "mqtt" || rec.Origin != "devices/d-7/telemetry" || !strings.Contains(rec.Reason, "ts:") || rec.FromKafka() {
		t.Errorf("dead letter %+v: want source mqtt, the topic, the ts problem", rec)
	}
}

func TestGateMalformedPayloadIsDeadLetteredWhole(t *testing.T) {
	fp := &testkit.FakeProducer{}
	g := newTestGate(t, fp, nil)
	raw := []byte(`[{"device_id":"a","ts":1,"metrics":{"x":1}}, {"broken`)
	b, _ := g.Begin("iot_telemetry", ingest.Origin{Source: "mqtt", DeadLetter: true, Raw: raw})
	if err := b.ReadJSON(strings.NewReader(string(raw))); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	msgs := fp.Produced()
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want only the dead letter of the whole payload", len(msgs))
	}
	rec, err := deadletter.Decode(msgs[0].Value)
	if err != nil || rec.RawEvent != string(raw) {
		t.Errorf("dead letter %+v (%v), want the raw payload", rec, err)
	}
}

func TestGateDerivedIDsAreStable(t *testing.T) {
	ids := func() []string {
		fp := &testkit.FakeProducer{}
		g := newTestGate(t, fp, nil)
		b, _ := g.Begin("iot_telemetry", ingest.Origin{Source: "mqtt", Identity: []byte("topic+payload digest")})
		_ = b.ReadJSON(strings.NewReader(`[{"device_id":"a","ts":1,"metrics":{"x":1}},{"device_id":"a","ts":1,"metrics":{"x":1}},{"event_id":"own","device_id":"a","ts":1,"metrics":{"x":1}}]`))
		if err := b.Commit(context.Background()); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range fp.Produced() {
			ev, err := g.Registry().Stream("iot_telemetry").Decode(m.Value)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, ev.ID)
		}
		return out
	}
	first, again := ids(), ids()
	if strings.Join(first, ",") != strings.Join(again, ",") {
		t.Errorf("derived ids differ on a resend: %v then %v", first, again)
	}
	if first[0] == first[1] {
		t.Errorf("two events at different indexes got one id %s", first[0])
	}
	if first[2] != "own" {
		t.Errorf("an event's own event_id was replaced by %s", first[2])
	}
}

func TestGateRefusals(t *testing.T) {
	t.Run("overloaded", func(t *testing.T) {
		block := make(chan struct{})
		defer close(block)
		fp := &testkit.FakeProducer{Block: block}
		adm := backpressure.NewAdmission(backpressure.AdmissionConfig{Capacity: 1, MaxWait: time.Millisecond, RetryAfter: 3 * time.Second})
		g := newTestGate(t, fp, func(c *ingest.GateConfig) { c.Admission = adm })
		first, _ := g.Begin("app_logs", ingest.Origin{Source: "test"})
		_ = first.Add(map[string]any{"ts": "2026-11-24T10:00:00Z", "service": "a", "level": "info", "message": "m"})
		go func() { _ = first.Commit(context.Background()) }()
		for adm.InFlight() == 0 {
			time.Sleep(time.Millisecond)
		}
		second, _ := g.Begin("app_logs", ingest.Origin{Source: "test"})
		_ = second.Add(map[string]any{"ts": "2026-11-24T10:00:00Z", "service": "a", "level": "info", "message": "m"})
		err := second.Commit(context.Background())
		if !errors.Is(err, ingest.ErrOverloaded) || ingest.RetryAfter(err) != 3*time.Second {
			t.Fatalf("err %v, retry after %v: want ingest.ErrOverloaded after 3s", err, ingest.RetryAfter(err))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := second.CommitWait(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("CommitWait = %v, want it to wait until ctx ends", err)
		}
	})
	t.Run("kafka down, then back", func(t *testing.T) {
		fp := testkit.FailingProducer(errors.New("broker gone"))
		g := newTestGate(t, fp, nil)
		b, _ := g.Begin("app_logs", ingest.Origin{Source: "test"})
		_ = b.Add(map[string]any{"ts": "2026-11-24T10:00:00Z", "service": "a", "level": "info", "message": "m"})
		if err := b.Commit(context.Background()); !errors.Is(err, ingest.ErrUnavailable) {
			t.Fatalf("err %v, want ingest.ErrUnavailable", err)
		}
		go func() {
			time.Sleep(200 * time.Millisecond)
			fp.SetErr(nil)
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.CommitWait(ctx); err != nil {
			t.Fatalf("CommitWait = %v, want success once Kafka is back", err)
		}
		if len(fp.Produced()) != 1 {
			t.Errorf("%d messages produced, want 1", len(fp.Produced()))
		}
	})
	t.Run("unknown stream", func(t *testing.T) {
		g := newTestGate(t, &testkit.FakeProducer{}, nil)
		if _, err := g.Begin("nope", ingest.Origin{}); !errors.Is(err, ingest.ErrUnknownStream) {
			t.Errorf("err %v, want ingest.ErrUnknownStream", err)
		}
	})
}

// Several small inputs commit as one produce call, and a batch committed
// again after a refusal counts its rejected events once.
func TestCommitAll(t *testing.T) {
	fp := &testkit.FakeProducer{}
	fp.SetErr(errors.New("broker gone"))
	reg := prometheus.NewRegistry()
	g := newTestGate(t, fp, func(c *ingest.GateConfig) { c.Registerer = reg })
	iot, _ := g.Begin("iot_telemetry", ingest.Origin{Source: "mqtt", DeadLetter: true})
	_ = iot.ReadJSON(strings.NewReader(`{"device_id":"a","ts":1,"metrics":{"x":1}} {"device_id":"a","ts":"never","metrics":{"x":1}}`))
	logs, _ := g.Begin("app_logs", ingest.Origin{Source: "mqtt"})
	_ = logs.Add(map[string]any{"ts": "2026-11-24T10:00:00Z", "service": "a", "level": "info", "message": "m"})
	if err := ingest.CommitAll(context.Background(), iot, logs); !errors.Is(err, ingest.ErrUnavailable) {
		t.Fatalf("CommitAll with Kafka down = %v, want ErrUnavailable", err)
	}
	fp.SetErr(nil)
	if err := ingest.CommitAll(context.Background(), iot, logs); err != nil {
		t.Fatal(err)
	}
	if fp.Calls() != 2 || len(fp.Produced()) != 3 {
		t.Errorf("%d produce calls, %d messages: want one call per CommitAll, with 2 events and 1 dead letter", fp.Calls(), len(fp.Produced()))
	}
	if m := fp.Produced()[2]; m.Topic != "sluice.dlq" {
		t.Errorf("last message on %s: dead letters go after the events", m.Topic)
	}
	want := `sluice_ingest_events_total{result="rejected",source="mqtt",stream="iot_telemetry"} 1`
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if !strings.Contains(rec.Body.String(), want) {
		t.Errorf("metrics lack %s (rejected events counted once per batch)", want)
	}
}

func TestDeriveID(t *testing.T) {
	a := ingest.DeriveID([]byte("ab"), []byte("c"))
	if a != ingest.DeriveID([]byte("ab"), []byte("c")) {
		t.Error("DeriveID is not deterministic")
	}
	if a == ingest.DeriveID([]byte("a"), []byte("bc")) {
		t.Error(`("ab","c") and ("a","bc") share an id`)
	}
	u, err := uuid.Parse(a)
	if err != nil || u.Version() != 8 || u.Variant() != uuid.RFC4122 {
		t.Errorf("%s: version %d, variant %v (%v), want an RFC 9562 version 8 UUID", a, u.Version(), u.Variant(), err)
	}
}

// The watcher of Kafka backlogs is what the gate sheds by.
var _ ingest.Shedder = (*backlog.Watcher)(nil)

// shedder is a Shedder that sheds the streams set in it.
type shedder struct {
	mu   sync.Mutex
	shed map[string]bool
}

func (s *shedder) set(stream string, shed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shed == nil {
		s.shed = make(map[string]bool)
	}
	s.shed[stream] = shed
}

func (s *shedder) Shed(stream string) (time.Duration, string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return 7 * time.Second, "backlog of " + stream + " near retention", s.shed[stream]
}

// A stream whose backlog nears Kafka's retention is refused before
// anything is produced, with the shedder's retry-after; other streams and
// dead letters pass, and CommitWait waits until the shedding ends.
func TestGateShedsStreamNearRetention(t *testing.T) {
	fp := &testkit.FakeProducer{}
	sh := &shedder{}
	sh.set("app_logs", true)
	reg := prometheus.NewRegistry()
	g := newTestGate(t, fp, func(c *ingest.GateConfig) { c.Shedder = sh; c.Registerer = reg })
	event := map[string]any{"ts": "2026-11-24T10:00:00Z", "service": "a", "level": "info", "message": "m"}
	logs, _ := g.Begin("app_logs", ingest.Origin{Source: "test"})
	_ = logs.Add(event)
	err := logs.Commit(context.Background())
	var r *ingest.Refused
	if !errors.As(err, &r) || !errors.Is(err, ingest.ErrBacklog) || ingest.RetryAfter(err) != 7*time.Second {
		t.Fatalf("Commit = %v, retry after %v: want ingest.ErrBacklog after 7s", err, ingest.RetryAfter(err))
	}
	if r.Cause == nil || r.Cause.Error() != "backlog of app_logs near retention" {
		t.Errorf("cause %v, want the shedder's reason", r.Cause)
	}
	if fp.Calls() != 0 {
		t.Fatalf("%d produce calls for a shed stream", fp.Calls())
	}

	iot, _ := g.Begin("iot_telemetry", ingest.Origin{Source: "test"})
	_ = iot.Add(map[string]any{"device_id": "d", "ts": "2026-11-24T10:00:00Z", "metrics": map[string]any{"x": 1.0}})
	if err := ingest.CommitAll(context.Background(), iot, logs); !errors.Is(err, ingest.ErrBacklog) {
		t.Errorf("CommitAll with a shed stream among others = %v, want ingest.ErrBacklog", err)
	}
	if err := iot.Commit(context.Background()); err != nil || len(fp.Produced()) != 1 {
		t.Errorf("a stream not shed: %v, %d messages produced", err, len(fp.Produced()))
	}
	letters, _ := g.Begin("app_logs", ingest.Origin{Source: "test", DeadLetter: true})
	_ = letters.Reject([]byte("<13>garbage"), "not syslog")
	if err := letters.Commit(context.Background()); err != nil {
		t.Errorf("dead letters alone of a shed stream: %v, want them through", err)
	}

	go func() {
		time.Sleep(200 * time.Millisecond)
		sh.set("app_logs", false)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := logs.CommitWait(ctx); err != nil {
		t.Fatalf("CommitWait = %v, want success once the shedding ends", err)
	}
	if n := testkit.Metric(t, reg, "sluice_ingest_events_total", map[string]string{"stream": "app_logs", "result": "refused"}); n < 2 {
		t.Errorf("%v app_logs events counted refused, want the shed commits counted", n)
	}
	if got := len(fp.Produced()); got != 3 {
		t.Errorf("%d messages produced, want the iot event, the dead letter and the app_logs event", got)
	}
}
