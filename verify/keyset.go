package verify

import (
	"fmt"

	"github.com/sluicehq/sluice/eventkey"
)

// key stands in for an event_id in verify's sets: see package eventkey.
// A partition of ten million events then costs about 25 bytes per event in
// a Go map instead of the string and its header.
type key = eventkey.Key

// The value kept for each event_id of a partition packs two numbers into
// one word, which keeps a map slot at 24 bytes instead of 32: the event's
// first Kafka offset relative to the partition's first offset, and how many
// ClickHouse rows carry the event_id (saturating; exact counts of extra rows
// are kept by the caller as rows arrive).
const (
	relOffsetBits = 48
	relOffsetMask = 1<<relOffsetBits - 1
	maxRowCount   = 1<<(64-relOffsetBits) - 1
)

// keySet is the set of event_ids of one Kafka partition.
type keySet struct {
	first int64
	m     map[key]uint64
}

// newKeySet sizes the map for the partition up front: growing a map of
// millions of entries step by step costs both time and, transiently, twice
// the memory.
func newKeySet(first, hw int64) (*keySet, error) {
	if hw-first > relOffsetMask {
		return nil, fmt.Errorf("partition holds %d offsets, more than verify can track (%d)", hw-first, int64(relOffsetMask))
	}
	hint := hw - first
	// A hint beyond what the partition may plausibly need would allocate
	// memory for nothing when most messages are retries or invalid.
	if hint > 50_000_000 {
		hint = 50_000_000
	}
	return &keySet{first: first, m: make(map[key]uint64, hint)}, nil
}

// addMessage records that the event_id k is at offset off. It reports
// whether k is new: a known k is a producer's retry written again. Messages
// may come in any order; the lowest offset is kept, since that is where the
// workers write the event, and where a late row of it can first appear.
func (s *keySet) addMessage(k key, off int64) bool {
	rel := uint64(off - s.first)
	if v, ok := s.m[k]; ok {
		if rel < v&relOffsetMask {
			s.m[k] = v&^relOffsetMask | rel
		}
		return false
	}
	s.m[k] = rel
	return true
}

// addRow counts one ClickHouse row of k and returns how many there are now,
// or ok=false when Kafka does not hold k.
func (s *keySet) addRow(k key) (rows uint64, ok bool) {
	v, ok := s.m[k]
	if !ok {
		return 0, false
	}
	rows = v >> relOffsetBits
	if rows < maxRowCount {
		rows++
		s.m[k] = v&relOffsetMask | rows<<relOffsetBits
	}
	return rows, true
}

// get returns k's first offset and its row count.
func (s *keySet) get(k key) (off int64, rows uint64, ok bool) {
	v, ok := s.m[k]
	if !ok {
		return 0, 0, false
	}
	return s.first + int64(v&relOffsetMask), v >> relOffsetBits, true
}

// each calls fn for every event_id with its first offset and row count.
func (s *keySet) each(fn func(k key, off int64, rows uint64)) {
	for k, v := range s.m {
		fn(k, s.first+int64(v&relOffsetMask), v>>relOffsetBits)
	}
}
