package schemas

import (
	"hash/maphash"
	"math/rand/v2"
	"sync/atomic"
)

// Why interning. The decoders spent a third of their allocations on
// strings that every event repeats: the names of map entries
// ("temperature", "site"), tag values, enum values, device and service
// names. internTable keeps one copy of each short string it has seen,
// boxed once as well, so that a repeat costs a hash and a comparison
// instead of one or two allocations.
//
// It is shared by every goroutine decoding a stream, so it must be safe
// for concurrent use without a lock: a fixed table of atomic pointers
// indexed by a hash of the bytes, each slot holding the last string
// admitted to it. Its size is bounded: internSlots entries of at most
// internMaxLen bytes, a few hundred KiB per stream at worst.

const (
	// internSlots is the number of entries; a power of two.
	internSlots = 2048
	// internMaxLen bounds the strings interned, in bytes: longer ones are
	// rarely repeated names, and would make the table's bound larger.
	internMaxLen = 64
	// internReplace is how rarely (one miss in internReplace) a string
	// evicts the one in its slot: strings that never repeat (messages,
	// trace ids) then seldom push out those that do, and a string that
	// repeats gets in soon enough.
	internReplace = 8
)

// internTable is a bounded cache of short strings. The zero value is not
// usable; a nil *internTable interns nothing.
type internTable struct {
	seed  maphash.Seed
	slots [internSlots]atomic.Pointer[internEntry]
}

// internEntry is one interned string, and the same string in an interface,
// for values that are stored as any.
type internEntry struct {
	s string
	v any
}

func newInternTable() *internTable {
	return &internTable{seed: maphash.MakeSeed()}
}

// lookup returns the slot for b and the entry it holds, and whether that
// is b's.
func (t *internTable) lookup(b []byte) (slot *atomic.Pointer[internEntry], e *internEntry, hit bool) {
	slot = &t.slots[maphash.Bytes(t.seed, b)&(internSlots-1)]
	e = slot.Load()
	return slot, e, e != nil && e.s == string(b)
}

// admit reports whether a string that missed should take a slot that holds
// old.
func admit(old *internEntry) bool {
	return old == nil || rand.Uint32N(internReplace) == 0
}

// str returns b as a string, the interned copy if there is one.
func (t *internTable) str(b []byte) string {
	if t == nil || len(b) == 0 || len(b) > internMaxLen {
		return string(b)
	}
	slot, e, hit := t.lookup(b)
	switch {
	case hit:
		return e.s
	case admit(e):
		return t.store(slot, b).s
	}
	return string(b)
}

// value returns b as a string and as the same string in an interface: the
// interned copies if there are any.
func (t *internTable) value(b []byte) (string, any) {
	if t == nil || len(b) == 0 || len(b) > internMaxLen {
		s := string(b)
		return s, s
	}
	slot, e, hit := t.lookup(b)
	switch {
	case hit:
	case admit(e):
		e = t.store(slot, b)
	default:
		s := string(b)
		return s, s
	}
	return e.s, e.v
}

// store puts a new entry for b in slot.
func (t *internTable) store(slot *atomic.Pointer[internEntry], b []byte) *internEntry {
	e := &internEntry{s: string(b)}
	e.v = e.s
	slot.Store(e)
	return e
}
