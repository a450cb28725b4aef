package workers

import (
	"fmt"
	"testing"
)

func TestProgressCommittable(t *testing.T) {
	// track is one sink's lane of a partition of topic "t": it starts at
	// start and is done with done (inclusive ranges).
	type track struct {
		sink  int
		topic string
		part  int32
		start int64
		done  [][2]int64
	}
	tests := []struct {
		name   string
		sinks  int
		tracks []track
		// committed are offsets that reached Kafka before the call.
		committed map[string]map[int]int64
		want      map[string]map[int]int64
	}{
		{
			name:  "the lowest of the sinks' done prefixes",
			sinks: 2,
			tracks: []track{
				{sink: 0, topic: "t", part: 0, start: 0, done: [][2]int64{{0, 29}}},
				{sink: 1, topic: "t", part: 0, start: 0, done: [][2]int64{{0, 19}}},
			},
			want: map[string]map[int]int64{"t": {0: 20}},
		},
		{
			name:  "an output ahead of the store",
			sinks: 2,
			tracks: []track{
				{sink: 0, topic: "t", part: 0, start: 0, done: [][2]int64{{0, 9}}},
				{sink: 1, topic: "t", part: 0, start: 50, done: [][2]int64{{50, 59}}},
			},
			want: map[string]map[int]int64{"t": {0: 10}},
		},
		{
			name:  "per partition and topic",
			sinks: 2,
			tracks: []track{
				{sink: 0, topic: "t", part: 0, start: 0, done: [][2]int64{{0, 9}}},
				{sink: 1, topic: "t", part: 0, start: 0, done: [][2]int64{{0, 4}}},
				{sink: 0, topic: "t", part: 1, start: 100, done: [][2]int64{{100, 109}}},
				{sink: 1, topic: "t", part: 1, start: 100, done: [][2]int64{{100, 119}}},
				{sink: 0, topic: "u", part: 0, start: 0, done: [][2]int64{{0, 2}}},
				{sink: 1, topic: "u", part: 0, start: 0, done: [][2]int64{{0, 2}}},
			},
			want: map[string]map[int]int64{"t": {0: 5, 1: 110}, "u": {0: 3}},
		},
		{
			name:  "a hole in a sink's done ranges holds the partition back",
			sinks: 1,
			tracks: []track{
				{sink: 0, topic: "t", part: 0, start: 0, done: [][2]int64{{0, 9}, {20, 29}}},
			},
			want: map[string]map[int]int64{"t": {0: 10}},
		},
		{
			name:  "a sink that does not track the partition blocks its commit",
			sinks: 2,
			tracks: []track{
				{sink: 0, topic: "t", part: 0, start: 0, done: [][2]int64{{0, 9}}},
				{sink: 0, topic: "t", part: 1, start: 0, done: [][2]int64{{0, 9}}},
				{sink: 1, topic: "t", part: 0, start: 0, done: [][2]int64{{0, 9}}},
			},
			want: map[string]map[int]int64{"t": {0: 10}},
		},
		{
			name:  "a sink that does not track the topic blocks its commit",
			sinks: 2,
			tracks: []track{
				{sink: 0, topic: "t", part: 0, start: 0, done: [][2]int64{{0, 9}}},
				{sink: 0, topic: "u", part: 0, start: 0, done: [][2]int64{{0, 9}}},
				{sink: 1, topic: "t", part: 0, start: 0, done: [][2]int64{{0, 9}}},
			},
			want: map[string]map[int]int64{"t": {0: 10}},
		},
		{
			name:  "only where it moved since the last commit",
			sinks: 2,
			tracks: []track{
				{sink: 0, topic: "t", part: 0, start: 0, done: [][2]int64{{0, 9}}},
				{sink: 1, topic: "t", part: 0, start: 0, done: [][2]int64{{0, 9}}},
				{sink: 0, topic: "t", part: 1, start: 0, done: [][2]int64{{0, 19}}},
				{sink: 1, topic: "t", part: 1, start: 0, done: [][2]int64{{0, 19}}},
			},
			committed: map[string]map[int]int64{"t": {0: 10, 1: 15}},
			want:      map[string]map[int]int64{"t": {1: 20}},
		},
		{
			name:  "nothing done from offset 0",
			sinks: 2,
			tracks: []track{
				{sink: 0, topic: "t", part: 0, start: 0},
				{sink: 1, topic: "t", part: 0, start: 0},
			},
			want: map[string]map[int]int64{},
		},
		{
			// What every sink holds at assignment is committed once: the
			// store may be ahead of the group after a crash.
			name:  "the sinks' starting point, once",
			sinks: 2,
			tracks: []track{
				{sink: 0, topic: "t", part: 0, start: 40},
				{sink: 1, topic: "t", part: 0, start: 30},
			},
			want: map[string]map[int]int64{"t": {0: 30}},
		},
		{
			name:  "a sink at a symbolic offset (nothing read yet) blocks the commit",
			sinks: 2,
			tracks: []track{
				{sink: 0, topic: "t", part: 0, start: 0, done: [][2]int64{{0, 9}}},
				{sink: 1, topic: "t", part: 0, start: -2},
			},
			want: map[string]map[int]int64{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProgress(make([]Deliverer, tt.sinks))
			for _, tr := range tt.tracks {
				k := p.tracker(tr.sink, tr.topic)
				k.Start(tr.part, tr.start)
				for _, d := range tr.done {
					k.Done(tr.part, d[0], d[1])
				}
			}
			if tt.committed != nil {
				p.committed(tt.committed)
			}
			got := p.committable()
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("committable = %v, want %v", got, tt.want)
			}
			// Once committed, nothing is committable until a sink moves.
			p.committed(got)
			if again := p.committable(); len(again) != 0 {
				t.Errorf("committable after the commit = %v, want none", again)
			}
		})
	}
}

// The group's offset moves when the slowest sink does.
func TestProgressFollowsTheSlowestSink(t *testing.T) {
	p := newProgress(make([]Deliverer, 3))
	for i := range 3 {
		p.tracker(i, "t").Start(0, 0)
	}
	steps := []struct {
		sink       int
		first, end int64
		want       string
	}{
		{0, 0, 9, "map[]"},
		{1, 0, 19, "map[]"},
		{2, 0, 4, "map[t:map[0:5]]"},
		{2, 5, 14, "map[t:map[0:10]]"},
		{0, 10, 29, "map[t:map[0:15]]"},
		{1, 20, 29, "map[]"},
		{2, 15, 29, "map[t:map[0:30]]"},
	}
	for i, s := range steps {
		p.tracker(s.sink, "t").Done(0, s.first, s.end)
		got := p.committable()
		if fmt.Sprint(got) != s.want {
			t.Fatalf("step %d: committable = %v, want %s", i, got, s.want)
		}
		p.committed(got)
	}
}
