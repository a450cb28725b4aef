package status

import (
	"errors"
	"slices"
	"testing"
)

func TestMergeIngestAndWork(t *testing.T) {
	ingest := &Status{
		Role:   "ingest",
		Stages: []Stage{StageReceived, StageInKafka, StageDeadLettered},
		Streams: []Stream{{Name: "iot_telemetry", Stages: map[Stage]Figure{
			StageReceived: {Total: 1000, Rate: 100}, StageInKafka: {Total: 990, Rate: 99}, StageDeadLettered: {Total: 1, Rate: 0.5},
		}}},
		Partitions: []Partition{{Stream: "iot_telemetry", Partition: 0, BacklogAgeSeconds: 2}},
		Sinks:      []Sink{{Name: "kafka", State: SinkUp, Rate: 99}},
	}
	work1 := &Status{
		Role:   "work",
		Stages: []Stage{StageStored, StagePublished, StageDeadLettered},
		Streams: []Stream{{Name: "iot_telemetry", Stages: map[Stage]Figure{
			StageStored: {Total: 500, Rate: 40}, StagePublished: {Total: 500, Rate: 41}, StageDeadLettered: {Total: 2, Rate: 1},
		}}},
		Partitions: []Partition{{Stream: "iot_telemetry", Partition: 0, BacklogAgeSeconds: 3, Lag: map[string]float64{"clickhouse": 10}}},
		Sinks:      []Sink{{Name: "nats", State: SinkUp, Rate: 41}, {Name: "clickhouse", State: SinkUp, Rate: 40}},
	}
	work2 := &Status{
		Role:   "work",
		Stages: []Stage{StageStored, StageDeadLettered},
		Streams: []Stream{{Name: "app_logs", Stages: map[Stage]Figure{
			StageStored: {Total: 70, Rate: 7},
		}}, {Name: "iot_telemetry", Stages: map[Stage]Figure{
			StageStored: {Total: 500, Rate: 45},
		}}},
		Partitions: []Partition{{Stream: "iot_telemetry", Partition: 1, Alarm: true, Lag: map[string]float64{"clickhouse": 3}}},
		Sinks:      []Sink{{Name: "clickhouse", State: SinkFailing, Rate: 52, ErrorRate: 1, FailingStreams: []string{"app_logs"}}},
	}
	v := Merge([]Source{
		{URL: "http://a", Status: ingest},
		{URL: "http://b", Status: work1},
		{URL: "http://down", Err: errors.New("connection refused")},
		{URL: "http://c", Status: work2},
	})

	if len(v.Processes) != 4 || !v.Processes[0].Up || v.Processes[2].Up || v.Processes[2].Err != "connection refused" || v.Processes[3].Role != "work" {
		t.Errorf("processes %+v", v.Processes)
	}
	if want := []Stage{StageReceived, StageInKafka, StageStored, StagePublished, StageDeadLettered}; !slices.Equal(v.Stages, want) {
		t.Errorf("stages %v, want %v", v.Stages, want)
	}
	if len(v.Streams) != 2 || v.Streams[0].Name != "app_logs" || v.Streams[1].Name != "iot_telemetry" {
		t.Fatalf("streams %+v", v.Streams)
	}
	iot := v.Streams[1].Stages
	for stage, want := range map[Stage]Figure{
		StageReceived:     {Total: 1000, Rate: 100},
		StageStored:       {Total: 1000, Rate: 85},
		StagePublished:    {Total: 500, Rate: 41},
		StageDeadLettered: {Total: 3, Rate: 1.5},
	} {
		if iot[stage] != want {
			t.Errorf("iot_telemetry %s = %+v, want %+v (summed)", stage, iot[stage], want)
		}
	}
	if len(v.Partitions) != 2 {
		t.Fatalf("partitions %+v, want 2 joined rows", v.Partitions)
	}
	if p := v.Partitions[0]; p.BacklogAgeSeconds != 3 || p.Lag["clickhouse"] != 10 {
		t.Errorf("partition 0 %+v, want the larger age 3 and the worker's lag 10", p)
	}
	if p := v.Partitions[1]; !p.Alarm || p.Lag["clickhouse"] != 3 {
		t.Errorf("partition 1 %+v", p)
	}
	if names := sinkNames(v.Sinks); !slices.Equal(names, []string{"kafka", "clickhouse", "nats"}) {
		t.Fatalf("sinks %v, want kafka, clickhouse, nats", names)
	}
	if ch := v.Sinks[1]; ch.State != SinkFailing || ch.Rate != 92 || ch.ErrorRate != 1 || !slices.Equal(ch.FailingStreams, []string{"app_logs"}) {
		t.Errorf("clickhouse %+v, want failing (the worse), 92/s summed", ch)
	}
}

func sinkNames(sinks []Sink) []string {
	var out []string
	for _, s := range sinks {
		out = append(out, s.Name)
	}
	return out
}

func TestMergeNothingAnswers(t *testing.T) {
	v := Merge([]Source{{URL: "http://x", Err: errors.New("timeout")}})
	if len(v.Processes) != 1 || v.Processes[0].Up || len(v.Streams) != 0 || len(v.Stages) != 0 {
		t.Errorf("view %+v", v)
	}
}
