package workers

import "sync"

// sharedDecodeBytes bounds, per partition, the messages (by encoded size)
// one lane has decoded and left for the others: a third of a second of a
// partition at 20,000 events/s over 16 partitions, more than a batch.
// Decoded, they take about three times that; membudget counts it per
// reader.
const sharedDecodeBytes = 128 << 10

// sharedDecode lets a partition's lanes decode each message once. The
// store's lane and each output's lane read the same offsets, usually a
// fraction of a second apart, but cut their batches on their own; decoding
// was a quarter of the work role's CPU, half of it repeated. The first lane
// to decode an offset leaves the result here; the others take it.
//
// What is held is bounded by sharedDecodeBytes: past it, a lane leaves
// nothing more, and the others decode for themselves, as without sharing.
// An event a lane will never ask for (it skipped ahead, or it is far
// behind and reads it later) is let go when room is needed: each lane's
// position is known from the batches it prepares.
//
// Events are read-only once decoded (sinks never modify them), so lanes can
// share one. Safe for concurrent use: the pool prepares several batches of
// one partition at once.
type sharedDecode struct {
	mu    sync.Mutex
	lanes int
	held  map[int64]*heldEvent
	bytes int
	// pos is, by lane, the first offset of the newest batch it prepared:
	// it will not ask for offsets below it again.
	pos []int64
}

// heldEvent is one decoded message waiting for the lanes in need (a bit
// per lane index).
type heldEvent struct {
	dec  Decoded
	need uint8
	size int
}

// maxSharingLanes is how many lanes a bitmask of need holds.
const maxSharingLanes = 8

func newSharedDecode(lanes int) *sharedDecode {
	if lanes < 2 || lanes > maxSharingLanes {
		return nil // nothing to share, or more lanes than need bits
	}
	pos := make([]int64, lanes)
	for i := range pos {
		pos[i] = -1
	}
	return &sharedDecode{lanes: lanes, held: make(map[int64]*heldEvent), pos: pos}
}

// take fills b.Decoded from what other lanes decoded, for lane, and
// returns the indexes it could not fill.
func (s *sharedDecode) take(lane int, b *Batch) (missing []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pos[lane] = max(s.pos[lane], b.First())
	bit := uint8(1) << lane
	for i, m := range b.Messages {
		e := s.held[m.Offset]
		if e == nil || e.need&bit == 0 {
			missing = append(missing, i)
			continue
		}
		b.Decoded[i] = e.dec
		if e.need &^= bit; e.need == 0 {
			s.drop(m.Offset, e)
		}
	}
	return missing
}

// leave holds what lane decoded at the indexes for the other lanes, as far
// as room allows.
func (s *sharedDecode) leave(lane int, b *Batch, idx []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	others := (uint8(1)<<s.lanes - 1) &^ (uint8(1) << lane)
	pruned := false
	for _, i := range idx {
		m := b.Messages[i]
		need := others
		for j := range s.lanes {
			if s.pos[j] > m.Offset {
				need &^= 1 << j // lane j is past it already
			}
		}
		size := len(m.Value) + len(m.Key)
		if need == 0 || s.held[m.Offset] != nil {
			continue
		}
		if s.bytes+size > sharedDecodeBytes {
			if pruned {
				return
			}
			s.prune()
			pruned = true
			if s.bytes+size > sharedDecodeBytes {
				return
			}
		}
		s.held[m.Offset] = &heldEvent{dec: b.Decoded[i], need: need, size: size}
		s.bytes += size
	}
}

// prune lets go of what no lane will ask for any more.
func (s *sharedDecode) prune() {
	for off, e := range s.held {
		for j := range s.lanes {
			if s.pos[j] > off {
				e.need &^= 1 << j
			}
		}
		if e.need == 0 {
			s.drop(off, e)
		}
	}
}

func (s *sharedDecode) drop(off int64, e *heldEvent) {
	delete(s.held, off)
	s.bytes -= e.size
}
