package workers

import "sync"

// sharedDecodeSlots is how many decoded events a partition keeps for its
// other lanes: enough for lanes about a second apart at a few thousand
// events per second per partition. Lanes further apart than that decode
// on their own, as they would without sharing.
const sharedDecodeSlots = 256

// sharedDecode lets a partition's lanes decode each message once. The
// store's lane and each output's lane read the same offsets, usually close
// together; decoding was a quarter of the work role's CPU, half of it
// repeated. The first lane to decode an offset leaves the result in a ring
// indexed by offset; the others take it from there.
//
// The ring bounds what is held: an event no other lane takes (an output
// that is down, or far behind) is overwritten by the offset a ring's
// length later. Events are read-only once decoded (sinks never modify
// them), so lanes can share one.
//
// Safe for concurrent use: the pool prepares several batches of one
// partition at once.
type sharedDecode struct {
	mu sync.Mutex
	// takers is how many other lanes read each offset (lanes less one).
	takers int8
	slots  [sharedDecodeSlots]sharedSlot
}

type sharedSlot struct {
	off  int64
	left int8 // lanes yet to take it; 0: the slot is free
	dec  Decoded
}

func newSharedDecode(lanes int) *sharedDecode {
	if lanes < 2 {
		return nil // nothing to share
	}
	return &sharedDecode{takers: int8(min(lanes-1, 127))}
}

// take fills b.Decoded from the ring where another lane has decoded, and
// reports the indexes it could not fill.
func (s *sharedDecode) take(b *Batch) (missing []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, m := range b.Messages {
		sl := &s.slots[uint64(m.Offset)%sharedDecodeSlots]
		if sl.left == 0 || sl.off != m.Offset {
			missing = append(missing, i)
			continue
		}
		b.Decoded[i] = sl.dec
		if sl.left--; sl.left == 0 {
			sl.dec = Decoded{} // let the event go with the last taker
		}
	}
	return missing
}

// leave puts what this lane decoded at the indexes in the ring for the
// other lanes.
func (s *sharedDecode) leave(b *Batch, idx []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, i := range idx {
		off := b.Messages[i].Offset
		s.slots[uint64(off)%sharedDecodeSlots] = sharedSlot{off: off, left: s.takers, dec: b.Decoded[i]}
	}
}
