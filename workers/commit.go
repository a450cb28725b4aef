package workers

import "context"

// progress is what one generation's lanes are done with: a Tracker per sink
// and topic. The group commits, per partition, the lowest of the sinks'
// done prefixes, so a replay after a crash starts no later than the
// slowest sink needs; each sink then starts from its own progress.
//
// It is owned by the generation's goroutine, apart from the Trackers, which
// the lanes update and which are safe for concurrent use.
type progress struct {
	bySink []map[string]*Tracker // by sink index, then topic
	// saves says, by sink index, that the sink keeps a progress log of its
	// own (an output): then its Tracker's Committed marks what was saved,
	// and the group never commits past that.
	saves    []bool
	reported map[string]map[int32]int64
}

func newProgress(sinks []Deliverer) *progress {
	p := &progress{bySink: make([]map[string]*Tracker, len(sinks)), saves: make([]bool, len(sinks)),
		reported: make(map[string]map[int32]int64)}
	for i, s := range sinks {
		p.bySink[i] = make(map[string]*Tracker)
		_, p.saves[i] = s.(progressSaver)
	}
	return p
}

// progressSaver is a Deliverer that keeps its progress itself (an output).
type progressSaver interface {
	SaveProgress(ctx context.Context, topic string, partition int32, offset int64) error
}

// tracker returns the Tracker of a sink's lanes of topic.
func (p *progress) tracker(sink int, topic string) *Tracker {
	tr := p.bySink[sink][topic]
	if tr == nil {
		tr = NewTracker()
		p.bySink[sink][topic] = tr
	}
	return tr
}

// committable returns, by topic and partition, the offset every sink is done
// up to, where it moved since the last commit.
func (p *progress) committable() map[string]map[int]int64 {
	out := make(map[string]map[int]int64)
	for topic, tr := range p.bySink[0] {
		for _, part := range tr.Partitions() {
			next, ok := p.lowest(topic, part)
			if !ok || next < 0 || next <= p.reported[topic][part] {
				continue
			}
			if out[topic] == nil {
				out[topic] = make(map[int]int64)
			}
			out[topic][int(part)] = next
		}
	}
	return out
}

// lowest is the lowest next offset over the sinks of a partition (for a
// sink with a progress log, the next offset after what it saved); ok is
// false when a sink does not track it (its lane never opened).
func (p *progress) lowest(topic string, part int32) (int64, bool) {
	var low int64
	for i := range p.bySink {
		tr := p.bySink[i][topic]
		if tr == nil {
			return 0, false
		}
		next, ok := tr.Next(part)
		if p.saves[i] {
			next, ok = tr.Reported(part)
		}
		if !ok {
			return 0, false
		}
		if i == 0 || next < low {
			low = next
		}
	}
	return low, true
}

// committed records offsets that reached Kafka.
func (p *progress) committed(offsets map[string]map[int]int64) {
	for topic, parts := range offsets {
		if p.reported[topic] == nil {
			p.reported[topic] = make(map[int32]int64)
		}
		for part, off := range parts {
			p.reported[topic][int32(part)] = off
		}
	}
}
