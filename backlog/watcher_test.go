package backlog_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/backlog"
	"github.com/sluicehq/sluice/internal/eventually"
	"github.com/sluicehq/sluice/internal/testkit"
)

const group = "sluice-workers"

// The whole life of an alarm against the embedded broker, with a 6 s
// retention and nobody reading: it fires at half the retention, before
// anything expires; it names the offsets lost once Kafka deletes them; and
// it clears when the group commits to the end. The stream next to it, with
// the default retention of seven days, is never shed.
func TestWatcherAlarmExpiryAndRecovery(t *testing.T) {
	t.Parallel()
	const retention = 6 * time.Second
	iot, logs := testkit.StreamTopic("iot_telemetry"), testkit.StreamTopic("app_logs")
	k := testkit.StartKafkaRetention(t, 200*time.Millisecond, map[string]time.Duration{iot: retention, logs: 0})
	before := time.Now()
	ends := produce(t, k, iot, func(p int) int { return 5 * (p + 1) })
	produce(t, k, logs, func(int) int { return 3 })

	reg := prometheus.NewRegistry()
	var logged testkit.LogBuffer
	w, err := backlog.New(backlog.Options{
		Brokers: k.Brokers, GroupID: group,
		Topics:   map[string]string{iot: "iot_telemetry", logs: "app_logs"},
		Interval: 100 * time.Millisecond,
		Logger:   slog.New(slog.NewTextHandler(&logged, nil)), Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := runWatcher(t, w)

	eventually.True(t, 10*time.Second, "the alarm", func() bool { _, _, ok := w.Shed("iot_telemetry"); return ok })
	if d := time.Since(before); d < retention/2 {
		t.Errorf("alarm %s after the messages were written, before half the retention", d)
	}
	checkAlarm(t, w, reg, &logged, iot)

	eventually.True(t, 15*time.Second, "every partition's loss", func() bool {
		return strings.Count(fmt.Sprint(w.Check()), "expired from Kafka unread") == testkit.Partitions
	})
	msg := w.Check().Error()
	lost := 0
	for p, end := range ends {
		want := fmt.Sprintf("%s[%d] (stream iot_telemetry): offsets 0-%d expired from Kafka unread (retention 6s)", iot, p, end-1)
		if !strings.Contains(msg, want) {
			t.Errorf("Check = %q, want it to say %q", msg, want)
		}
		lost += int(end)
	}
	if n := testkit.Metric(t, reg, "sluice_kafka_backlog_expired_offsets_total", map[string]string{"stream": "iot_telemetry"}); n != float64(lost) {
		t.Errorf("expired offsets counted %v, want %d", n, lost)
	}
	if !strings.Contains(logged.String(), "level=ERROR msg=\"unread events expired from Kafka") {
		t.Errorf("no error logged for the loss:\n%s", logged.String())
	}

	for p, end := range ends {
		k.CommitOffset(t, group, iot, p, end)
	}
	eventually.True(t, 5*time.Second, "the alarm to clear", func() bool { _, _, ok := w.Shed("iot_telemetry"); return !ok && w.Check() == nil })
	if n := testkit.Metric(t, reg, "sluice_retention_alarm", nil); n != 0 {
		t.Errorf("%v partitions still in alarm", n)
	}
	if !strings.Contains(logged.String(), "level=INFO msg=\"backlog alarm cleared\"") {
		t.Errorf("no log of the alarm clearing:\n%s", logged.String())
	}
	stop()
}

// checkAlarm checks what the watcher says while topic's partitions are in
// alarm but nothing expired yet.
func checkAlarm(t *testing.T, w *backlog.Watcher, reg *prometheus.Registry, logged *testkit.LogBuffer, topic string) {
	t.Helper()
	after, reason, _ := w.Shed("iot_telemetry")
	if after != time.Second || !strings.Contains(reason, "(stream iot_telemetry): oldest unread event") {
		t.Errorf("Shed = %s, %q: want 1s and the partition's backlog", after, reason)
	}
	if _, _, ok := w.Shed("app_logs"); ok {
		t.Error("app_logs is shed, though its retention is seven days")
	}
	eventually.True(t, 2*time.Second, "every partition in alarm", func() bool {
		return testkit.Metric(t, reg, "sluice_retention_alarm", map[string]string{"stream": "iot_telemetry"}) == testkit.Partitions
	})
	msg := fmt.Sprint(w.Check())
	for p := range testkit.Partitions {
		if !strings.Contains(msg, fmt.Sprintf("%s[%d] (stream iot_telemetry): oldest unread event", topic, p)) {
			t.Errorf("Check = %q: partition %d missing", msg, p)
		}
	}
	if strings.Contains(msg, "expired") || !strings.Contains(msg, "retention 6s (alarm at 3s)") {
		t.Errorf("Check = %q, want an alarm at 3s of 6s, before anything expired", msg)
	}
	if age := testkit.Metric(t, reg, "sluice_kafka_backlog_age_seconds", map[string]string{"stream": "iot_telemetry", "partition": "0"}); age < 3 || age > 6 {
		t.Errorf("backlog age %vs, want between half the retention and the retention", age)
	}
	if r := testkit.Metric(t, reg, "sluice_kafka_retention_seconds", map[string]string{"stream": "iot_telemetry"}); r != 6 {
		t.Errorf("retention %vs, want 6", r)
	}
	if r := testkit.Metric(t, reg, "sluice_kafka_retention_seconds", map[string]string{"stream": "app_logs"}); r != 7*24*3600 {
		t.Errorf("app_logs retention %vs, want kfake's default of seven days", r)
	}
	if n := testkit.Metric(t, reg, "sluice_retention_alarm", map[string]string{"stream": "app_logs"}); n != 0 {
		t.Errorf("app_logs: %v partitions in alarm", n)
	}
	if !strings.Contains(logged.String(), "level=ERROR msg=\"backlog nears Kafka's retention") {
		t.Errorf("no error logged for the alarm:\n%s", logged.String())
	}
}

// A group that committed part of a partition is judged by the first
// message it has not committed, and the watcher stops with its context.
func TestWatcherCommittedOffset(t *testing.T) {
	topic := testkit.StreamTopic("app_logs")
	k := testkit.StartKafkaRetention(t, time.Hour, map[string]time.Duration{topic: time.Hour})
	old := time.Now().Add(-40 * time.Minute)
	produceAt(t, k, topic, 0, old, 3)
	produceAt(t, k, topic, 0, time.Now(), 3)
	k.CommitOffset(t, group, topic, 0, 2)

	reg := prometheus.NewRegistry()
	w, err := backlog.New(backlog.Options{
		Brokers: k.Brokers, GroupID: group, Topics: map[string]string{topic: "app_logs"},
		Interval: 50 * time.Millisecond, Logger: testkit.QuietLogger(), Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := runWatcher(t, w)
	eventually.True(t, 5*time.Second, "the alarm on the old message", func() bool { _, _, ok := w.Shed("app_logs"); return ok })
	if age := testkit.Metric(t, reg, "sluice_kafka_backlog_age_seconds", map[string]string{"partition": "0"}); age < 40*60 || age > 41*60 {
		t.Errorf("age %vs, want the 40 minutes of the message at the committed offset", age)
	}
	k.CommitOffset(t, group, topic, 0, 3)
	eventually.True(t, 5*time.Second, "the age of the young message", func() bool {
		return testkit.Metric(t, reg, "sluice_kafka_backlog_age_seconds", map[string]string{"partition": "0"}) < 60
	})
	if err := w.Check(); err != nil {
		t.Errorf("Check = %v once the old message is committed", err)
	}
	stop()
}

func TestNewRefusesIncompleteOptions(t *testing.T) {
	ok := backlog.Options{Brokers: []string{"localhost:9092"}, GroupID: group, Topics: map[string]string{"t": "s"}}
	for name, mod := range map[string]func(*backlog.Options){
		"no brokers":   func(o *backlog.Options) { o.Brokers = nil },
		"no group":     func(o *backlog.Options) { o.GroupID = "" },
		"no topics":    func(o *backlog.Options) { o.Topics = nil },
		"fraction > 1": func(o *backlog.Options) { o.Fraction = 1.5 },
	} {
		o := ok
		mod(&o)
		if _, err := backlog.New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := backlog.New(ok); err != nil {
		t.Errorf("complete options: %v", err)
	}
}

// runWatcher runs w until the returned stop is called (or t ends), and
// checks that Run returns promptly and without error.
func runWatcher(t *testing.T, w *backlog.Watcher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	t.Cleanup(stop)
	return stop
}

// produce writes count(p) messages to each partition p of topic, stamped
// now, and returns each partition's end offset.
func produce(t *testing.T, k *testkit.Kafka, topic string, count func(p int) int) []int64 {
	t.Helper()
	ends := make([]int64, testkit.Partitions)
	for p := range testkit.Partitions {
		ends[p] = produceAt(t, k, topic, p, time.Now(), count(p))
	}
	return ends
}

// produceAt writes n messages stamped at to partition p of topic, and
// returns the partition's end offset.
func produceAt(t *testing.T, k *testkit.Kafka, topic string, p int, at time.Time, n int) int64 {
	t.Helper()
	recs := make([]kafka.Record, n)
	for i := range recs {
		recs[i] = kafka.Record{Time: at, Value: kafka.NewBytes([]byte(fmt.Sprintf("event %d", i)))}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := k.Client().Produce(ctx, &kafka.ProduceRequest{
		Topic: topic, Partition: p, RequiredAcks: kafka.RequireAll, Records: kafka.NewRecordReader(recs...),
	})
	if err == nil {
		err = res.Error
	}
	if err != nil {
		t.Fatalf("produce to %s[%d]: %v", topic, p, err)
	}
	return res.BaseOffset + int64(n)
}

// A watcher that cannot reach Kafka sheds nothing (it fails open, since a
// refusal must rest on a reading) and counts its failed rounds; once its
// readings are stale (about 10 s here) Check says so, with the error.
func TestWatcherWithoutKafkaShedsNothing(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	w, err := backlog.New(backlog.Options{
		Brokers: []string{"127.0.0.1:1"}, GroupID: group, Topics: map[string]string{"sluice.app_logs": "app_logs"},
		Interval: 20 * time.Millisecond, Logger: testkit.QuietLogger(), Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := runWatcher(t, w)
	eventually.True(t, 5*time.Second, "a failed round", func() bool {
		return testkit.Metric(t, reg, "sluice_kafka_backlog_read_errors_total", nil) > 0
	})
	if _, _, ok := w.Shed("app_logs"); ok {
		t.Error("shed without a reading")
	}
	if err := w.Check(); err != nil {
		t.Errorf("Check = %v before the readings are stale", err)
	}
	eventually.True(t, 15*time.Second, "stale readings", func() bool { return w.Check() != nil })
	if msg := w.Check().Error(); !strings.Contains(msg, "kafka backlog unknown, not read in the 10") || !strings.Contains(msg, "127.0.0.1:1") {
		t.Errorf("Check = %q, want how long ago the last reading was and why none since", msg)
	}
	if _, _, ok := w.Shed("app_logs"); ok {
		t.Error("shed on stale readings")
	}
	stop()
}
