package schemas

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Encode renders an event as Sluice writes it to Kafka and publishes it to
// NATS: one JSON object with event_id first, then the stream's fields in
// schema order, then received_at; map entries are sorted by name, so that
// one event always encodes to the same bytes.
//
// Strings are escaped as encoding/json escapes them, invalid UTF-8 included
// (each bad byte becomes U+FFFD), except that <, > and & are written as they
// are: the output is JSON for machines, never embedded in HTML by Sluice,
// and log messages stay readable and short. Numbers are formatted exactly as
// encoding/json formats float64.
func (s *Stream) Encode(ev Event) ([]byte, error) {
	// The collector spent a third of its CPU in json.Marshal of a map
	// (reflection, boxing, sorting all keys); the schema already says what
	// the object holds and in which order.
	//
	// The event is written on the stack and copied out at its exact size:
	// estimating the size beforehand took a walk of the event's map, a
	// tenth of Encode, and the estimate was mostly too large. An event
	// over the buffer grows on the heap, as append grows any slice.
	var buf [encodeStack]byte
	if b, ok := s.appendEvent(buf[:0], ev); ok {
		return append([]byte(nil), b...), nil
	}
	return s.encodeGeneric(ev)
}

// AppendKeyed appends ev, encoded as Encode encodes it, and then its
// partition key to b (a Kafka message's value and key), and returns the
// extended buffer and the length of the encoded event. On an error b is
// returned as it was.
func (s *Stream) AppendKeyed(b []byte, ev Event) ([]byte, int, error) {
	start := len(b)
	out, ok := s.appendEvent(b, ev)
	if !ok {
		v, err := s.encodeGeneric(ev)
		if err != nil {
			return b, 0, err
		}
		out = append(b, v...)
	}
	return append(out, ev.Key...), len(out) - start, nil
}

// encodeGeneric is the reflective encoder, for the events appendEvent does
// not handle: values of types Validate never produces, fields the stream
// does not define, or numbers that JSON cannot represent (for which it
// returns encoding/json's error).
func (s *Stream) encodeGeneric(ev Event) ([]byte, error) {
	obj := make(map[string]any, len(ev.Fields)+2)
	for k, v := range ev.Fields {
		if t, ok := v.(time.Time); ok {
			v = t.UTC().Format(TimeLayout)
		}
		obj[k] = v
	}
	obj[FieldEventID] = ev.ID
	obj[FieldReceivedAt] = ev.ReceivedAt.UTC().Format(TimeLayout)
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode %s event %s: %w", s.Name, ev.ID, err)
	}
	return b, nil
}

// encodeStack is Encode's buffer on the stack, larger than most events.
const encodeStack = 1024

// appendEvent appends the JSON of ev to b. It reports false, leaving the
// work to encodeGeneric, for anything but what Validate and Decode produce.
func (s *Stream) appendEvent(b []byte, ev Event) ([]byte, bool) {
	b = appendHead(b, ev.ID)
	found := 0
	for i := range s.Fields {
		v, ok := ev.Fields[s.Fields[i].Name]
		if !ok {
			continue
		}
		found++
		if b, ok = s.appendField(b, i, v); !ok {
			return nil, false
		}
	}
	if found != len(ev.Fields) {
		return nil, false
	}
	return appendTail(b, ev.ReceivedAt), true
}

// appendHead opens an event's object with its event_id.
func appendHead(b []byte, id string) []byte {
	b = append(b, `{"event_id":`...)
	return appendString(b, id)
}

// appendTail closes an event's object with its received_at.
func appendTail(b []byte, receivedAt time.Time) []byte {
	b = append(b, `,"received_at":`...)
	b = appendTime(b, receivedAt)
	return append(b, '}')
}

// appendField appends the member of field i with value v. It reports false
// for a value of a type Validate does not produce for the field.
func (s *Stream) appendField(b []byte, i int, v any) ([]byte, bool) {
	name, typ := s.Fields[i].Name, s.Fields[i].Type
	b = appendName(b, name, s.byName != nil)
	ok := true
	switch x := v.(type) {
	case string:
		b = appendString(b, x)
	case time.Time:
		b = appendTime(b, x)
	case float64:
		// Numbers and booleans of other fields keep the generic
		// encoding they always had.
		if typ != TypeNumber {
			return nil, false
		}
		b, ok = appendFloat(b, x)
	case bool:
		if typ != TypeBoolean {
			return nil, false
		}
		b = strconv.AppendBool(b, x)
	case map[string]float64:
		b, ok = appendNumberMap(b, x)
	case map[string]string:
		b = appendStringMap(b, x)
	default:
		return nil, false
	}
	return b, ok
}

// appendName appends ,"name": for a field. The names of a checked stream
// are identifiers (identRE), with nothing to escape.
func appendName(b []byte, name string, checked bool) []byte {
	b = append(b, ',')
	if !checked {
		b = appendString(b, name)
		return append(b, ':')
	}
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

func appendNumberMap(b []byte, m map[string]float64) ([]byte, bool) {
	var buf [16]entry[float64]
	b = append(b, '{')
	for i, e := range sortedEntries(buf[:0], m) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, e.k)
		b = append(b, ':')
		var ok bool
		if b, ok = appendFloat(b, e.v); !ok {
			return nil, false
		}
	}
	return append(b, '}'), true
}

func appendStringMap(b []byte, m map[string]string) []byte {
	var buf [16]entry[string]
	b = append(b, '{')
	for i, e := range sortedEntries(buf[:0], m) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, e.k)
		b = append(b, ':')
		b = appendString(b, e.v)
	}
	return append(b, '}')
}

// entry is one entry of a map being encoded.
type entry[V any] struct {
	k string
	v V
}

// sortedEntries appends the entries of m to buf, a buffer on the caller's
// stack that holds a typical map without an allocation, sorted by name.
// Taking the values with the names spares a lookup per entry, and an
// insertion sort of a few entries costs less than a general one.
func sortedEntries[V any](buf []entry[V], m map[string]V) []entry[V] {
	for k, v := range m {
		buf = append(buf, entry[V]{k, v})
	}
	if len(buf) > 12 {
		slices.SortFunc(buf, func(a, b entry[V]) int { return strings.Compare(a.k, b.k) })
		return buf
	}
	for i := 1; i < len(buf); i++ {
		for j := i; j > 0 && buf[j].k < buf[j-1].k; j-- {
			buf[j], buf[j-1] = buf[j-1], buf[j]
		}
	}
	return buf
}

// appendFloat formats f as encoding/json formats a float64: like ES6's
// Number.prototype.toString, the shortest representation that parses back
// to f, in plain notation from 1e-6 up to 1e21 and in exponent notation
// without a padded exponent outside. JSON has no NaN or infinities, so it
// reports false for them.
func appendFloat(b []byte, f float64) ([]byte, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	} else if out, ok := appendShortDecimal(b, f); ok {
		return out, true
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// 1e-07 -> 1e-7
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

// appendShortDecimal appends f, when it is a decimal of at most 15
// significant digits with at most maxShortFrac of them after the point
// (the readings most events carry: 21.5, 1013.25, 40), as
// strconv.AppendFloat(b, f, 'f', -1, 64) writes it, at a fraction of the
// cost of its search for the shortest digits. Otherwise it appends
// nothing and reports false.
//
// Why it is the same: m/10^k, with m below 2^53 and 10^k exact, divides
// to the float64 nearest the decimal, as parsing it does, so the decimal
// reads back as f; and two decimals of 15 significant digits or fewer
// never read back as the same float64 (a float64 holds 15 decimal digits
// exactly), so no shorter decimal does. The shortest digits are therefore
// m's, without the trailing zeros that the smallest k leaves none of.
func appendShortDecimal(b []byte, f float64) ([]byte, bool) {
	if f == 0 {
		return b, false // -0 and 0 differ only in the sign strconv writes
	}
	neg := f < 0
	abs := math.Abs(f)
	if abs >= 1e15 {
		return b, false
	}
	for k := 0; k <= maxShortFrac; k++ {
		y := abs * pow10[k]
		if y >= 1e15 {
			return b, false
		}
		m := math.Round(y)
		if m/pow10[k] != abs {
			continue
		}
		if neg {
			b = append(b, '-')
		}
		u := uint64(m)
		if k == 0 {
			return strconv.AppendUint(b, u, 10), true
		}
		p := uint64(pow10[k])
		b = strconv.AppendUint(b, u/p, 10)
		b = append(b, '.')
		frac := u % p
		for d := p / 10; d > frac && d > 1; d /= 10 {
			b = append(b, '0')
		}
		return strconv.AppendUint(b, frac, 10), true
	}
	return b, false
}

// maxShortFrac is the most digits after the point appendShortDecimal
// tries: each try costs a multiplication and a division.
const maxShortFrac = 6

// appendTime appends t as a JSON string in TimeLayout. It is what
// t.UTC().AppendFormat(b, TimeLayout) writes, quoted, without parsing the
// layout each time; years that need other than four digits go through
// AppendFormat.
func appendTime(b []byte, t time.Time) []byte {
	var year, day, hour, minute, sec int
	var month time.Month
	if unix := t.Unix(); unix >= 0 && unix < 253402300800 {
		// 1970 to 9999, every timestamp Validate accepts: from the Unix
		// time, at a third of the cost of t.Date and t.Clock.
		year, month, day = civilFromDays(unix / 86400)
		rem := int(unix % 86400)
		hour, minute, sec = rem/3600, rem/60%60, rem%60
	} else {
		t = t.UTC()
		year, month, day = t.Date()
		if year < 0 || year > 9999 {
			b = append(b, '"')
			b = t.AppendFormat(b, TimeLayout)
			return append(b, '"')
		}
		hour, minute, sec = t.Clock()
	}
	ms := t.Nanosecond() / 1e6 // truncated, as the layout's .000 does
	b = append(b, '"',
		byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-',
		byte('0'+month/10), byte('0'+month%10), '-',
		byte('0'+day/10), byte('0'+day%10), 'T',
		byte('0'+hour/10), byte('0'+hour%10), ':',
		byte('0'+minute/10), byte('0'+minute%10), ':',
		byte('0'+sec/10), byte('0'+sec%10), '.',
		byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z', '"')
	return b
}

// civilFromDays is the date of a day counted from 1970-01-01, for days >= 0
// (Howard Hinnant's civil_from_days; daysSinceEpoch is its inverse).
func civilFromDays(days int64) (int, time.Month, int) {
	z := days + 719468
	era := z / 146097
	doe := z - era*146097                                  // [0, 146096]
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365 // [0, 399]
	doy := doe - (365*yoe + yoe/4 - yoe/100)               // [0, 365]
	mp := (5*doy + 2) / 153                                // [0, 11], from March
	day := int(doy - (153*mp+2)/5 + 1)
	month := time.Month((mp+2)%12 + 1)
	year := int(yoe + era*400)
	if month <= time.February {
		year++
	}
	return year, month, day
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaped as encoding/json escapes
// with SetEscapeHTML(false): quote, backslash and control characters,
// U+2028 and U+2029 (which JavaScript does not allow raw in strings), and
// each byte of invalid UTF-8 replaced with \ufffd.
func appendString[T string | []byte](b []byte, s T) []byte {
	b = append(b, '"')
	// Most strings are ASCII with nothing to escape: tell so eight bytes
	// at a time rather than one.
	if n, nonASCII := stringRun(s); n == len(s) && !nonASCII {
		b = append(b, s...)
		return append(b, '"')
	}
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		// At most 4 bytes: converting them to a string stays on the stack.
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
