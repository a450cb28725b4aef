package status

import (
	"cmp"
	"maps"
	"slices"
	"time"
)

// rate is how fast a counter grew from old to cur over dt seconds. A
// counter that went down was reset (a series deleted and made again), so
// all of cur is new since then.
func rate(old, cur, dt float64) float64 {
	if dt <= 0 {
		return 0
	}
	if cur < old {
		return cur / dt
	}
	return (cur - old) / dt
}

// stagesOf lists the stages a role counts, in pipeline order: the
// collectors' for ingest, the workers' for work (published only where an
// output such as NATS is configured), both for all.
func stagesOf(role string, hasOutput bool) []Stage {
	ingest := role == "ingest" || role == "all"
	work := role == "work" || role == "all"
	var out []Stage
	for _, s := range AllStages {
		switch s {
		case StageReceived, StageRejected, StageRefused, StageInKafka:
			if ingest {
				out = append(out, s)
			}
		case StageStored:
			if work {
				out = append(out, s)
			}
		case StagePublished:
			if work && hasOutput {
				out = append(out, s)
			}
		case StageDeadLettered:
			if ingest || work {
				out = append(out, s)
			}
		}
	}
	return out
}

// hasOutput says whether the process delivers to an output besides the
// store: NATS registers its connection gauge when configured.
func (r *reading) hasOutput() bool {
	if r.natsUp != nil {
		return true
	}
	for sink := range r.sinkRows {
		if sink != sinkStore && sink != sinkKafka {
			return true
		}
	}
	return false
}

// build computes the status shown at cur, with rates since old (the oldest
// reading of the window; old == cur gives zero rates). known are streams
// to show even before their first event; started stands in for the
// process's start time where the process collector is absent.
func build(role string, known []string, started time.Time, old, cur *reading) Status {
	dt := cur.at.Sub(old.at).Seconds()
	if !cur.startedAt.IsZero() {
		started = cur.startedAt
	}
	st := Status{
		Version:       ShapeVersion,
		Role:          role,
		Stages:        stagesOf(role, cur.hasOutput()),
		StartedAt:     started.UTC(),
		UptimeSeconds: cur.at.Sub(started).Seconds(),
		SampledAt:     cur.at.UTC(),
		WindowSeconds: dt,
		Memory:        cur.memory,
	}
	names := map[string]bool{}
	for _, n := range known {
		names[n] = true
	}
	maps.Copy(names, cur.streams)
	for _, name := range slices.Sorted(maps.Keys(names)) {
		s := Stream{Name: name, Stages: make(map[Stage]Figure, len(st.Stages))}
		for _, stage := range st.Stages {
			k := countKey{name, stage}
			s.Stages[stage] = Figure{Total: cur.counts[k], Rate: rate(old.counts[k], cur.counts[k], dt)}
		}
		st.Streams = append(st.Streams, s)
	}
	st.Partitions = partitions(cur)
	st.Sinks = sinks(role, old, cur, dt)
	return st
}

// partitions lists every partition that has a backlog age or a lag.
func partitions(cur *reading) []Partition {
	keys := map[partKey]bool{}
	for k := range cur.age {
		keys[k] = true
	}
	for k := range cur.lag {
		keys[k] = true
	}
	out := make([]Partition, 0, len(keys))
	for k := range keys {
		p := Partition{Stream: k.stream, Partition: k.partition, BacklogAgeSeconds: cur.age[k], Alarm: cur.alarm[k]}
		if lag := cur.lag[k]; len(lag) > 0 {
			p.Lag = maps.Clone(lag)
		}
		out = append(out, p)
	}
	slices.SortFunc(out, comparePartitions)
	return out
}

func comparePartitions(a, b Partition) int {
	return cmp.Or(cmp.Compare(a.Stream, b.Stream), cmp.Compare(a.Partition, b.Partition))
}

// sinks gives the state of what the role writes to: Kafka for the
// collectors, the store and outputs for the workers.
func sinks(role string, old, cur *reading, dt float64) []Sink {
	var names []string
	if role == "ingest" || role == "all" {
		names = append(names, sinkKafka)
	}
	if role == "work" || role == "all" {
		names = append(names, sinkStore)
		if cur.natsUp != nil {
			names = append(names, "nats")
		}
		var others []string
		for sink := range cur.sinkRows {
			if sink != sinkKafka && !slices.Contains(names, sink) {
				others = append(others, sink)
			}
		}
		slices.Sort(others)
		names = append(names, others...)
	}
	out := make([]Sink, 0, len(names))
	for _, name := range names {
		s := Sink{
			Name:      name,
			State:     SinkUp,
			Rate:      rate(old.sinkRows[name], cur.sinkRows[name], dt),
			ErrorRate: rate(old.sinkErrors[name], cur.sinkErrors[name], dt),
		}
		for stream, failing := range cur.failing[name] {
			if failing {
				s.FailingStreams = append(s.FailingStreams, stream)
			}
		}
		slices.Sort(s.FailingStreams)
		if len(s.FailingStreams) > 0 {
			s.State = SinkFailing
		}
		s.State = worse(s.State, connState(name, cur))
		out = append(out, s)
	}
	return out
}

// connState is what a sink's connection says of it: NATS's connection
// gauge, Kafka's circuit breaker (half-open: probing after failures).
func connState(name string, cur *reading) SinkState {
	switch {
	case name == "nats" && cur.natsUp != nil && *cur.natsUp == 0:
		return SinkDown
	case name == sinkKafka && cur.breaker != nil && *cur.breaker >= 2:
		return SinkDown
	case name == sinkKafka && cur.breaker != nil && *cur.breaker >= 1:
		return SinkFailing
	}
	return SinkUp
}

var severity = map[SinkState]int{SinkUp: 0, SinkFailing: 1, SinkDown: 2}

// worse returns the more severe of two states.
func worse(a, b SinkState) SinkState {
	if severity[b] > severity[a] {
		return b
	}
	return a
}
