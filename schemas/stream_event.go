package schemas

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// This file is the Decoder's validation: each member of an event object is
// checked against the schema as it is read, with Validate's checks and
// messages, and only what a valid event keeps is built.

// nameKeep is how much of a member name the Decoder keeps: every field
// name is shorter (identRE), and an unknown one is quoted in at most 64
// bytes; one more byte tells that the name was cut.
const nameKeep = 65

// What is known of one field of the event being read.
const (
	fieldAbsent uint8 = iota
	fieldNull
	fieldSet
	fieldBad
)

// rankedProblem is a problem with its place in schema order.
type rankedProblem struct {
	rank int
	FieldError
}

// eventState is the Decoder's scratch for one event, reused for the next.
type eventState struct {
	slots     []slot              // by field index
	state     []uint8             // by field index
	arena     []byte              // the bytes of the slots' strings and map names
	entries   []mapEntry          // the entries of the slots' maps
	names     map[string]struct{} // the names of a large map, for seen
	namesFrom int                 // where the map of names starts in entries
	id        string
	idState   uint8
	received  bool
	next      int    // the field after the last one read
	filled    []bool // by index in fillKeys: the event set the name itself
	problems  []rankedProblem
	omitted   int
	out       []FieldError
}

func (e *eventState) init(s *Stream) {
	e.slots = make([]slot, len(s.Fields))
	e.state = make([]uint8, len(s.Fields))
}

func (e *eventState) reset() {
	clear(e.state)
	e.arena, e.entries, e.names = e.arena[:0], e.entries[:0], nil
	clear(e.filled)
	e.id, e.idState, e.received, e.next = "", fieldAbsent, false, 0
	e.problems, e.omitted = e.problems[:0], 0
}

// add records a problem, or only counts it once MaxProblems are listed.
func (e *eventState) add(rank int, field, problem string) {
	if len(e.problems) >= MaxProblems {
		e.omitted++
		return
	}
	e.problems = append(e.problems, rankedProblem{rank, FieldError{field, problem}})
}

// Ranks of the names that are not the stream's fields, after field i's i+1.
func (d *Decoder) rankReceived() int { return len(d.s.Fields) + 1 }
func (d *Decoder) rankUnknown() int  { return len(d.s.Fields) + 2 }

// event reads an event object at the next byte, '{', at depth.
func (d *Decoder) event(out *Decoded, depth int) error {
	d.ev.reset()
	d.pos++
	c, ok := d.nonSpace()
	if !ok {
		return d.endErr()
	}
	if c == '}' {
		d.pos++
		d.finish(out)
		return nil
	}
	for {
		if err := d.expect('"', "looking for beginning of object key string"); err != nil {
			return err
		}
		key, over, err := d.str(d.key[:0], nameKeep)
		d.key = key[:0]
		if err != nil {
			return err
		}
		if err := d.expect(':', "after object key"); err != nil {
			return err
		}
		if err := d.member(key, over, depth); err != nil {
			return err
		}
		c, ok := d.nonSpace()
		switch {
		case !ok:
			return d.endErr()
		case c == '}':
			d.pos++
			d.finish(out)
			return nil
		case c != ',':
			return d.syntax("after object key:value pair")
		}
		d.pos++
	}
}

// member reads the value of the member named key (cut, if over) of an
// event at depth.
func (d *Decoder) member(key []byte, over bool, depth int) error {
	e := &d.ev
	if len(d.cfg.Fill) > 0 {
		if i, ok := slices.BinarySearch(d.fillKeys, string(key)); ok && !over {
			e.filled[i] = true
		}
	}
	switch i, known := d.fieldIndex(key); {
	case over || !known && string(key) != FieldEventID && string(key) != FieldReceivedAt:
		d.unknown(key)
		return d.skip(depth)
	case string(key) == FieldEventID:
		return d.eventID(depth)
	case string(key) == FieldReceivedAt:
		problem := "set by Sluice, not by producers"
		if e.received {
			problem = "duplicate key"
		}
		e.received = true
		e.add(d.rankReceived(), FieldReceivedAt, problem)
		return d.skip(depth)
	default:
		f := &d.s.Fields[i]
		e.next = i + 1
		if e.state[i] != fieldAbsent {
			e.state[i] = fieldBad
			e.add(i+1, f.Name, "duplicate key")
			return d.skip(depth)
		}
		null, problem, err := d.fieldValue(f, &e.slots[i], depth)
		switch {
		case err != nil:
			return err
		case problem != "":
			e.state[i] = fieldBad
			e.add(i+1, f.Name, problem)
		case null:
			e.state[i] = fieldNull
		default:
			e.state[i] = fieldSet
		}
		return nil
	}
}

// fieldIndex looks up the field named key, trying first the one after the
// field last read.
func (d *Decoder) fieldIndex(key []byte) (int, bool) { return d.s.fieldNamed(key, d.ev.next) }

// unknown reports a name that is not the stream's. The name is the
// producer's: what it adds to the answer is bounded, and made valid UTF-8
// so that the answer is.
func (d *Decoder) unknown(key []byte) {
	e := &d.ev
	if len(e.problems) >= MaxProblems {
		e.omitted++
		return
	}
	name, problem := Truncate(string(key), 64), "unknown field"
	switch {
	case name == "":
		name = `""`
	case !utf8.ValidString(name):
		name, problem = strings.ToValidUTF8(name, "\uFFFD"), "unknown field (name not valid UTF-8)"
	}
	e.add(d.rankUnknown(), name, problem)
}

// eventID reads the value of event_id.
func (d *Decoder) eventID(depth int) error {
	e := &d.ev
	if e.idState != fieldAbsent {
		e.idState = fieldBad
		e.add(0, FieldEventID, "duplicate key")
		return d.skip(depth)
	}
	c, ok := d.nonSpace()
	switch {
	case !ok:
		return d.endErr()
	case c == 'n':
		e.idState = fieldNull
		return d.literal()
	case c != '"':
		e.idState = fieldBad
		e.add(0, FieldEventID, "must be a string, got "+kindAt(c))
		return d.skip(depth)
	}
	d.pos++
	b, over, err := d.str(d.lit[:0], MaxEventIDLength)
	d.lit = b[:0]
	if err != nil {
		return err
	}
	problem := ""
	switch {
	case over:
		problem = fmt.Sprintf("longer than %d bytes", MaxEventIDLength)
	case !d.validUTF8(b):
		problem = "invalid UTF-8"
	default:
		problem = checkEventID(string(b))
	}
	if problem != "" {
		e.idState = fieldBad
		e.add(0, FieldEventID, problem)
		return nil
	}
	// The id goes into the event's arena and is read in place, as the
	// fields' strings are: a string of its own for every event was a
	// twentieth of the collector's allocations. Event copies it.
	kept := e.bytes(e.keep(b))
	e.id, e.idState = unsafe.String(unsafe.SliceData(kept), len(kept)), fieldSet
	return nil
}

// fieldValue reads the value of field f of an event at depth into sl and
// checks it as normalize does: it reports null, or a problem. Only a
// syntax or read error is an error.
func (d *Decoder) fieldValue(f *Field, sl *slot, depth int) (null bool, problem string, err error) {
	c, ok := d.nonSpace()
	if !ok {
		return false, "", d.endErr()
	}
	if c == 'n' {
		return true, "", d.literal()
	}
	switch f.Type {
	case TypeString, TypeEnum:
		if c != '"' {
			return d.wrongKind("must be a string, got ", c, depth)
		}
		problem, err := d.stringValue(f, sl)
		return false, problem, err
	case TypeTimestamp:
		return d.timeValue(c, sl, depth)
	case TypeNumber:
		if kindAt(c) != "number" {
			return d.wrongKind("must be a number, got ", c, depth)
		}
		x, problem, err := d.num()
		if problem == "" && err == nil {
			problem = f.checkNumber(x)
		}
		sl.x = x
		return false, problem, err
	case TypeBoolean:
		if c != 't' && c != 'f' {
			return d.wrongKind("must be true or false, got ", c, depth)
		}
		sl.b = c == 't'
		return false, "", d.literal()
	case TypeNumberMap, TypeStringMap:
		if c != '{' {
			what := "number"
			if f.Type == TypeStringMap {
				what = "string"
			}
			return d.wrongKind("must be an object of name -> "+what+", got ", c, depth)
		}
		problem, err := d.mapValue(f, sl, depth+1)
		return false, problem, err
	}
	_, _, err = d.wrongKind("", c, depth)
	return false, "unsupported field type " + string(f.Type), err
}

// wrongKind skips a value of the wrong kind, which starts with c, and
// names its kind after prefix.
func (d *Decoder) wrongKind(prefix string, c byte, depth int) (bool, string, error) {
	return false, prefix + kindAt(c), d.skip(depth)
}

// probe returns the Decoder's interning probe of field f, one of its
// stream's: found by address, a few comparisons.
func (d *Decoder) probe(f *Field) *internProbe {
	if d.probes == nil {
		d.probes = make([]internProbe, len(d.s.Fields))
	}
	for i := range d.s.Fields {
		if &d.s.Fields[i] == f {
			return &d.probes[i]
		}
	}
	return &internProbe{}
}

// stringValue reads a string or enum value into sl, keeping no more of it
// than the field can take, and returns its problem. Only a syntax or read
// error is an error.
func (d *Decoder) stringValue(f *Field, sl *slot) (problem string, err error) {
	keep := math.MaxInt
	switch {
	case f.Type == TypeEnum:
		// Long enough to quote in the message, and to differ from every
		// value when cut.
		keep = 40
		for _, v := range f.Values {
			keep = max(keep, len(v)+1)
		}
	case f.MaxLength > 0:
		keep = f.MaxLength
	}
	d.pos++
	b, over, err := d.str(d.lit[:0], keep)
	d.lit = b[:0]
	switch {
	case err != nil:
		return "", err
	case over && f.Type == TypeString:
		return fmt.Sprintf("longer than %d bytes", f.MaxLength), nil
	case !over && !d.validUTF8(b):
		return "invalid UTF-8", nil
	case !stringOK(f, b):
		return f.checkString(string(b)), nil
	}
	sl.str = d.ev.keep(b)
	return "", nil
}

// timeValue reads a timestamp into sl: RFC 3339 or epoch milliseconds.
func (d *Decoder) timeValue(c byte, sl *slot, depth int) (bool, string, error) {
	var problem string
	switch kindAt(c) {
	case "string":
		d.pos++
		// No timestamp is longer; a longer string is no timestamp.
		b, over, err := d.str(d.lit[:0], 64)
		d.lit = b[:0]
		if err != nil || over {
			return false, notTime, err
		}
		sl.t, problem = parseTimeBytes(b)
		return false, problem, nil
	case "number":
		x, problem, err := d.num()
		if problem != "" || err != nil {
			return false, problem, err
		}
		sl.t, problem = parseTimeNumber(x)
		return false, problem, nil
	}
	_, _, err := d.wrongKind("", c, depth)
	return false, notTime, err
}

// num reads a number at the next byte as encoding/json reads one into an
// any. A literal too long or out of float64's range is a problem that
// quotes it cut short.
func (d *Decoder) num() (float64, string, error) {
	if x, ok := d.shortNumber(); ok {
		return x, "", nil
	}
	lit, ok := d.numberInPlace()
	if !ok {
		var over bool
		var err error
		lit, over, err = d.number(d.lit[:0], MaxNumberLength)
		d.lit = lit[:0]
		if err != nil {
			return 0, "", err
		}
		if over {
			return 0, fmt.Sprintf("number %s longer than %d bytes", Truncate(string(lit), 32), MaxNumberLength), nil
		}
	}
	x, ok := parseFloat(lit)
	if !ok {
		return 0, "number " + Truncate(string(lit), 32) + " out of range", nil
	}
	return x, "", nil
}
