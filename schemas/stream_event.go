package schemas

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
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
	vals     []any   // by field index
	state    []uint8 // by field index
	id       string
	idState  uint8
	received bool
	next     int    // the field after the last one read
	filled   []bool // by index in fillKeys: the event set the name itself
	problems []rankedProblem
	omitted  int
	out      []FieldError
}

func (e *eventState) init(s *Stream) {
	e.vals = make([]any, len(s.Fields))
	e.state = make([]uint8, len(s.Fields))
}

func (e *eventState) reset() {
	clear(e.vals)
	clear(e.state)
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
		v, problem, err := d.fieldValue(f, depth)
		switch {
		case err != nil:
			return err
		case problem != "":
			e.state[i] = fieldBad
			e.add(i+1, f.Name, problem)
		case v == nil:
			e.state[i] = fieldNull
		default:
			e.state[i], e.vals[i] = fieldSet, v
		}
		return nil
	}
}

// fieldIndex looks up the field named key, trying first the one after the
// field last read: producers mostly send fields in schema order, and a
// comparison is cheaper than a map lookup.
func (d *Decoder) fieldIndex(key []byte) (int, bool) {
	if n := d.ev.next; n < len(d.s.Fields) && d.s.Fields[n].Name == string(key) {
		return n, true
	}
	i, ok := d.s.index[string(key)]
	return i, ok
}

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
	e.id, e.idState = string(b), fieldSet
	return nil
}

// fieldValue reads the value of field f of an event at depth and checks it
// as normalize does: it returns the normal form, nil for null, or a
// problem. Only a syntax or read error is an error.
func (d *Decoder) fieldValue(f *Field, depth int) (any, string, error) {
	c, ok := d.nonSpace()
	if !ok {
		return nil, "", d.endErr()
	}
	if c == 'n' {
		return nil, "", d.literal()
	}
	switch f.Type {
	case TypeString, TypeEnum:
		if c != '"' {
			return d.wrongKind("must be a string, got ", c, depth)
		}
		return d.stringValue(f)
	case TypeTimestamp:
		return d.timeValue(c, depth)
	case TypeNumber:
		if kindAt(c) != "number" {
			return d.wrongKind("must be a number, got ", c, depth)
		}
		x, problem, err := d.num()
		if problem == "" && err == nil {
			problem = f.checkNumber(x)
		}
		return x, problem, err
	case TypeBoolean:
		if c != 't' && c != 'f' {
			return d.wrongKind("must be true or false, got ", c, depth)
		}
		return c == 't', "", d.literal()
	case TypeNumberMap, TypeStringMap:
		if c != '{' {
			what := "number"
			if f.Type == TypeStringMap {
				what = "string"
			}
			return d.wrongKind("must be an object of name -> "+what+", got ", c, depth)
		}
		return d.mapValue(f, depth+1)
	}
	_, _, err := d.wrongKind("", c, depth)
	return nil, "unsupported field type " + string(f.Type), err
}

// wrongKind skips a value of the wrong kind, which starts with c, and
// names its kind after prefix.
func (d *Decoder) wrongKind(prefix string, c byte, depth int) (any, string, error) {
	return nil, prefix + kindAt(c), d.skip(depth)
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

// stringValue reads a string or enum value, keeping no more of it than
// the field can take.
func (d *Decoder) stringValue(f *Field) (any, string, error) {
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
		return nil, "", err
	case over && f.Type == TypeString:
		return nil, fmt.Sprintf("longer than %d bytes", f.MaxLength), nil
	case !over && !d.validUTF8(b):
		return nil, "invalid UTF-8", nil
	}
	s, v := d.probe(f).value(d.s.intern, b)
	if problem := f.checkString(s); problem != "" {
		return nil, problem, nil
	}
	return v, "", nil
}

// timeValue reads a timestamp: RFC 3339 or epoch milliseconds.
func (d *Decoder) timeValue(c byte, depth int) (any, string, error) {
	switch kindAt(c) {
	case "string":
		d.pos++
		// No timestamp is longer; a longer string is no timestamp.
		b, over, err := d.str(d.lit[:0], 64)
		d.lit = b[:0]
		if err != nil || over {
			return nil, notTime, err
		}
		return timeOrProblem(parseTimeBytes(b))
	case "number":
		x, problem, err := d.num()
		if problem != "" || err != nil {
			return nil, problem, err
		}
		return timeOrProblem(parseTimeNumber(x))
	}
	_, _, err := d.wrongKind("", c, depth)
	return nil, notTime, err
}

// timeOrProblem boxes a parsed time, or gives its problem.
func timeOrProblem(t time.Time, problem string) (any, string, error) {
	if problem != "" {
		return nil, problem, nil
	}
	return t, "", nil
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
