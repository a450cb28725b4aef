package workers

import "github.com/sluicehq/sluice/eventkey"

// idTable is a dedupe window's set of ids, each with the offset it was
// first seen at: a hash table with open addressing and linear probing, kept
// at most two thirds full, in place of a Go map.
//
// Why: the window holds up to millions of ids, far more than the caches
// hold, and the store's lane asks for every event's id, adds it, and drops
// the oldest. In a Go map the three cost some 400 ns an event, a tenth of
// the work role's CPU: the lookup of an id that is not there probes past
// the markers that deletions leave, and rehashes a key that is a hash
// already. Here a key's place is its own low bits, a miss ends at the first
// empty slot, mostly in the same cache line, and a deletion moves the
// entries after it back rather than leaving a marker.
//
// Its memory: 24 bytes a slot. Full, the table has from 1.5 to 3 slots an
// id, so at most 72 bytes; with its queue entry an id takes at most 96
// bytes, within the 112 the memory plan counts (measured with a Go map).
// It grows four times at a step, never past the size it has full
// (maxSlots), so that it never holds more than full either.
type idTable struct {
	slots []idSlot // a power of two of them, or none
	n     int
	// maxSlots is the table's size once it holds the most ids it is
	// meant to: growing stops there. 0 means no such bound.
	maxSlots int
}

// slotsFor returns the size of a table that holds ids ids at most two
// thirds full, with room for one more being added before one goes.
func slotsFor(ids int) int {
	n := minSlots
	for 2*n < 3*(ids+2) {
		n *= 2
	}
	return n
}

type idSlot struct {
	key eventkey.Key
	off int64 // the first offset plus one; 0 marks an empty slot
}

// minSlots is the size of a new table.
const minSlots = 1024

// home is k's first slot. Keys are seeded hashes: their bits are uniform,
// and nobody outside the process can choose them.
func (t *idTable) home(k eventkey.Key) int { return int(k[0] & uint64(len(t.slots)-1)) }

// find returns the slot holding k, or the empty slot where k would go.
func (t *idTable) find(k eventkey.Key) (int, bool) {
	mask := len(t.slots) - 1
	for i := t.home(k); ; i = (i + 1) & mask {
		switch s := &t.slots[i]; {
		case s.off == 0:
			return i, false
		case s.key == k:
			return i, true
		}
	}
}

// get returns the offset k was first seen at.
func (t *idTable) get(k eventkey.Key) (int64, bool) {
	if t.n == 0 {
		return 0, false
	}
	if i, ok := t.find(k); ok {
		return t.slots[i].off - 1, true
	}
	return 0, false
}

// set records off for k.
func (t *idTable) set(k eventkey.Key, off int64) {
	if 3*(t.n+1) > 2*len(t.slots) {
		t.grow()
	}
	i, ok := t.find(k)
	if !ok {
		t.n++
	}
	t.slots[i] = idSlot{k, off + 1}
}

// delete removes k. The entries after it in its run move back into the
// hole where their probe passes it (Knuth's algorithm R), so that every
// entry stays reachable from its home without deletion markers.
func (t *idTable) delete(k eventkey.Key) {
	if t.n == 0 {
		return
	}
	hole, ok := t.find(k)
	if !ok {
		return
	}
	mask := len(t.slots) - 1
	for j := (hole + 1) & mask; t.slots[j].off != 0; j = (j + 1) & mask {
		// The entry at j stays where it is if its home lies cyclically
		// after the hole and at or before j: its probe does not pass
		// the hole.
		h := t.home(t.slots[j].key)
		if (hole < j && hole < h && h <= j) || (hole > j && (hole < h || h <= j)) {
			continue
		}
		t.slots[hole] = t.slots[j]
		hole = j
	}
	t.slots[hole] = idSlot{}
	t.n--
}

// grow makes the table four times larger, or its first, but no larger
// than maxSlots unless it must (and then twice larger).
//
// Why four: filling a window moves each id to a new table once on
// average, where doubling moved it twice or more; the rehashes were 4%
// of the work role's CPU profile while the window filled.
func (t *idTable) grow() {
	old := t.slots
	size := max(minSlots, 4*len(old))
	if t.maxSlots > 0 {
		size = max(min(size, t.maxSlots), minSlots, 2*len(old))
	}
	t.slots, t.n = make([]idSlot, size), 0
	for _, s := range old {
		if s.off != 0 {
			i, _ := t.find(s.key)
			t.slots[i] = s
			t.n++
		}
	}
}

// touch reads, for each of keys, the slots a lookup of it starts with,
// and returns a sum of what it read so that the compiler keeps the reads.
//
// Why: each lookup in a table far larger than the caches waits on a cache
// miss, and a batch's lookups, made one at a time between other work, wait
// on them one after another. Reads of slots that do not depend on each
// other, issued in a tight loop, wait on their misses together; the
// lookups after them find the slots in the cache. It reads a key's home
// slot and the third after it, which lie in the cache lines a probe run of
// ordinary length crosses (24-byte slots, at most two thirds full).
func (t *idTable) touch(keys []eventkey.Key) int64 {
	if len(t.slots) == 0 {
		return 0
	}
	mask := uint64(len(t.slots) - 1)
	var sum int64
	for _, k := range keys {
		h := k[0] & mask
		sum += t.slots[h].off + t.slots[(h+3)&mask].off
	}
	return sum
}
