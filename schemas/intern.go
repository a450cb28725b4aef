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
	s, v, _ := t.valueHit(b)
	return s, v
}

// valueHit is value, and whether b was in the table already.
func (t *internTable) valueHit(b []byte) (string, any, bool) {
	if t == nil || len(b) == 0 || len(b) > internMaxLen {
		s := string(b)
		return s, s, false
	}
	slot, e, hit := t.lookup(b)
	switch {
	case hit:
	case admit(e):
		e = t.store(slot, b)
	default:
		s := string(b)
		return s, s, false
	}
	return e.s, e.v, hit
}

// internTrial is how many values of a string field one input looks up
// before it decides whether the field's values repeat.
const internTrial = 16

// internProbe follows, for one string field of one Decoder's input,
// whether interning its values pays. Values that do not repeat (messages,
// trace ids) cost a lookup each and are seldom found: after internTrial
// values with fewer than a quarter found, the rest of the input's values
// of the field are not looked up. It is per input, not shared, so that it
// needs no synchronization, and a field is tried again with each input.
type internProbe struct {
	tries, hits uint8
	off         bool
}

// value is t.value(b), or a plain copy once the probe is off.
func (p *internProbe) value(t *internTable, b []byte) (string, any) {
	if p.off {
		s := string(b)
		return s, s
	}
	s, v, hit := t.valueHit(b)
	if hit {
		p.hits++
	}
	if p.tries++; p.tries == internTrial {
		p.off = p.hits < internTrial/4
	}
	return s, v
}

// store puts a new entry for b in slot.
func (t *internTable) store(slot *atomic.Pointer[internEntry], b []byte) *internEntry {
	e := &internEntry{s: string(b)}
	e.v = e.s
	slot.Store(e)
	return e
}
