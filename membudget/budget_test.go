package membudget

import (
	"strings"
	"testing"
)

// devShape is `sluice dev` with its defaults: two streams of 8 partitions,
// ClickHouse and NATS, 8 MiB bodies, 1 MiB MQTT packets.
func devShape(limit int64) Shape {
	return Shape{Limit: limit, MaxBodyBytes: 8 << 20, Streams: 2, Partitions: 8, Sinks: 2, MQTTMaxPacketBytes: 1 << 20, Dev: true}
}

// TestPlan pins the split of the documented limits (docs/memory.md quotes
// these figures) and checks the rules every plan keeps.
func TestPlan(t *testing.T) {
	tests := []struct {
		name  string
		shape Shape
		want  Budget // Limit, Base and Queues are checked by rule
	}{
		{name: "256MiB", shape: devShape(256 << 20), want: Budget{
			GoLimit: 224 << 20, AdmissionEvents: 100_000, AdmissionBytes: 8 << 20, HTTPParsing: 2, HTTPConnections: 64,
			ProducerBatchBytes: 1_004_096, FetchMaxBytes: 1_114_124, Readers: 32, LaneBytes: 4 << 20, BatchMaxBytes: 1 << 20,
			DedupeMaxIDs: 100_000, MQTTInflight: 4, MQTTInflightBytes: 4 << 20, MQTTReadBytes: 4 << 20, SyslogBufferBytes: 2 << 20, SyslogUDPQueueBytes: 2 << 20,
			SyslogLongMessageBytes: 1 << 20, SyslogConnections: 76, RELPConnections: 16, MQTTConnections: 76, RELPBufferBytes: 512 << 10,
			NATSMaxMemory: 4 << 20, NATSMaxPending: 1 << 20,
		}},
		{name: "512MiB", shape: devShape(512 << 20), want: Budget{
			GoLimit: 483_183_821, AdmissionEvents: 176_242, AdmissionBytes: 56_397_713, HTTPParsing: 2, HTTPConnections: 80,
			ProducerBatchBytes: 1 << 20, FetchMaxBytes: 1_214_408, Readers: 32, FetchShareBytes: 200_569, LaneBytes: 7_403_409, BatchMaxBytes: 1_850_852,
			DedupeMaxIDs: 271_916, MQTTInflight: 5, MQTTInflightBytes: 5_798_857, MQTTReadBytes: 5_798_856, SyslogBufferBytes: 3_380_794, SyslogUDPQueueBytes: 3_380_794,
			SyslogLongMessageBytes: 1_690_397, SyslogConnections: 102, RELPConnections: 16, MQTTConnections: 102, RELPBufferBytes: 1_807_930,
			NATSMaxMemory: 5_798_856, NATSMaxPending: 1_449_714,
		}},
		{name: "2GiB", shape: devShape(2 << 30), want: Budget{
			GoLimit: 1_932_735_284, AdmissionEvents: 200_000, AdmissionBytes: 105_291_314, HTTPParsing: 9, HTTPConnections: 336,
			ProducerBatchBytes: 1 << 20, FetchMaxBytes: 2 << 20, Readers: 32, FetchShareBytes: 512 << 10, LaneBytes: 56_297_010, BatchMaxBytes: 8 << 20,
			DedupeMaxIDs: 2_891_216, MQTTInflight: 28, MQTTInflightBytes: 30_245_657, MQTTReadBytes: 30_245_657, SyslogBufferBytes: 24_478_489, SyslogUDPQueueBytes: 16 << 20,
			SyslogLongMessageBytes: 8 << 20, SyslogConnections: 492, RELPConnections: 48, MQTTConnections: 492, RELPBufferBytes: 16 << 20,
			NATSMaxMemory: 30_245_657, NATSMaxPending: 7_561_414,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Plan(tt.shape)
			if err != nil {
				t.Fatal(err)
			}
			t.Log(got.LogAttrs()...)
			want := tt.want
			want.Limit, want.Base, want.Queues = tt.shape.Limit, got.Base, got.Queues
			if got != want {
				t.Errorf("Plan(%+v)\n got %#v\nwant %#v", tt.shape, got, want)
			}
			checkRules(t, tt.shape, got)
		})
	}
}

// checkRules checks what every plan of a sane shape keeps: the pieces fit
// the Go limit with room for garbage, and the Kafka sizes stay valid.
func checkRules(t *testing.T, s Shape, b Budget) {
	t.Helper()
	if err := b.Fits(); err != nil {
		t.Error(err)
	}
	if b.GoLimit >= b.Limit || b.Limit-b.GoLimit < 32<<20 {
		t.Errorf("Go limit %d leaves less than 32 MiB of limit %d", b.GoLimit, b.Limit)
	}
	if b.ProducerBatchBytes < maxEventBytes || b.ProducerBatchBytes > kafkaMessageMax {
		t.Errorf("producer batch %d outside [max event %d, message.max.bytes %d]", b.ProducerBatchBytes, maxEventBytes, kafkaMessageMax)
	}
	if !s.NoWork && b.FetchMaxBytes < minFetchBytes {
		t.Errorf("fetch %d cannot hold a whole record batch (%d)", b.FetchMaxBytes, minFetchBytes)
	}
	if !s.NoIngest && (b.HTTPParsing < 2 || b.HTTPConnections < minHTTPConns || b.AdmissionBytes < s.MaxBodyBytes) {
		t.Errorf("a collector's bound is below its floor: %+v", b)
	}
	if !s.NoIngest && (b.SyslogConnections < minSyslogConns || b.RELPConnections < minRELPConns || (s.Dev && b.MQTTConnections < minMQTTConns) ||
		b.SyslogLongMessageBytes < 512<<10 || b.RELPBufferBytes < minRELPBuffer) {
		t.Errorf("a connection bound is below its floor: %+v", b)
	}
	if !s.NoIngest && b.MQTTInflightBytes < int64(b.MQTTInflight)*int64(s.MQTTMaxPacketBytes) {
		t.Errorf("MQTT in-flight bytes %d hold fewer than the count's %d packets", b.MQTTInflightBytes, b.MQTTInflight)
	}
	// The embedded broker's read budget holds two of the largest packets,
	// each counted twice (mqtt.EmbeddedConfig.MaxReadBytes).
	if embedded := s.Dev && !s.NoIngest; embedded != (b.MQTTReadBytes >= 4*int64(s.MQTTMaxPacketBytes)) {
		t.Errorf("MQTT read budget %d in dev %v (an ingest process: %v), packets of %d", b.MQTTReadBytes, s.Dev, !s.NoIngest, s.MQTTMaxPacketBytes)
	}
	if !s.NoWork && b.DedupeMaxIDs < 100_000 {
		t.Errorf("the dedupe window is below its floor: %+v", b)
	}
	if s.Dev != (b.NATSMaxMemory > 0) {
		t.Errorf("NATS bounds %d in dev %v", b.NATSMaxMemory, s.Dev)
	}
}

// Explicit settings replace their bound and nothing else; smaller bodies
// and a process without the embedded servers leave more to the rest.
func TestPlanVariants(t *testing.T) {
	plain, err := Plan(devShape(512 << 20))
	if err != nil {
		t.Fatal(err)
	}

	// The heaviest valid 8 MiB body: 100,000 events of the smallest size,
	// each with its envelope and per-message overhead. The default ceiling
	// admits it; 256MiB cannot afford to and admits the body's bytes.
	heaviest := int64(8<<20) + 100_000*(bytesPerEventOverhead+envelopeBytes)
	if plain.AdmissionBytes < heaviest {
		t.Errorf("512MiB admits %d bytes, less than the heaviest largest body (%d)", plain.AdmissionBytes, heaviest)
	}
	if p256, _ := Plan(devShape(256 << 20)); p256.AdmissionBytes >= heaviest || p256.AdmissionBytes < 8<<20 {
		t.Errorf("256MiB admits %d bytes, want the body's bytes (%d) and not the heaviest body's (%d)", p256.AdmissionBytes, 8<<20, heaviest)
	}

	over := devShape(512 << 20)
	over.Overrides = Budget{DedupeMaxIDs: 4_000_000, MQTTInflight: 1000, HTTPParsing: 8, HTTPConnections: 4096}
	got, err := Plan(over)
	if err != nil {
		t.Fatal(err)
	}
	want := plain
	want.DedupeMaxIDs, want.MQTTInflight, want.HTTPParsing, want.HTTPConnections, want.Queues = 4_000_000, 1000, 8, 4096, got.Queues
	if got != want {
		t.Errorf("overrides:\n got %#v\nwant %#v", got, want)
	}
	if err := got.Fits(); err == nil || !strings.Contains(err.Error(), "exceed") {
		t.Errorf("Fits() with 4M ids, 1000 MiB of MQTT and 8 slots of 16 MiB in 512 MiB = %v, want it to say they exceed", err)
	}

	small := devShape(256 << 20)
	small.MaxBodyBytes = 512 << 10
	s, err := Plan(small)
	if err != nil {
		t.Fatal(err)
	}
	checkRules(t, small, s)
	if s.HTTPParsing <= 2 {
		t.Errorf("512 KiB bodies in 256 MiB: %d HTTP slots, want more than with 8 MiB bodies (2)", s.HTTPParsing)
	}

	run := devShape(512 << 20)
	run.Dev = false
	r, err := Plan(run)
	if err != nil {
		t.Fatal(err)
	}
	checkRules(t, run, r)
	if r.DedupeMaxIDs <= plain.DedupeMaxIDs {
		t.Errorf("without the embedded servers: %d dedupe ids, want more than dev's %d", r.DedupeMaxIDs, plain.DedupeMaxIDs)
	}

	wide := devShape(256 << 20)
	wide.Partitions = 64
	w, err := Plan(wide)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Fits(); err == nil {
		t.Errorf("256 readers of a whole record batch each in 256 MiB: Fits() = nil, want an error")
	}
}

func TestPlanRefuses(t *testing.T) {
	for _, s := range []Shape{devShape(64 << 20), {Limit: 512 << 20}} {
		if _, err := Plan(s); err == nil {
			t.Errorf("Plan(%+v) accepted", s)
		}
	}
}

// A process that runs one role gives the other role's memory to its own
// bounds: a work process has larger lanes and a larger dedupe window than
// one that runs both, an ingest process more admission and parsing.
func TestPlanOneRole(t *testing.T) {
	run := func(noIngest, noWork bool) Shape {
		s := devShape(512 << 20)
		s.Dev, s.NoIngest, s.NoWork = false, noIngest, noWork
		return s
	}
	both, err := Plan(run(false, false))
	if err != nil {
		t.Fatal(err)
	}
	work, err := Plan(run(true, false))
	if err != nil {
		t.Fatal(err)
	}
	ingest, err := Plan(run(false, true))
	if err != nil {
		t.Fatal(err)
	}
	checkRules(t, run(true, false), work)
	checkRules(t, run(false, true), ingest)
	if work.LaneBytes <= both.LaneBytes || work.DedupeMaxIDs <= both.DedupeMaxIDs || work.Readers != both.Readers {
		t.Errorf("work only: lanes %d, dedupe %d, readers %d; both roles: %d, %d, %d", work.LaneBytes, work.DedupeMaxIDs, work.Readers, both.LaneBytes, both.DedupeMaxIDs, both.Readers)
	}
	if ingest.AdmissionBytes <= both.AdmissionBytes || ingest.HTTPParsing < both.HTTPParsing || ingest.Readers != 0 {
		t.Errorf("ingest only: admission %d, parsing %d, readers %d; both roles: %d, %d", ingest.AdmissionBytes, ingest.HTTPParsing, ingest.Readers, both.AdmissionBytes, both.HTTPParsing)
	}
	if work.SyslogBufferBytes+work.SyslogUDPQueueBytes+work.SyslogLongMessageBytes+work.RELPBufferBytes != 0 ||
		work.SyslogConnections+work.RELPConnections+work.MQTTConnections != 0 {
		t.Errorf("work only: collectors' bounds planned: %+v", work)
	}
	if _, err := Plan(run(true, true)); err == nil {
		t.Error("Plan of a process with no role: no error")
	}
	t.Log("work:", work.LogAttrs())
	t.Log("ingest:", ingest.LogAttrs())
}
