package schemas

import (
	"bytes"
	"slices"
	"strconv"
	"time"
)

// Why slots. A collector only checks an event and writes it out again:
// building its Go values (a string per field, a map per map field, each
// boxed in an interface, then the Event's own map) cost a third of its
// CPU in allocation and hashing, and Encode then took them apart again.
// The Decoder keeps each value of the event it reads in a slot of its
// field, typed, with strings and map names as bytes in one arena; Encode
// writes from the slots, and only Decoded.Event builds Go values.

// slot is the value of one field of the event being read, as its field's
// type says: str for a string or enum, x for a number, t for a timestamp,
// b for a boolean, ents for a map.
type slot struct {
	str  span
	ents span // into eventState.entries
	x    float64
	t    time.Time
	b    bool
}

// span is a range of eventState.arena or eventState.entries.
type span struct{ from, to int }

// mapEntry is one entry of a map field: its name, and its value, in the
// arena for a map(string) and in x for a map(number).
type mapEntry struct {
	k, v span
	x    float64
}

// keep copies b into the arena and returns where it is.
func (e *eventState) keep(b []byte) span {
	from := len(e.arena)
	e.arena = append(e.arena, b...)
	return span{from, len(e.arena)}
}

// bytes returns what sp holds of the arena.
func (e *eventState) bytes(sp span) []byte { return e.arena[sp.from:sp.to:sp.to] }

// set puts v, a value of field f as normalize returns it, into slot i. It
// reports false for a value of a map field, which normalize never gives
// for the strings a Decoder fills fields with.
func (e *eventState) set(f *Field, i int, v any) bool {
	sl := &e.slots[i]
	switch x := v.(type) {
	case string:
		from := len(e.arena)
		e.arena = append(e.arena, x...)
		sl.str = span{from, len(e.arena)}
	case time.Time:
		sl.t = x
	case float64:
		sl.x = x
	case bool:
		sl.b = x
	default:
		return false
	}
	return true
}

// value returns slot i of field f as Validate normalizes it.
func (e *eventState) value(f *Field, i int) any {
	sl := &e.slots[i]
	switch f.Type {
	case TypeString, TypeEnum:
		return string(e.bytes(sl.str))
	case TypeTimestamp:
		return sl.t
	case TypeNumber:
		return sl.x
	case TypeBoolean:
		return sl.b
	case TypeNumberMap:
		m := make(map[string]float64, sl.ents.to-sl.ents.from)
		for _, en := range e.entries[sl.ents.from:sl.ents.to] {
			m[string(e.bytes(en.k))] = en.x
		}
		return m
	}
	m := make(map[string]string, sl.ents.to-sl.ents.from)
	for _, en := range e.entries[sl.ents.from:sl.ents.to] {
		m[string(e.bytes(en.k))] = string(e.bytes(en.v))
	}
	return m
}

// appendSlot appends the member of field i, as appendField appends the
// value that value(f, i) returns. It reports false for a number JSON
// cannot hold, which checkNumber never lets through.
func (d *Decoder) appendSlot(b []byte, i int) ([]byte, bool) {
	e, f := &d.ev, &d.s.Fields[i]
	sl := &e.slots[i]
	b = appendName(b, f.Name, d.s.byName != nil)
	switch f.Type {
	case TypeString, TypeEnum:
		return appendString(b, e.bytes(sl.str)), true
	case TypeTimestamp:
		return appendTime(b, sl.t), true
	case TypeNumber:
		return appendFloat(b, sl.x)
	case TypeBoolean:
		return strconv.AppendBool(b, sl.b), true
	}
	ents := e.entries[sl.ents.from:sl.ents.to]
	sortEntries(e, ents)
	b = append(b, '{')
	ok := true
	for j, en := range ents {
		if j > 0 {
			b = append(b, ',')
		}
		b = appendString(b, e.bytes(en.k))
		b = append(b, ':')
		if f.Type == TypeNumberMap {
			b, ok = appendFloat(b, en.x)
		} else {
			b = appendString(b, e.bytes(en.v))
		}
		if !ok {
			return nil, false
		}
	}
	return append(b, '}'), true
}

// sortEntries sorts a map's entries by name, as Encode writes them: an
// insertion sort for the few entries most maps have.
func sortEntries(e *eventState, ents []mapEntry) {
	less := func(a, b mapEntry) int { return bytes.Compare(e.bytes(a.k), e.bytes(b.k)) }
	if len(ents) > 12 {
		slices.SortFunc(ents, less)
		return
	}
	for i := 1; i < len(ents); i++ {
		for j := i; j > 0 && less(ents[j], ents[j-1]) < 0; j-- {
			ents[j], ents[j-1] = ents[j-1], ents[j]
		}
	}
}

// seenLinear is how many names of a map the Decoder compares a new name
// with one by one; past it, it keeps them in a set.
const seenLinear = 16

// seen reports whether the map whose entries start at from already has an
// entry named k. Names are compared one by one, so that a typical map
// needs no set; a map of more names than seenLinear gets one, so that a
// hostile map of thousands costs no more than a map of them would.
func (e *eventState) seen(from int, k []byte) bool {
	ents := e.entries[from:]
	if len(ents) <= seenLinear {
		for _, en := range ents {
			if bytes.Equal(e.bytes(en.k), k) {
				return true
			}
		}
		return false
	}
	if e.names == nil || e.namesFrom != from {
		e.names, e.namesFrom = make(map[string]struct{}, 2*seenLinear), from
		for _, en := range ents {
			e.names[string(e.bytes(en.k))] = struct{}{}
		}
	}
	_, dup := e.names[string(k)]
	return dup
}

// addEntry adds entry k, which seen did not find, to the map whose entries
// start at from.
func (e *eventState) addEntry(from int, k []byte, v mapEntry) {
	v.k = e.keep(k)
	if e.names != nil && e.namesFrom == from {
		e.names[string(k)] = struct{}{}
	}
	e.entries = append(e.entries, v)
}
