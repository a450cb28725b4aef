package workers

import (
	"sort"
	"sync"
)

// Tracker records which offset ranges of each partition are done and tells
// which offset can be committed: the end of the contiguous done prefix.
// Batches may finish in any order; a range that finishes before an earlier
// one waits until the gap before it closes.
//
// A Tracker is safe for concurrent use.
type Tracker struct {
	mu    sync.Mutex
	parts map[int32]*partProgress
}

type partProgress struct {
	next     int64      // first offset not yet known done
	pending  [][2]int64 // done ranges after a gap, sorted by start
	reported int64      // last value handed out by Committable
}

// NewTracker returns an empty Tracker.
func NewTracker() *Tracker { return &Tracker{parts: make(map[int32]*partProgress)} }

// Start begins tracking a partition whose next offset to process is next.
// A negative next (Kafka's "first" or "last" offset, unresolved) is fixed by
// the first Done.
func (t *Tracker) Start(partition int32, next int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.parts[partition] = &partProgress{next: next, reported: next}
}

// Done marks offsets first..last (inclusive) of a partition as done.
func (t *Tracker) Done(partition int32, first, last int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.parts[partition]
	if p == nil {
		return
	}
	if p.next < 0 {
		// Started at a symbolic offset (first or last): the first range done
		// tells where the partition really began.
		p.next, p.reported = first, first
	}
	if last < p.next {
		return
	}
	if first > p.next {
		i := sort.Search(len(p.pending), func(i int) bool { return p.pending[i][0] >= first })
		p.pending = append(p.pending, [2]int64{})
		copy(p.pending[i+1:], p.pending[i:])
		p.pending[i] = [2]int64{first, last}
		return
	}
	p.next = last + 1
	// Fold in ranges that the new prefix now reaches.
	for len(p.pending) > 0 && p.pending[0][0] <= p.next {
		if p.pending[0][1]+1 > p.next {
			p.next = p.pending[0][1] + 1
		}
		p.pending = p.pending[1:]
	}
}

// Next returns the first offset of the partition not known to be done, the
// offset a consumer commits (Kafka commits name the next offset to read).
func (t *Tracker) Next(partition int32) (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.parts[partition]
	if p == nil {
		return 0, false
	}
	return p.next, true
}

// Reported returns the last offset of the partition that Committed
// recorded (or where it started).
func (t *Tracker) Reported(partition int32) (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.parts[partition]
	if p == nil {
		return 0, false
	}
	return p.reported, true
}

// Partitions returns the partitions tracked.
func (t *Tracker) Partitions() []int32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]int32, 0, len(t.parts))
	for p := range t.parts {
		out = append(out, p)
	}
	return out
}

// Committable returns, per partition, the next offset where it moved since
// the last call, so a committer sends only what changed.
func (t *Tracker) Committable() map[int32]int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[int32]int64)
	for part, p := range t.parts {
		if p.next > p.reported {
			out[part] = p.next
		}
	}
	return out
}

// Committed records that the offsets returned by Committable reached Kafka.
func (t *Tracker) Committed(offsets map[int32]int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for part, off := range offsets {
		if p := t.parts[part]; p != nil && off > p.reported {
			p.reported = off
		}
	}
}
