package verify

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/kafkatopic"
	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks"
	"github.com/sluicehq/sluice/sinks/clickhouse"
	"github.com/sluicehq/sluice/workers"
)

// seed writes the data every case starts from: 40 iot_telemetry events of
// 8 devices, one of them (iot-7) written twice as a producer's retry does,
// at two offsets; and 20 app_logs events of 4 services.
func seed(f *fixture) {
	var iot []schemas.Event
	for i := range 40 {
		iot = append(iot, iotEvent(fmt.Sprintf("iot-%d", i), fmt.Sprintf("sensor-%d", i%8), i))
	}
	f.produce("iot_telemetry", iot...)
	f.produce("iot_telemetry", iot[7])
	var logs []schemas.Event
	for i := range 20 {
		logs = append(logs, logEvent(fmt.Sprintf("log-%d", i), fmt.Sprintf("svc-%d", i%4), i))
	}
	f.produce("app_logs", logs...)
}

// cleanTotals are the totals when ClickHouse holds the seed exactly once.
var cleanTotals = Counts{KafkaMessages: 61, Events: 60, Expected: 60, ClickHouseRows: 60}

func with(c Counts, change func(*Counts)) Counts {
	change(&c)
	return c
}

func TestRun(t *testing.T) {
	tests := []struct {
		name  string
		setup func(f *fixture)
		want  Counts
		check func(t *testing.T, f *fixture, rep Report)
	}{
		{
			name: "clean, with a producer's retry at two offsets held once",
			setup: func(f *fixture) {
				f.deliver("iot_telemetry")
				f.deliver("app_logs")
			},
			want: cleanTotals,
			check: func(t *testing.T, f *fixture, rep Report) {
				iot := streamReport(t, rep, "iot_telemetry")
				if len(iot.Partitions) != testPartitions {
					t.Errorf("%d partitions reported, want %d", len(iot.Partitions), testPartitions)
				}
				var hw int64
				for _, p := range iot.Partitions {
					if !p.InKafka || p.FirstOffset != 0 {
						t.Errorf("partition %d: in kafka %v, first offset %d", p.Partition, p.InKafka, p.FirstOffset)
					}
					hw += p.HighWatermark
				}
				if hw != 41 {
					t.Errorf("watermarks add up to %d, want 41", hw)
				}
			},
		},
		{
			name: "an event missing",
			setup: func(f *fixture) {
				f.deliver("iot_telemetry", "iot-3")
				f.deliver("app_logs")
			},
			want: with(cleanTotals, func(c *Counts) { c.ClickHouseRows, c.Missing = 59, 1 }),
			check: func(t *testing.T, f *fixture, rep Report) {
				m := find(f.readBack("iot_telemetry"), "iot-3")
				want := []Example{{Partition: m.partition, EventID: "iot-3", KafkaOffset: &m.offset}}
				checkExamples(t, streamReport(t, rep, "iot_telemetry").Missing, want)
			},
		},
		{
			name: "a retry stored twice",
			setup: func(f *fixture) {
				msgs := f.deliver("iot_telemetry")
				f.deliver("app_logs")
				// The retry of iot-7, at its second offset.
				p := find(msgs, "iot-7").partition
				var second stored
				for _, m := range msgs[p] {
					if m.ok && m.event.ID == "iot-7" {
						second = m
					}
				}
				f.insert(f.stream("iot_telemetry"), p, sinks.Row{Offset: second.offset, Event: second.event})
			},
			want: with(cleanTotals, func(c *Counts) { c.ClickHouseRows, c.Duplicated, c.ExtraRows = 61, 1, 1 }),
			check: func(t *testing.T, f *fixture, rep Report) {
				msgs := f.readBack("iot_telemetry")
				m := find(msgs, "iot-7")
				var offs []int64
				for _, s := range msgs[m.partition] {
					if s.ok && s.event.ID == "iot-7" {
						offs = append(offs, s.offset)
					}
				}
				if len(offs) != 2 {
					t.Fatalf("iot-7 at offsets %v, want two", offs)
				}
				want := []Example{{Partition: m.partition, EventID: "iot-7", KafkaOffset: &m.offset, ClickHouseOffsets: offs}}
				checkExamples(t, streamReport(t, rep, "iot_telemetry").Duplicated, want)
			},
		},
		{
			name: "a row inserted three times",
			setup: func(f *fixture) {
				msgs := f.deliver("iot_telemetry")
				f.deliver("app_logs")
				m := find(msgs, "iot-5")
				row := sinks.Row{Offset: m.offset, Event: m.event}
				f.insert(f.stream("iot_telemetry"), m.partition, row)
				f.insert(f.stream("iot_telemetry"), m.partition, row)
			},
			want: with(cleanTotals, func(c *Counts) { c.ClickHouseRows, c.Duplicated, c.ExtraRows = 62, 1, 2 }),
		},
		{
			name: "a dead-lettered event is not missing",
			setup: func(f *fixture) {
				msgs := f.deliver("iot_telemetry", "iot-9")
				f.deliver("app_logs")
				m := find(msgs, "iot-9")
				f.deadLetter(workers.DeadLetter{
					Stream: "iot_telemetry", Topic: kafkatopic.Name(kafkatopic.DefaultPrefix, "iot_telemetry"),
					Partition: m.partition, Offset: m.offset, Key: []byte(m.event.Key), Value: m.value,
					Reason: "rejected by ClickHouse: code: 53, TYPE_MISMATCH",
				})
			},
			want: with(cleanTotals, func(c *Counts) { c.ClickHouseRows, c.DeadLettered, c.Expected = 59, 1, 59 }),
		},
		{
			name: "a dead letter of a retry's offset accounts for the event",
			setup: func(f *fixture) {
				msgs := f.deliver("iot_telemetry", "iot-7")
				f.deliver("app_logs")
				p := find(msgs, "iot-7").partition
				var retry stored
				for _, m := range msgs[p] {
					if m.ok && m.event.ID == "iot-7" {
						retry = m
					}
				}
				f.deadLetter(workers.DeadLetter{
					Stream: "iot_telemetry", Topic: kafkatopic.Name(kafkatopic.DefaultPrefix, "iot_telemetry"),
					Partition: p, Offset: retry.offset, Value: retry.value, Reason: "rejected by ClickHouse",
				})
			},
			want: with(cleanTotals, func(c *Counts) { c.ClickHouseRows, c.DeadLettered, c.Expected = 59, 1, 59 }),
		},
		{
			name: "a dead-lettered event that was stored anyway counts as stored",
			setup: func(f *fixture) {
				msgs := f.deliver("iot_telemetry")
				f.deliver("app_logs")
				m := find(msgs, "iot-9")
				f.deadLetter(workers.DeadLetter{
					Stream: "iot_telemetry", Topic: kafkatopic.Name(kafkatopic.DefaultPrefix, "iot_telemetry"),
					Partition: m.partition, Offset: m.offset, Value: m.value, Reason: "rejected by ClickHouse",
				})
			},
			want: cleanTotals,
		},
		{
			name: "an undecodable message in the dead-letter topic",
			setup: func(f *fixture) {
				f.produceRaw("iot_telemetry", kafka.Message{Key: []byte("sensor-1"), Value: []byte("not json {")})
				msgs := f.deliver("iot_telemetry")
				f.deliver("app_logs")
				bad := undecodableMessage(t, msgs)
				f.deadLetter(workers.DeadLetter{
					Stream: "iot_telemetry", Topic: kafkatopic.Name(kafkatopic.DefaultPrefix, "iot_telemetry"),
					Partition: bad.partition, Offset: bad.offset, Value: bad.value, Reason: "invalid event: not a JSON object",
				})
			},
			want: with(cleanTotals, func(c *Counts) { c.KafkaMessages, c.Undecodable, c.DeadLettered = 62, 1, 1 }),
		},
		{
			name: "an undecodable message in neither table nor dead-letter topic",
			setup: func(f *fixture) {
				f.produceRaw("iot_telemetry", kafka.Message{Key: []byte("sensor-1"), Value: []byte(`{"device_id":"sensor-1"}`)})
				f.deliver("iot_telemetry")
				f.deliver("app_logs")
			},
			want: with(cleanTotals, func(c *Counts) { c.KafkaMessages, c.Undecodable, c.Missing = 62, 1, 1 }),
			check: func(t *testing.T, f *fixture, rep Report) {
				ex := streamReport(t, rep, "iot_telemetry").Missing
				bad := undecodableMessage(t, f.readBack("iot_telemetry"))
				if len(ex) != 1 || ex[0].EventID != "" || ex[0].Partition != bad.partition || ex[0].KafkaOffset == nil || *ex[0].KafkaOffset != bad.offset ||
					!strings.Contains(ex[0].Problem, "does not decode") || !strings.Contains(ex[0].Problem, "received_at: required") {
					t.Errorf("examples %+v; want the undecodable message at %d/%d", ex, bad.partition, bad.offset)
				}
			},
		},
		{
			name: "a row Kafka does not hold",
			setup: func(f *fixture) {
				f.deliver("iot_telemetry")
				f.deliver("app_logs")
				f.insert(f.stream("app_logs"), 0, sinks.Row{Offset: 0, Event: logEvent("ghost", "svc-x", 0)})
			},
			want: with(cleanTotals, func(c *Counts) { c.ClickHouseRows, c.Unexpected = 61, 1 }),
			check: func(t *testing.T, f *fixture, rep Report) {
				checkExamples(t, streamReport(t, rep, "app_logs").Unexpected, []Example{{Partition: 0, EventID: "ghost", ClickHouseOffsets: []int64{0}}})
			},
		},
		{
			name: "rows of a partition the topic does not have",
			setup: func(f *fixture) {
				f.deliver("iot_telemetry")
				f.deliver("app_logs")
				f.insert(f.stream("app_logs"), 7, sinks.Row{Offset: 3, Event: logEvent("elsewhere", "svc-x", 0)})
			},
			want: with(cleanTotals, func(c *Counts) { c.ClickHouseRows, c.Unexpected = 61, 1 }),
			check: func(t *testing.T, f *fixture, rep Report) {
				s := streamReport(t, rep, "app_logs")
				last := s.Partitions[len(s.Partitions)-1]
				if last.Partition != 7 || last.InKafka || last.Unexpected != 1 {
					t.Errorf("last partition %+v; want 7, not in Kafka, 1 unexpected", last)
				}
			},
		},
		{
			name: "rows after the watermark are not checked",
			setup: func(f *fixture) {
				f.deliver("iot_telemetry")
				f.deliver("app_logs")
				f.insert(f.stream("app_logs"), 1, sinks.Row{Offset: 1000, Event: logEvent("later", "svc-x", 0)})
			},
			want: with(cleanTotals, func(c *Counts) { c.RowsAfterWatermark = 1 }),
		},
		{
			name:  "nothing delivered",
			setup: func(f *fixture) {},
			want:  with(cleanTotals, func(c *Counts) { c.ClickHouseRows, c.Missing = 0, 60 }),
			check: func(t *testing.T, f *fixture, rep Report) {
				if n := len(streamReport(t, rep, "iot_telemetry").Missing); n != DefaultExamples {
					t.Errorf("%d examples, want %d", n, DefaultExamples)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			seed(f)
			tt.setup(f)
			rep := run(t, f.config())
			if rep.Totals != tt.want {
				t.Errorf("totals\n got %+v\nwant %+v", rep.Totals, tt.want)
			}
			if clean := tt.want.Clean(); rep.Clean() != clean {
				t.Errorf("Clean() = %v, want %v", rep.Clean(), clean)
			}
			checkSums(t, rep)
			if tt.check != nil {
				tt.check(t, f, rep)
			}
			if t.Failed() {
				var b strings.Builder
				_ = rep.WriteText(&b)
				t.Logf("report:\n%s", b.String())
			}
		})
	}
}

// TestMissingTopicAndTable covers a stream that exists on neither side, and
// one whose topic is gone while its table still has rows.
func TestMissingTopicAndTable(t *testing.T) {
	f := newFixture(t)
	seed(f)
	f.deliver("iot_telemetry")
	f.deliver("app_logs")
	cfg := f.config()
	cfg.TopicPrefix = "other."
	rep := run(t, cfg)
	want := Counts{ClickHouseRows: 60, Unexpected: 60}
	if rep.Totals != want {
		t.Errorf("totals %+v, want %+v", rep.Totals, want)
	}
	if n := streamReport(t, rep, "app_logs").Notes; len(n) != 1 || !strings.Contains(n[0], "topic other.app_logs does not exist") {
		t.Errorf("notes %q", n)
	}

	cfg = f.config()
	cfg.ClickHouse.Database = f.db + "_none"
	rep = run(t, cfg)
	want = with(cleanTotals, func(c *Counts) { c.ClickHouseRows, c.Missing = 0, 60 })
	if rep.Totals != want {
		t.Errorf("totals %+v, want %+v", rep.Totals, want)
	}
	if n := streamReport(t, rep, "app_logs").Notes; len(n) != 1 || !strings.Contains(n[0], "does not exist") {
		t.Errorf("notes %q", n)
	}
}

// TestWait covers a pipeline still delivering: events that arrive, in
// ClickHouse or the dead-letter topic, while verify waits are not missing.
func TestWait(t *testing.T) {
	tests := []struct {
		name   string
		wait   time.Duration
		late   func(f *fixture, msgs map[int32][]stored)
		want   Counts
		waited func(time.Duration) bool
	}{
		{
			name: "rows arrive",
			wait: time.Minute,
			late: func(f *fixture, msgs map[int32][]stored) {
				for _, id := range []string{"iot-3", "iot-4"} {
					m := find(msgs, id)
					f.insert(f.stream("iot_telemetry"), m.partition, sinks.Row{Offset: m.offset, Event: m.event})
				}
			},
			want:   cleanTotals,
			waited: func(d time.Duration) bool { return d > 0 && d < 30*time.Second },
		},
		{
			name: "a letter arrives",
			wait: time.Minute,
			late: func(f *fixture, msgs map[int32][]stored) {
				m := find(msgs, "iot-4")
				f.insert(f.stream("iot_telemetry"), m.partition, sinks.Row{Offset: m.offset, Event: m.event})
				m = find(msgs, "iot-3")
				f.deadLetter(workers.DeadLetter{Stream: "iot_telemetry", Topic: kafkatopic.Name(kafkatopic.DefaultPrefix, "iot_telemetry"),
					Partition: m.partition, Offset: m.offset, Value: m.value, Reason: "rejected"})
			},
			want:   with(cleanTotals, func(c *Counts) { c.ClickHouseRows, c.DeadLettered, c.Expected = 59, 1, 59 }),
			waited: func(d time.Duration) bool { return d > 0 && d < 30*time.Second },
		},
		{
			name:   "the wait runs out",
			wait:   700 * time.Millisecond,
			late:   func(f *fixture, msgs map[int32][]stored) {},
			want:   with(cleanTotals, func(c *Counts) { c.ClickHouseRows, c.Missing = 58, 2 }),
			waited: func(d time.Duration) bool { return d >= 700*time.Millisecond && d < 5*time.Second },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			seed(f)
			msgs := f.deliver("iot_telemetry", "iot-3", "iot-4")
			f.deliver("app_logs")
			cfg := f.config()
			cfg.Wait = tt.wait

			// The late events land once verify has found them missing and
			// says it waits for them.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			waiting := &signalWriter{match: "waiting for 2 missing events", seen: make(chan struct{})}
			var wg sync.WaitGroup
			wg.Go(func() {
				select {
				case <-waiting.seen:
					tt.late(f, msgs)
				case <-ctx.Done():
				}
			})
			rep, err := Run(ctx, cfg, waiting)
			cancel()
			wg.Wait()
			if err != nil {
				t.Fatal(err)
			}
			if rep.Totals != tt.want {
				t.Errorf("totals\n got %+v\nwant %+v", rep.Totals, tt.want)
			}
			if !tt.waited(rep.Waited) {
				t.Errorf("waited %s", rep.Waited)
			}
			checkSums(t, rep)
			if !tt.want.Clean() {
				ex := streamReport(t, rep, "iot_telemetry").Missing
				var ids []string
				for _, e := range ex {
					ids = append(ids, e.EventID)
				}
				slices.Sort(ids)
				if !slices.Equal(ids, []string{"iot-3", "iot-4"}) {
					t.Errorf("missing examples %+v", ex)
				}
			}
		})
	}
}

// TestRunErrors covers what makes a check impossible: an error, not a report.
func TestRunErrors(t *testing.T) {
	f := newFixture(t)
	st := f.reg.Streams()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no brokers", Config{Streams: st}, "no Kafka brokers"},
		{"no streams", Config{Brokers: f.brokers}, "no streams"},
		{"ClickHouse unreachable", Config{Brokers: f.brokers, Streams: st, ClickHouse: clickhouse.Options{Addr: "127.0.0.1:1", DialTimeout: time.Second}}, "clickhouse: ping 127.0.0.1:1"},
		{"Kafka unreachable", Config{Brokers: []string{"127.0.0.1:1"}, Streams: st, ClickHouse: clickhouse.Options{Addr: chAddr()}, KafkaTimeout: time.Second}, "kafka: metadata"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Logger = quiet()
			_, err := Run(context.Background(), tt.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run: %v; want an error containing %q", err, tt.want)
			}
		})
	}
}

func undecodableMessage(t *testing.T, msgs map[int32][]stored) stored {
	t.Helper()
	for p := range int32(testPartitions) {
		for _, m := range msgs[p] {
			if !m.ok {
				return m
			}
		}
	}
	t.Fatal("no undecodable message")
	return stored{}
}

func streamReport(t *testing.T, rep Report, name string) StreamReport {
	t.Helper()
	for _, s := range rep.Streams {
		if s.Stream == name {
			return s
		}
	}
	t.Fatalf("no stream %s in the report", name)
	return StreamReport{}
}

// checkSums checks that the totals are the sums of their parts.
func checkSums(t *testing.T, rep Report) {
	t.Helper()
	var all Counts
	for _, s := range rep.Streams {
		var sum Counts
		for _, p := range s.Partitions {
			sum.add(p.Counts)
		}
		if sum != s.Totals {
			t.Errorf("%s: partitions add up to %+v, totals say %+v", s.Stream, sum, s.Totals)
		}
		all.add(s.Totals)
	}
	if all != rep.Totals {
		t.Errorf("streams add up to %+v, totals say %+v", all, rep.Totals)
	}
}

func checkExamples(t *testing.T, got, want []Example) {
	t.Helper()
	show := func(es []Example) string {
		var parts []string
		for _, e := range es {
			ko := "-"
			if e.KafkaOffset != nil {
				ko = fmt.Sprint(*e.KafkaOffset)
			}
			parts = append(parts, fmt.Sprintf("{p%d %q kafka %s ch %v %q}", e.Partition, e.EventID, ko, e.ClickHouseOffsets, e.Problem))
		}
		return strings.Join(parts, ", ")
	}
	if show(got) != show(want) {
		t.Errorf("examples\n got %s\nwant %s", show(got), show(want))
	}
}

// signalWriter closes seen when a write contains match.
type signalWriter struct {
	match string
	seen  chan struct{}
	once  sync.Once
}

func (w *signalWriter) Write(b []byte) (int, error) {
	if strings.Contains(string(b), w.match) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(b), nil
}
