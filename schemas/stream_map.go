package schemas

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// mapValue reads the object at the next byte, '{', as the value of map
// field f into sl, at depth. The first bad entry is the field's problem:
// the entries after it are skipped, not kept.
func (d *Decoder) mapValue(f *Field, sl *slot, depth int) (string, error) {
	d.pos++
	from := len(d.ev.entries)
	n, problem := 0, ""
	c, ok := d.nonSpace()
	if !ok {
		return "", d.endErr()
	}
	if c == '}' {
		d.pos++
	}
	for c != '}' {
		if err := d.expect('"', "looking for beginning of object key string"); err != nil {
			return "", err
		}
		keep := f.keyLimit() + 1
		if problem != "" {
			keep = 0
		}
		k, over, err := d.str(d.key[:0], keep)
		d.key = k[:0]
		if err != nil {
			return "", err
		}
		if err := d.expect(':', "after object key"); err != nil {
			return "", err
		}
		if n++; problem == "" {
			problem = f.entryName(k, over, d.validUTF8(k), n)
		}
		if problem == "" {
			problem, err = d.entry(f, from, k, depth)
		} else {
			err = d.skip(depth)
		}
		if err != nil {
			return "", err
		}
		if c, ok = d.nonSpace(); !ok {
			return "", d.endErr()
		}
		if c != ',' && c != '}' {
			return "", d.syntax("after object key:value pair")
		}
		d.pos++
	}
	if problem == "" {
		problem = f.checkMapSize(n)
	}
	sl.ents = span{from, len(d.ev.entries)}
	return problem, nil
}

// entryName says what is wrong with the name k (cut, if over; valid if
// it is valid UTF-8) of entry n of a map, if anything but a duplicate, which the entry's value finds.
func (f *Field) entryName(k []byte, over, valid bool, n int) string {
	if f.MaxEntries > 0 && n > f.MaxEntries {
		return fmt.Sprintf("more than %d entries", f.MaxEntries)
	}
	if over {
		return fmt.Sprintf("name %q longer than %d bytes", Truncate(string(k), 32), f.keyLimit())
	}
	// Only a bad name is converted: checkKey's messages would make every
	// name escape, an allocation per entry.
	if len(k) == 0 || len(k) > f.keyLimit() {
		return f.checkKey(string(k))
	}
	if !valid {
		return fmt.Sprintf("name %q is not valid UTF-8", strings.ToValidUTF8(Truncate(string(k), 32), "\uFFFD"))
	}
	return ""
}

// entry reads the value of entry k of map field f, whose entries start at
// from, and keeps the entry, or returns its problem. A problem of the
// value only stands for an entry that is not a duplicate.
func (d *Decoder) entry(f *Field, from int, k []byte, depth int) (string, error) {
	e := &d.ev
	dup := e.seen(from, k)
	problem, en, err := d.entryValue(f, k, depth)
	switch {
	case err != nil:
		return "", err
	case dup:
		return Truncate(string(k), 64) + ": duplicate key", nil
	case problem != "":
		return problem, nil
	}
	e.addEntry(from, k, en)
	return "", nil
}

// entryValue reads the value of entry k of map field f.
func (d *Decoder) entryValue(f *Field, k []byte, depth int) (string, mapEntry, error) {
	c, ok := d.nonSpace()
	if !ok {
		return "", mapEntry{}, d.endErr()
	}
	if f.Type == TypeNumberMap {
		if kindAt(c) != "number" {
			return fmt.Sprintf("%s: must be a number, got %s", Truncate(string(k), 64), kindAt(c)), mapEntry{}, d.skip(depth)
		}
		x, problem, err := d.num()
		if problem != "" {
			problem = Truncate(string(k), 64) + ": " + problem
		}
		return problem, mapEntry{x: x}, err
	}
	if c != '"' {
		return fmt.Sprintf("%s: must be a string, got %s", Truncate(string(k), 64), kindAt(c)), mapEntry{}, d.skip(depth)
	}
	keep := math.MaxInt
	if f.MaxLength > 0 {
		keep = f.MaxLength
	}
	d.pos++
	b, over, err := d.str(d.lit[:0], keep)
	d.lit = b[:0]
	switch {
	case err != nil:
		return "", mapEntry{}, err
	case over:
		return fmt.Sprintf("%s: longer than %d bytes", Truncate(string(k), 64), f.MaxLength), mapEntry{}, nil
	case !d.validUTF8(b):
		return Truncate(string(k), 64) + ": invalid UTF-8", mapEntry{}, nil
	}
	return "", mapEntry{v: d.ev.keep(b)}, nil
}

// finish completes the event just read: fills what the Decoder's Fill
// gives, checks required fields, and lists problems or points out at the
// valid event's values.
func (d *Decoder) finish(out *Decoded) {
	e := &d.ev
	for i, k := range d.fillKeys {
		if !e.filled[i] {
			d.fillMember(k, d.cfg.Fill[k])
		}
	}
	for i := range d.s.Fields {
		if f := &d.s.Fields[i]; f.Required && e.state[i] <= fieldNull {
			e.add(i+1, f.Name, "required")
		}
	}
	if len(e.problems) > 0 {
		slices.SortStableFunc(e.problems, func(a, b rankedProblem) int {
			if a.rank != b.rank {
				return a.rank - b.rank
			}
			if a.rank == d.rankUnknown() {
				return strings.Compare(a.Field, b.Field)
			}
			return 0
		})
		e.out = e.out[:0]
		for _, p := range e.problems {
			e.out = append(e.out, p.FieldError)
		}
		out.Problems, out.Omitted = e.out, e.omitted
		return
	}
	out.ID, out.s, out.d = e.id, d.s, d
}

// partitionKey returns the partition key of the valid event just read, as Validate
// takes it from the map, in the Decoder's memory.
func (d *Decoder) partitionKey() []byte {
	e := &d.ev
	if k := d.keyField; k >= 0 && e.state[k] == fieldSet {
		return e.bytes(e.slots[k].str)
	}
	return nil
}

// fillMember sets name to value for an event that did not set it, as if
// it had.
func (d *Decoder) fillMember(name, value string) {
	e := &d.ev
	i, known := d.s.index[name]
	switch {
	case name == FieldEventID:
		if problem := checkEventID(value); problem != "" {
			e.add(0, FieldEventID, problem)
		} else {
			e.id, e.idState = value, fieldSet
		}
	case name == FieldReceivedAt:
		e.add(d.rankReceived(), FieldReceivedAt, "set by Sluice, not by producers")
	case !known:
		d.unknown([]byte(name))
	default:
		f := &d.s.Fields[i]
		v, problem := f.normalize(value)
		if problem == "" && !e.set(f, i, v) {
			problem = "cannot be filled from a string"
		}
		if problem != "" {
			e.state[i] = fieldBad
			e.add(i+1, f.Name, problem)
		} else {
			e.state[i] = fieldSet
		}
	}
}
