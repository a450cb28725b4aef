package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// Decode parses and re-validates an event as Encode wrote it. Anything that
// fails here did not come from Sluice's collectors, or the schema changed
// incompatibly since.
func (s *Stream) Decode(b []byte) (Event, error) {
	// The workers decode every message they consume. json.Unmarshal builds a
	// map[string]any that validate then copies into typed maps, at some 60
	// allocations an event; decodeFast parses straight into the Event.
	if ev, ok := s.decodeFast(b, fastDst{keep: true}); ok {
		return ev, nil
	}
	return s.decodeGeneric(b)
}

// DecodeEnvelope is Decode for a reader that passes the encoded event on
// and needs only its envelope: it accepts and refuses exactly what Decode
// does, with the same errors, and returns the same ID, Key and ReceivedAt,
// but leaves Fields nil. It checks the fields without building them, which
// is most of what decoding costs. The ID and Key may point into b: b must
// not change while they are in use.
func (s *Stream) DecodeEnvelope(b []byte) (Event, error) {
	if ev, ok := s.decodeFast(b, fastDst{alias: true}); ok {
		return ev, nil
	}
	ev, err := s.decodeGeneric(b)
	ev.Fields = nil
	return ev, err
}

// Envelope reads the envelope of an event (ID, Key, ReceivedAt) as Encode
// wrote it, skipping the fields without checking them: for a reader that
// knows the event valid already, as an output's lane knows it from the
// store's. It reports false for anything Encode does not write, and then
// DecodeEnvelope decides. The ID and Key may point into b, as with
// DecodeEnvelope.
func (s *Stream) Envelope(b []byte) (Event, bool) {
	var ev Event
	p := parser{b: b, intern: s.intern, alias: true}
	if s.byName == nil || !p.consume('{') {
		return Event{}, false
	}
	var haveID, haveReceived, haveKey bool
	next := 0 // the index of the field Encode writes next
	for first := true; first || p.consume(','); first = false {
		name, ok := p.nameAs(s.nextName(first, next))
		if !ok || !p.consume(':') {
			return Event{}, false
		}
		switch {
		case string(name) == FieldEventID:
			ev.ID, ok = p.str()
			haveID = true
		case string(name) == FieldReceivedAt:
			ev.ReceivedAt, ok = p.time()
			haveReceived = true
		case string(name) == s.PartitionKey:
			var k []byte
			k, ok = p.strBytes()
			ev.Key, haveKey = p.keep(k), true
			next = s.after(name, next)
		default:
			ok = p.skip()
			next = s.after(name, next)
		}
		if !ok {
			return Event{}, false
		}
	}
	ok := p.consume('}') && p.end() && haveID && haveReceived && haveKey
	return ev, ok
}

// skip passes over one value, checking no more of it than where it ends:
// strings to their closing quote, containers to their closing bracket.
func (p *parser) skip() bool {
	depth := 0
	for {
		p.skipSpace()
		if p.i >= len(p.b) {
			return false
		}
		switch c := p.b[p.i]; c {
		case '"':
			if _, ok := p.strBytes(); !ok {
				return false
			}
		case '{', '[':
			depth++
			p.i++
			continue
		case '}', ']':
			if depth == 0 {
				return false
			}
			depth--
			p.i++
		case ',', ':':
			if depth == 0 {
				return false
			}
			p.i++
			continue
		default:
			// A number or a literal: up to the next delimiter.
			start := p.i
			for p.i < len(p.b) && !endsScalar(p.b[p.i]) {
				p.i++
			}
			if p.i == start {
				return false
			}
		}
		if depth == 0 {
			return true
		}
	}
}

// endsScalar reports whether c ends a number or a literal.
func endsScalar(c byte) bool {
	switch c {
	case ',', ']', '}', ' ', '\t', '\n', '\r':
		return true
	}
	return false
}

// decodeGeneric is Decode for any input: it decides what is wrong, and says
// so with Validate's messages.
func (s *Stream) decodeGeneric(b []byte) (Event, error) {
	var obj map[string]any
	if err := json.Unmarshal(b, &obj); err != nil {
		// Unmarshal checks the syntax first: a type error is about valid
		// JSON. One about a number is a number beyond float64's range,
		// whose literal can be of any length.
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && strings.HasPrefix(te.Value, "number ") {
			problem := "number " + Truncate(strings.TrimPrefix(te.Value, "number "), 32) + " out of range"
			if path, ok := numberOutOfRange(b); ok && path != "" {
				return Event{}, FieldError{path, problem}
			}
			return Event{}, errors.New("not a JSON object: " + problem)
		}
		return Event{}, fmt.Errorf("not a JSON object: %w", err)
	}
	ev, errs := s.validate(obj, true)
	if len(errs) > 0 {
		all := make([]error, len(errs))
		for i, e := range errs {
			all[i] = e
		}
		return Event{}, errors.Join(all...)
	}
	return ev, nil
}

// decodeFast decodes a valid event in the JSON that Encode writes, with the
// checks validate makes, into the same Event that decodeGeneric returns. It
// gives up, reporting false, at anything else: malformed JSON, an invalid
// field, but also valid JSON that Encode never writes (null, duplicate
// names, escaped top-level names, surrogate escapes, invalid UTF-8, whose
// handling in encoding/json it would otherwise have to mirror). Giving up is
// always safe, as decodeGeneric then decides; accepting is only right when
// decodeGeneric would accept too, with the same result, which FuzzDecode
// checks.
//
// Where the fields go, dst says. Without keep or a Records, it checks the
// fields but builds only the partition key, for DecodeEnvelope. It then
// also accepts duplicate names inside a map field, as encoding/json does:
// those it checked all, and json keeps one.
func (s *Stream) decodeFast(b []byte, dst fastDst) (ev Event, ok bool) {
	if s.byName == nil {
		return Event{}, false
	}
	p := parser{b: b, intern: s.intern, alias: dst.alias}
	if !p.consume('{') {
		return Event{}, false
	}
	// Which fields the event set, by index: cheaper than looking each up
	// in ev.Fields for duplicates and again for required ones.
	var seenBuf [32]bool
	seen := seenBuf[:0]
	if len(s.Fields) <= len(seenBuf) {
		seen = seenBuf[:len(s.Fields)]
	} else {
		seen = make([]bool, len(s.Fields))
	}
	if dst.keep {
		ev.Fields = make(map[string]any, len(s.Fields))
	}
	var haveID, haveReceived, haveKey bool
	next := 0 // the index of the field Encode writes next
	for first := true; ; first = false {
		if !first && !p.consume(',') {
			break
		}
		name, ok := p.nameAs(s.nextName(first, next))
		if !ok || !p.consume(':') {
			return Event{}, false
		}
		switch {
		case string(name) == FieldEventID:
			id, ok := p.str()
			if haveID || !ok || checkEventID(id) != "" {
				return Event{}, false
			}
			ev.ID, haveID = id, true
		case string(name) == FieldReceivedAt:
			t, ok := p.time()
			if haveReceived || !ok {
				return Event{}, false
			}
			ev.ReceivedAt, haveReceived = t, true
		default:
			i, known := s.fieldNamed(name, next)
			if !known || seen[i] {
				return Event{}, false
			}
			if !s.fastField(&p, i, dst, &ev, &haveKey) {
				return Event{}, false
			}
			seen[i], next = true, i+1
		}
	}
	if !p.consume('}') || !p.end() || !haveID || !haveReceived {
		return Event{}, false
	}
	for i := range s.Fields {
		if !seen[i] && s.Fields[i].Required {
			return Event{}, false
		}
	}
	return ev, haveKey
}

// fastDst says where decodeFast puts the fields it reads: into the
// Event's Fields with keep, into rec of rs with rs, else nowhere; with
// alias, the strings it reads may point into its input (parser.keep).
type fastDst struct {
	keep  bool
	rs    *Records
	rec   Record
	alias bool
}

// fastField reads the value of field i into ev for decodeFast, or into
// dst's record, or only checks it, unless it is the partition key, which
// goes into ev.Key.
func (s *Stream) fastField(p *parser, i int, dst fastDst, ev *Event, haveKey *bool) bool {
	f := &s.Fields[i]
	isKey := f.Name == s.PartitionKey
	switch {
	case dst.rs != nil:
		rv := dst.rec.value(i)
		if !p.valueInto(f, rv, dst.rs) {
			return false
		}
		if isKey && (f.Type == TypeString || f.Type == TypeEnum) {
			ev.Key, *haveKey = rv.s, true
		}
		return true
	case !dst.keep && !isKey:
		return p.check(f)
	}
	v, ok := p.value(f)
	if !ok {
		return false
	}
	if dst.keep {
		ev.Fields[f.Name] = v
	}
	if isKey {
		ev.Key, *haveKey = v.(string)
	}
	return true
}

// decodeRecord is decodeFast into a new record of rs; on false, rs may
// hold part of it.
func (s *Stream) decodeRecord(b []byte, rs *Records) (Event, Record, bool) {
	rec := rs.open()
	ev, ok := s.decodeFast(b, fastDst{rs: rs, rec: rec, alias: true})
	return ev, rec, ok
}

// parser reads JSON from b at i, for decodeFast. Each method skips the
// white space before what it reads, and reports false when that is not
// there or not in the form decodeFast accepts.
type parser struct {
	b      []byte
	i      int
	intern *internTable // the stream's, for names and short values
	// alias lets the strings read point into b (keep), for a caller whose
	// b never changes while they are in use.
	alias bool
}

// keep returns b, a string value or name just read, as a string: where
// aliasing is allowed and b lies in the input (a string without escapes),
// the input's bytes themselves; else an interned or new copy.
//
// Why: a worker decodes every event of every batch it writes, and copying
// or interning its strings (names, tags, messages, ids) was a sixth of
// that; the batch keeps the messages it was decoded from anyway.
func (p *parser) keep(b []byte) string {
	if s, ok := p.view(b); ok {
		return s
	}
	return p.intern.str(b)
}

// view returns b as a string of the input's own bytes, where aliasing is
// allowed and b is a non-empty part of the input.
func (p *parser) view(b []byte) (string, bool) {
	if !p.alias || len(b) == 0 || len(p.b) == 0 {
		return "", false
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(p.b)))
	at := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	if at < start || at >= start+uintptr(len(p.b)) {
		return "", false
	}
	return unsafe.String(unsafe.SliceData(b), len(b)), true
}

// skipSpace moves past white space. Encode writes none, so its first test
// is whether there is any: that much inlines, and the loop runs only for
// events written by others (a third of decoding's samples went to the loop
// when every call entered it).
func (p *parser) skipSpace() {
	if uint(p.i) < uint(len(p.b)) && p.b[p.i] > ' ' {
		return
	}
	p.skipSpaceSlow()
}

func (p *parser) skipSpaceSlow() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) consume(c byte) bool {
	p.skipSpace()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *parser) peek() byte {
	p.skipSpace()
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *parser) end() bool {
	p.skipSpace()
	return p.i == len(p.b)
}

// name reads a string without escapes and returns its bytes in place: top-
// level names are plain identifiers, and looking them up with string(name)
// does not allocate.
func (p *parser) name() ([]byte, bool) {
	if !p.consume('"') {
		return nil, false
	}
	start := p.i
	n, _ := stringRun(p.b[start:])
	if i := start + n; i < len(p.b) && p.b[i] == '"' {
		p.i = i + 1
		return p.b[start:i], true
	}
	return nil, false
}

// nameAs is name for a member that Encode wrote: want is the name, in
// quotes, that Encode writes there. When the input goes on with it, it is
// taken without scanning it for escapes and its end; otherwise name reads
// whatever name is there. Scanning names was a tenth of decoding.
func (p *parser) nameAs(want string) ([]byte, bool) {
	p.skipSpace()
	if end := p.i + len(want); end <= len(p.b) && string(p.b[p.i:end]) == want {
		p.i = end
		return p.b[end-len(want)+1 : end-1], true
	}
	return p.name()
}

// nextName is the quoted name of the member Encode writes after the field
// of index next-1: event_id first, then the fields in the schema's order
// (of which an event may lack some), received_at last.
func (s *Stream) nextName(first bool, next int) string {
	switch {
	case first:
		return quotedEventID
	case next < len(s.quoted):
		return s.quoted[next]
	}
	return quotedReceivedAt
}

// after is the index of the field that Encode writes after the named
// one, which nextName guessed to be the field of index next.
func (s *Stream) after(name []byte, next int) int {
	if i, known := s.fieldNamed(name, next); known {
		return i + 1
	}
	return next
}

// fieldNamed returns the index of the field named name, trying first the
// field of index next, the one after the field last read: Encode writes
// fields in schema order, producers mostly do, and a comparison is cheaper
// than a map lookup.
func (s *Stream) fieldNamed(name []byte, next int) (int, bool) {
	if next < len(s.Fields) && s.Fields[next].Name == string(name) {
		return next, true
	}
	i, ok := s.index[string(name)]
	return i, ok
}

const (
	quotedEventID    = `"` + FieldEventID + `"`
	quotedReceivedAt = `"` + FieldReceivedAt + `"`
)

// str reads a string.
func (p *parser) str() (string, bool) {
	b, ok := p.strBytes()
	if s, in := p.view(b); in {
		return s, ok
	}
	return string(b), ok
}

// strBytes reads a string and returns its value: in place when it has no
// escapes, else in a new buffer. Callers that keep it convert or intern
// it.
func (p *parser) strBytes() ([]byte, bool) {
	if !p.consume('"') {
		return nil, false
	}
	start := p.i
	n, nonASCII := stringRun(p.b[start:])
	i := start + n
	switch {
	case i == len(p.b) || p.b[i] < 0x20:
		return nil, false
	case p.b[i] == '\\':
		return p.unescape(start, i)
	}
	raw := p.b[start:i]
	if nonASCII && !utf8.Valid(raw) {
		return nil, false
	}
	p.i = i + 1
	return raw, true
}

// unescape reads the rest of a string that starts at start and has its
// first backslash at i.
func (p *parser) unescape(start, i int) ([]byte, bool) {
	out := make([]byte, 0, i-start+16)
	out = append(out, p.b[start:i]...)
	for i < len(p.b) {
		c := p.b[i]
		switch {
		case c == '"':
			// Escapes produce whole runes, so the raw bytes between them
			// are valid exactly when the result is.
			if !utf8.Valid(out) {
				return nil, false
			}
			p.i = i + 1
			return out, true
		case c < 0x20:
			return nil, false
		case c != '\\':
			out = append(out, c)
			i++
			continue
		}
		if i+1 >= len(p.b) {
			return nil, false
		}
		switch e := p.b[i+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if i+6 > len(p.b) {
				return nil, false
			}
			r, ok := hex4(p.b[i+2 : i+6])
			if !ok || utf16.IsSurrogate(r) {
				return nil, false
			}
			out = utf8.AppendRune(out, r)
			i += 6
			continue
		default:
			return nil, false
		}
		i += 2
	}
	return nil, false
}

// hex4 decodes the four hex digits of a \u escape.
func hex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// number reads a number as encoding/json reads one into an any: checked
// against JSON's grammar, which is stricter than strconv's, then parsed as
// a float64.
func (p *parser) number() (float64, bool) {
	p.skipSpace()
	b, i := p.b, p.i
	digits := func() bool {
		n := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		return i > n
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if !digits() {
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return 0, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return 0, false
		}
	}
	f, ok := parseFloat(b[p.i:i])
	if !ok {
		return 0, false
	}
	p.i = i
	return f, true
}

// boolean reads true or false. A literal that runs on ("truex") is left
// for the caller's next read to refuse.
func (p *parser) boolean() (bool, bool) {
	p.skipSpace()
	rest := p.b[p.i:]
	switch {
	case len(rest) >= 4 && string(rest[:4]) == "true":
		p.i += 4
		return true, true
	case len(rest) >= 5 && string(rest[:5]) == "false":
		p.i += 5
		return false, true
	}
	return false, false
}

// time reads a timestamp, a string or a number.
func (p *parser) time() (time.Time, bool) {
	var (
		t       time.Time
		problem string
	)
	if p.peek() == '"' {
		b, ok := p.strBytes()
		if !ok {
			return time.Time{}, false
		}
		t, problem = parseTimeBytes(b)
	} else {
		x, ok := p.number()
		if !ok {
			return time.Time{}, false
		}
		t, problem = parseTimeNumber(x)
	}
	return t, problem == ""
}

// value reads the value of field f and checks it as normalize does.
func (p *parser) value(f *Field) (any, bool) {
	switch f.Type {
	case TypeString, TypeEnum:
		b, ok := p.strBytes()
		if !ok {
			return nil, false
		}
		s, v := p.intern.value(b)
		if f.checkString(s) != "" {
			return nil, false
		}
		return v, true
	case TypeTimestamp:
		t, ok := p.time()
		if !ok {
			return nil, false
		}
		return t, true
	case TypeNumber:
		x, ok := p.number()
		if !ok || f.checkNumber(x) != "" {
			return nil, false
		}
		return x, true
	case TypeBoolean:
		b, ok := p.boolean()
		if !ok {
			return nil, false
		}
		return b, true
	case TypeNumberMap:
		m := make(map[string]float64, 8)
		ok := p.object(f, func(k string) bool {
			x, ok := p.number()
			n := len(m)
			m[k] = x
			return ok && len(m) > n
		})
		if !ok || f.checkMapSize(len(m)) != "" {
			return nil, false
		}
		return m, true
	case TypeStringMap:
		m := make(map[string]string, 8)
		ok := p.object(f, func(k string) bool {
			b, ok := p.strBytes()
			s := p.intern.str(b)
			n := len(m)
			m[k] = s
			return ok && len(m) > n && f.checkMapString(k, s) == ""
		})
		if !ok || f.checkMapSize(len(m)) != "" {
			return nil, false
		}
		return m, true
	}
	return nil, false
}

// valueInto reads the value of field f into rv and rs, and checks it as
// value does.
func (p *parser) valueInto(f *Field, rv *recValue, rs *Records) bool {
	ok := false
	switch f.Type {
	case TypeString, TypeEnum:
		var b []byte
		if b, ok = p.strBytes(); ok {
			rv.s = p.keep(b)
			ok = stringOK(f, rv.s)
		}
	case TypeTimestamp:
		var t time.Time
		t, ok = p.time()
		rv.setTime(t)
	case TypeNumber:
		var x float64
		x, ok = p.number()
		ok = ok && f.checkNumber(x) == ""
		rv.setNum(x)
	case TypeBoolean:
		rv.b, ok = p.boolean()
	case TypeNumberMap, TypeStringMap:
		ok = p.mapInto(f, rv, rs)
	}
	rv.set = ok
	return ok
}

// mapInto reads map field f into rs. Encode writes a map's names sorted:
// names out of order, duplicates among them, are left to decodeGeneric.
func (p *parser) mapInto(f *Field, rv *recValue, rs *Records) bool {
	from := len(rs.names)
	ok := p.object(f, func(k string) bool {
		if n := len(rs.names); n > from && rs.names[n-1] >= k {
			return false
		}
		if f.Type == TypeNumberMap {
			x, ok := p.number()
			rs.addEntry(k, x, "")
			return ok
		}
		b, ok := p.strBytes()
		s := p.keep(b)
		rs.addEntry(k, 0, s)
		return ok && mapStringOK(f, s)
	})
	rv.setRange(from, len(rs.names))
	return ok && f.checkMapSize(len(rs.names)-from) == ""
}

// check reads a value of field f and checks it as value does, without
// building it: maps are counted, not filled.
func (p *parser) check(f *Field) bool {
	switch f.Type {
	case TypeString, TypeEnum:
		b, ok := p.strBytes()
		return ok && stringOK(f, b)
	case TypeNumber:
		x, ok := p.number()
		return ok && f.checkNumber(x) == ""
	case TypeTimestamp:
		_, ok := p.time()
		return ok
	case TypeBoolean:
		_, ok := p.boolean()
		return ok
	case TypeNumberMap:
		n := 0
		ok := p.object(f, func(string) bool {
			_, ok := p.number()
			n++
			return ok
		})
		return ok && f.checkMapSize(n) == ""
	case TypeStringMap:
		n := 0
		ok := p.object(f, func(string) bool {
			b, ok := p.strBytes()
			n++
			return ok && mapStringOK(f, b)
		})
		return ok && f.checkMapSize(n) == ""
	}
	_, ok := p.value(f)
	return ok
}

// object reads the entries of a map field: for each name, checked as
// normalize checks it, entry reads and stores the value. Entries must give
// up on a duplicate name, where encoding/json would keep the last value.
func (p *parser) object(f *Field, entry func(name string) bool) bool {
	if !p.consume('{') {
		return false
	}
	if p.consume('}') {
		return true
	}
	for {
		b, ok := p.strBytes()
		k := p.keep(b)
		if !ok || f.checkKey(k) != "" || !p.consume(':') || !entry(k) {
			return false
		}
		if p.consume('}') {
			return true
		}
		if !p.consume(',') {
			return false
		}
	}
}

// numberOutOfRange finds the first number in the JSON b that does not fit
// a float64, and names the member that holds it as error messages name
// members: "metrics: t" for an entry of a map. It reports false if b holds
// no such number or is not valid JSON.
func numberOutOfRange(b []byte) (path string, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var (
		names []string // the current member name at each depth; "" in arrays
		inObj []bool   // whether each open container is an object
		isKey bool     // whether the next token is a member name
	)
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		switch t := tok.(type) {
		case json.Delim:
			if t == '{' || t == '[' {
				inObj, names = append(inObj, t == '{'), append(names, "")
				isKey = t == '{'
				continue
			}
			inObj, names = inObj[:len(inObj)-1], names[:len(names)-1]
		case string:
			if isKey {
				names[len(names)-1] = t
				isKey = false
				continue
			}
		case json.Number:
			if _, err := strconv.ParseFloat(string(t), 64); err != nil {
				var parts []string
				for _, n := range names {
					if n != "" {
						parts = append(parts, Truncate(n, 64))
					}
				}
				return strings.Join(parts, ": "), true
			}
		}
		// A value ended: in an object, a name comes next.
		isKey = len(inObj) > 0 && inObj[len(inObj)-1]
	}
}
