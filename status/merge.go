package status

import (
	"cmp"
	"maps"
	"slices"
)

// Source is one process's answer to GET /api/status, or why there is none.
type Source struct {
	// URL is where the process was asked.
	URL string
	// Status is its answer; nil when it did not answer.
	Status *Status
	// Err says why there is no Status.
	Err error
}

// View is the statuses of several processes (the ingest and work
// processes of one deployment, say) as one: rates summed, tables joined.
type View struct {
	// Processes has one entry per Source, in the order given.
	Processes []Process
	// Stages is every stage any process counts, in pipeline order.
	Stages []Stage
	// Streams holds each stream's figures summed over the processes: the
	// ingest processes' received and in_kafka beside the work processes'
	// stored and published. Sorted by name.
	Streams []Stream
	// Partitions joins the processes' partition tables: one row per
	// stream partition, with every sink's lag from the worker that reports
	// it and the largest backlog age any process reports.
	Partitions []Partition
	// Sinks has one row per sink name: the worst state any process
	// reports, rates summed, failing streams joined.
	Sinks []Sink
}

// Process is one process of a View.
type Process struct {
	// URL is where it was asked.
	URL string
	// Up is false when it did not answer; Err then says why.
	Up  bool
	Err string
	// Role, UptimeSeconds and Memory are as in its Status.
	Role          string
	UptimeSeconds float64
	Memory        Memory
}

// Merge makes one View of several processes' statuses. Sources that did
// not answer appear as processes that are down and add nothing else.
func Merge(sources []Source) View {
	var v View
	stages := map[Stage]bool{}
	streams := map[string]map[Stage]Figure{}
	parts := map[partKey]*Partition{}
	sinks := map[string]*Sink{}
	for _, src := range sources {
		p := Process{URL: src.URL}
		if src.Status == nil {
			if src.Err != nil {
				p.Err = src.Err.Error()
			}
			v.Processes = append(v.Processes, p)
			continue
		}
		st := src.Status
		p.Up, p.Role, p.UptimeSeconds, p.Memory = true, st.Role, st.UptimeSeconds, st.Memory
		v.Processes = append(v.Processes, p)
		for _, s := range st.Stages {
			stages[s] = true
		}
		for _, s := range st.Streams {
			addStream(streams, s)
		}
		for _, p := range st.Partitions {
			joinPartition(parts, p)
		}
		for _, s := range st.Sinks {
			joinSink(sinks, s)
		}
	}
	for _, s := range AllStages {
		if stages[s] {
			v.Stages = append(v.Stages, s)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(streams)) {
		v.Streams = append(v.Streams, Stream{Name: name, Stages: streams[name]})
	}
	for _, p := range parts {
		v.Partitions = append(v.Partitions, *p)
	}
	slices.SortFunc(v.Partitions, comparePartitions)
	for _, s := range sinks {
		slices.Sort(s.FailingStreams)
		s.FailingStreams = slices.Compact(s.FailingStreams)
		v.Sinks = append(v.Sinks, *s)
	}
	slices.SortFunc(v.Sinks, func(a, b Sink) int {
		return cmp.Or(cmp.Compare(sinkOrder(a.Name), sinkOrder(b.Name)), cmp.Compare(a.Name, b.Name))
	})
	return v
}

func addStream(streams map[string]map[Stage]Figure, s Stream) {
	sum := streams[s.Name]
	if sum == nil {
		sum = map[Stage]Figure{}
		streams[s.Name] = sum
	}
	for stage, f := range s.Stages {
		t := sum[stage]
		sum[stage] = Figure{Total: t.Total + f.Total, Rate: t.Rate + f.Rate}
	}
}

// joinPartition adds one process's row of a partition. Each process's
// backlog watcher reads the same group's backlog, so the ages are one
// measurement taken at different moments: the largest is the one to worry
// about. Lag is per worker lane; during a rebalance two workers may both
// report a partition's sink, and the larger lag is again the safe figure.
func joinPartition(parts map[partKey]*Partition, p Partition) {
	k := partKey{p.Stream, p.Partition}
	j := parts[k]
	if j == nil {
		j = &Partition{Stream: p.Stream, Partition: p.Partition}
		parts[k] = j
	}
	j.BacklogAgeSeconds = max(j.BacklogAgeSeconds, p.BacklogAgeSeconds)
	j.Alarm = j.Alarm || p.Alarm
	for sink, lag := range p.Lag {
		if j.Lag == nil {
			j.Lag = map[string]float64{}
		}
		if old, ok := j.Lag[sink]; !ok || lag > old {
			j.Lag[sink] = lag
		}
	}
}

func joinSink(sinks map[string]*Sink, s Sink) {
	j := sinks[s.Name]
	if j == nil {
		j = &Sink{Name: s.Name, State: SinkUp}
		sinks[s.Name] = j
	}
	j.State = worse(j.State, s.State)
	j.Rate += s.Rate
	j.ErrorRate += s.ErrorRate
	j.FailingStreams = append(j.FailingStreams, s.FailingStreams...)
}

// sinkOrder puts sinks in the order events reach them.
func sinkOrder(name string) int {
	switch name {
	case sinkKafka:
		return 0
	case sinkStore:
		return 1
	}
	return 2
}
