package schemas

import (
	"io"
	"math/bits"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// This file is the Decoder's lexer: buffered bytes, strings, numbers,
// literals and the skipping of values nobody needs. Everything it reads is
// either kept up to a bound the caller gives or dropped as it goes, so that
// memory does not grow with the input.

// SyntaxError is malformed JSON: what is wrong and where.
type SyntaxError struct {
	// Msg reads as encoding/json's messages do ("invalid character 'x'
	// looking for beginning of value").
	Msg string
	// Offset counts the bytes of the input up to and including the one at
	// fault; it is meaningless when EOF is set.
	Offset int64
	// EOF says the input (or, in NDJSON, the line) ended inside a value.
	EOF bool
}

// Error reads as encoding/json's message, or "unexpected end of input";
// the offset is left for the caller to place.
func (e *SyntaxError) Error() string {
	if e.EOF {
		return "unexpected end of input"
	}
	return e.Msg
}

// bufSize is the Decoder's read buffer, as ingest's bufio.Reader was.
const bufSize = 64 << 10

// fill makes an unread byte available, reporting false at the end of the
// input or on a read error (d.rerr says which).
func (d *Decoder) fill() bool {
	return d.pos < len(d.buf) || d.refill()
}

// refill moves the unread bytes to the front of the buffer and reads more
// after them. Bytes of the value being recorded are appended to d.raw
// first, since the move overwrites them.
func (d *Decoder) refill() bool {
	if d.rerr != nil {
		return false
	}
	if d.rawFrom >= 0 {
		d.raw = append(d.raw, d.buf[d.rawFrom:d.pos]...)
		d.rawFrom = 0
	}
	n := copy(d.buf[:cap(d.buf)], d.buf[d.pos:])
	d.off += int64(d.pos)
	d.buf, d.pos = d.buf[:n], 0
	for i := 0; i < 100 && len(d.buf) < cap(d.buf); i++ {
		k, err := d.r.Read(d.buf[len(d.buf):cap(d.buf)])
		d.buf = d.buf[:len(d.buf)+k]
		if err != nil {
			d.rerr = err
			break
		}
		if k > 0 {
			break
		}
	}
	if len(d.buf) == n && d.rerr == nil {
		d.rerr = io.ErrNoProgress
	}
	return len(d.buf) > n
}

// ensure makes n unread bytes available if the input holds them.
func (d *Decoder) ensure(n int) bool {
	for len(d.buf)-d.pos < n {
		if !d.refill() {
			return false
		}
	}
	return true
}

// offset is the input offset of the next unread byte.
func (d *Decoder) offset() int64 { return d.off + int64(d.pos) }

// syntax reports malformed JSON at the next unread byte c: Msg is
// formatted with c quoted. Where the input has ended (or an NDJSON line,
// which ends at '\n'), it is an unexpected end instead, as encoding/json
// reads it; a read error is returned as it is.
func (d *Decoder) syntax(format string) error {
	if !d.fill() {
		return d.endErr()
	}
	c := d.buf[d.pos]
	if c == '\n' && d.lines {
		return &SyntaxError{EOF: true}
	}
	return &SyntaxError{Msg: "invalid character " + quoteChar(c) + " " + format, Offset: d.offset() + 1}
}

// endErr is the error for input that ended where more was needed.
func (d *Decoder) endErr() error {
	if d.rerr != nil && d.rerr != io.EOF {
		return d.rerr
	}
	return &SyntaxError{EOF: true}
}

// quoteChar quotes c as encoding/json's error messages do.
func quoteChar(c byte) string {
	switch c {
	case '\'':
		return `'\''`
	case '"':
		return `'"'`
	}
	s := strconv.Quote(string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}

// nonSpace skips JSON white space and returns the next byte without
// consuming it; ok is false at the end of the input. In NDJSON a '\n' is
// returned rather than skipped: it ends the value.
func (d *Decoder) nonSpace() (c byte, ok bool) {
	// Most values follow their comma or colon at once: that case returns
	// before the refill check and the loop.
	if i := d.pos; uint(i) < uint(len(d.buf)) {
		if c := d.buf[i]; c > ' ' {
			return c, true
		}
	}
	return d.skipSpace()
}

// skipSpace is nonSpace past white space or at the end of the buffer.
func (d *Decoder) skipSpace() (c byte, ok bool) {
	for d.fill() {
		for ; d.pos < len(d.buf); d.pos++ {
			switch c := d.buf[d.pos]; c {
			case ' ', '\t', '\r':
			case '\n':
				if d.lines {
					return c, true
				}
			default:
				return c, true
			}
		}
	}
	return 0, false
}

// expect skips white space and consumes c, or reports what is there
// instead with the message encoding/json gives after context.
func (d *Decoder) expect(c byte, context string) error {
	if i := d.pos; uint(i) < uint(len(d.buf)) && d.buf[i] == c {
		d.pos = i + 1
		return nil
	}
	return d.expectSlow(c, context)
}

// expectSlow is expect past white space, at the end of the buffer, or at
// a byte that is not c.
func (d *Decoder) expectSlow(c byte, context string) error {
	got, ok := d.nonSpace()
	if !ok {
		return d.endErr()
	}
	if got != c {
		return d.syntax(context)
	}
	d.pos++
	return nil
}

// str reads the rest of a string whose opening quote is consumed,
// appending at most keep bytes of its value to dst; over says the value
// was longer. Escapes are decoded as encoding/json decodes them (a lone
// surrogate becomes U+FFFD); raw bytes are kept as they are, for the
// caller to check with d.validUTF8 where it keeps the value.
func (d *Decoder) str(dst []byte, keep int) (out []byte, over bool, err error) {
	// Most strings lie whole in the buffer, without escapes: one scan and
	// one copy, without the general loop's per-run bookkeeping, which cost
	// as much as the scan.
	rest := d.buf[d.pos:]
	n, nonASCII := stringRun(rest)
	if n < len(rest) && rest[n] == '"' && n <= keep-len(dst) {
		d.nonASCII = nonASCII
		d.pos += n + 1
		return append(dst, rest[:n]...), false, nil
	}
	d.nonASCII = false
	return d.strSlow(dst, keep)
}

// strSlow is str for a string with escapes, longer than keep, or not yet
// all in the buffer.
func (d *Decoder) strSlow(dst []byte, keep int) (out []byte, over bool, err error) {
	add := func(b []byte) {
		if room := keep - len(dst); room < len(b) {
			over = true
			b = b[:max(room, 0)]
		}
		dst = append(dst, b...)
	}
	for {
		if !d.fill() {
			return dst, over, d.endErr()
		}
		start := d.pos
		n, nonASCII := stringRun(d.buf[d.pos:])
		d.nonASCII = d.nonASCII || nonASCII
		d.pos += n
		add(d.buf[start:d.pos])
		if d.pos == len(d.buf) {
			continue
		}
		switch c := d.buf[d.pos]; {
		case c == '"':
			d.pos++
			return dst, over, nil
		case c < 0x20:
			return dst, over, d.syntax("in string literal")
		}
		r, err := d.escape()
		if err != nil {
			return dst, over, err
		}
		var enc [utf8.UTFMax]byte
		add(enc[:utf8.EncodeRune(enc[:], r)])
	}
}

// validUTF8 reports whether b, the value the last str read, is valid
// UTF-8. Decoded escapes always are: only raw bytes need checking, and
// only if one of them is not ASCII, which str saw as it scanned them.
func (d *Decoder) validUTF8(b []byte) bool {
	return !d.nonASCII || utf8.Valid(b)
}

// escape reads one escape sequence at the backslash.
func (d *Decoder) escape() (rune, error) {
	if !d.ensure(2) {
		d.pos = len(d.buf)
		return 0, d.endErr()
	}
	d.pos++ // the backslash
	e := d.buf[d.pos]
	switch e {
	case '"', '\\', '/':
		d.pos++
		return rune(e), nil
	case 'b':
		d.pos++
		return '\b', nil
	case 'f':
		d.pos++
		return '\f', nil
	case 'n':
		d.pos++
		return '\n', nil
	case 'r':
		d.pos++
		return '\r', nil
	case 't':
		d.pos++
		return '\t', nil
	case 'u':
	default:
		return 0, d.syntax("in string escape code")
	}
	d.pos++
	r, err := d.hex()
	if err != nil || !utf16.IsSurrogate(r) {
		return r, err
	}
	// A surrogate pairs with a \u escape of the other half, or stands for
	// U+FFFD, as in encoding/json; the next escape is then read on its own.
	if d.ensure(6) && d.buf[d.pos] == '\\' && d.buf[d.pos+1] == 'u' {
		if r2, ok := hex4(d.buf[d.pos+2 : d.pos+6]); ok {
			if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
				d.pos += 6
				return dec, nil
			}
		}
	}
	return utf8.RuneError, nil
}

// hex reads the four hex digits of a \u escape.
func (d *Decoder) hex() (rune, error) {
	var r rune
	for range 4 {
		if !d.fill() {
			return 0, d.endErr()
		}
		v, ok := hex4(d.buf[d.pos : d.pos+1])
		if !ok {
			return 0, d.syntax(`in \u hexadecimal character escape`)
		}
		r = r<<4 | v
		d.pos++
	}
	return r, nil
}

// digits consumes decimal digits, appending at most keep bytes of the
// literal to dst, and reports whether there was one.
func (d *Decoder) digits(dst []byte, keep int) ([]byte, bool) {
	any := false
	for d.fill() {
		start := d.pos
		for d.pos < len(d.buf) && '0' <= d.buf[d.pos] && d.buf[d.pos] <= '9' {
			d.pos++
		}
		n := d.pos - start
		any = any || n > 0
		dst = append(dst, d.buf[start:start+min(n, max(keep-len(dst), 0))]...)
		if d.pos < len(d.buf) {
			break
		}
	}
	return dst, any
}

// number reads a number by JSON's grammar, appending at most keep bytes of
// its literal to dst; over says the literal was longer.
func (d *Decoder) number(dst []byte, keep int) (out []byte, over bool, err error) {
	start := d.offset()
	one := func(c byte) {
		if len(dst) < keep {
			dst = append(dst, c)
		}
		d.pos++
	}
	if d.fill() && d.buf[d.pos] == '-' {
		one('-')
	}
	if !d.fill() {
		return dst, false, d.endErr()
	}
	switch c := d.buf[d.pos]; {
	case c == '0':
		one(c)
	case '1' <= c && c <= '9':
		dst, _ = d.digits(dst, keep)
	default:
		return dst, false, d.syntax("in numeric literal")
	}
	if d.fill() && d.buf[d.pos] == '.' {
		one('.')
		var ok bool
		if dst, ok = d.digits(dst, keep); !ok {
			return dst, false, d.syntax("after decimal point in numeric literal")
		}
	}
	if d.fill() && (d.buf[d.pos] == 'e' || d.buf[d.pos] == 'E') {
		one(d.buf[d.pos])
		if d.fill() && (d.buf[d.pos] == '+' || d.buf[d.pos] == '-') {
			one(d.buf[d.pos])
		}
		var ok bool
		if dst, ok = d.digits(dst, keep); !ok {
			return dst, false, d.syntax("in exponent of numeric literal")
		}
	}
	return dst, d.offset()-start > int64(keep), nil
}

// numberInPlace consumes a number at the next byte and returns its
// literal in the buffer, without the copy that number makes, when the
// buffer holds all of it and the byte after it, and it is well formed and
// at most MaxNumberLength bytes long. Otherwise it consumes nothing and
// reports false, for number to read it.
func (d *Decoder) numberInPlace() ([]byte, bool) {
	b := d.buf[d.pos:]
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return nil, false
	case b[i] == '0':
		i++
	case '1' <= b[i] && b[i] <= '9':
		i = digitsEnd(b, i+1)
	default:
		return nil, false
	}
	if i < len(b) && b[i] == '.' {
		j := digitsEnd(b, i+1)
		if j == i+1 {
			return nil, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digitsEnd(b, i)
		if j == i {
			return nil, false
		}
		i = j
	}
	// At the end of the buffer the number may go on in the input.
	if i >= len(b) || i > MaxNumberLength {
		return nil, false
	}
	d.pos += i
	return b[:i], true
}

// shortNumber consumes a number at the next byte and returns its value,
// when the buffer holds all of it and the byte after it, and it has at
// most 15 digits and no exponent: the readings most events carry. It
// computes what parseFloat does, in the same pass as the scan. Otherwise
// it consumes nothing and reports false.
func (d *Decoder) shortNumber() (float64, bool) {
	b := d.buf[d.pos:]
	i, neg := 0, len(b) > 0 && b[0] == '-'
	if neg {
		i = 1
	}
	var m uint64
	digits, frac := 0, 0
	switch {
	case i >= len(b):
		return 0, false
	case b[i] == '0':
		i, digits = i+1, 1
	case '1' <= b[i] && b[i] <= '9':
		for ; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
			m, digits = m*10+uint64(b[i]-'0'), digits+1
		}
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		for i++; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
			m, digits, frac = m*10+uint64(b[i]-'0'), digits+1, frac+1
		}
		if frac == 0 {
			return 0, false
		}
	}
	// An exponent, or a number that may go on past the buffer, is left to
	// the general reading; so are more digits than a float64 holds exactly.
	if i >= len(b) || b[i] == 'e' || b[i] == 'E' || digits > 15 {
		return 0, false
	}
	x := float64(m)
	if frac > 0 {
		x /= pow10[frac]
	}
	if neg {
		x = -x
	}
	d.pos += i
	return x, true
}

// digitsEnd returns the index of the first byte at or after i in b that
// is not a decimal digit.
func digitsEnd(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

// literal reads true, false or null, whichever starts at the next byte.
func (d *Decoder) literal() error {
	var word string
	switch d.buf[d.pos] {
	case 't':
		word = "true"
	case 'f':
		word = "false"
	default:
		word = "null"
	}
	for i := 0; i < len(word); i++ {
		if !d.fill() {
			return d.endErr()
		}
		if d.buf[d.pos] != word[i] {
			return d.syntax("in literal " + word + " (expecting " + quoteChar(word[i]) + ")")
		}
		d.pos++
	}
	return nil
}

// kindAt names the kind of the value starting with c, as JSONKind names
// decoded values, or "" if no value starts so.
func kindAt(c byte) string {
	switch {
	case c == '"':
		return "string"
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == 't' || c == 'f':
		return "boolean"
	case c == 'n':
		return "null"
	case c == '-' || '0' <= c && c <= '9':
		return "number"
	}
	return ""
}

// skip reads past the value at the next non-space byte, checking its
// syntax and keeping nothing of it: whatever its size, it costs one bit of
// d.stack per level of nesting, and nesting beyond MaxDepth (counting the
// depth levels the value sits in) is an error, as in encoding/json.
func (d *Decoder) skip(depth int) error {
	stack := d.stack[:0]
	defer func() { d.stack = stack[:0] }()
	for {
		opened, err := d.skipScalarOrOpen(&stack, depth)
		if err != nil {
			return err
		}
		if opened {
			continue
		}
		// After a value: close containers, or find the next value.
		for next := false; !next; {
			if len(stack) == 0 {
				return nil
			}
			c, ok := d.nonSpace()
			if !ok {
				return d.endErr()
			}
			top := stack[len(stack)-1]
			switch {
			case c == ',':
				d.pos++
				if top == '{' {
					if err := d.skipKey(); err != nil {
						return err
					}
				}
				next = true
			case c == top+2: // '{'+2 is '}', '['+2 is ']'
				d.pos++
				stack = stack[:len(stack)-1]
			case top == '{':
				return d.syntax("after object key:value pair")
			default:
				return d.syntax("after array element")
			}
		}
	}
}

// skipScalarOrOpen skips a scalar or an empty container, or opens a
// container, pushing it, and reads the first key of an object: opened then
// says a value comes next.
func (d *Decoder) skipScalarOrOpen(stack *[]byte, depth int) (opened bool, err error) {
	c, ok := d.nonSpace()
	if !ok {
		return false, d.endErr()
	}
	switch kindAt(c) {
	case "string":
		d.pos++
		_, _, err := d.str(nil, 0)
		return false, err
	case "number":
		if _, ok := d.numberInPlace(); ok {
			return false, nil
		}
		_, _, err := d.number(nil, 0)
		return false, err
	case "boolean", "null":
		return false, d.literal()
	case "object", "array":
		if depth+len(*stack)+1 > MaxDepth {
			return false, &SyntaxError{Msg: "exceeded max depth", Offset: d.offset() + 1}
		}
		d.pos++
		end, ok := d.nonSpace()
		if ok && end == c+2 {
			d.pos++
			return false, nil
		}
		*stack = append(*stack, c)
		if c == '{' {
			return true, d.skipKey()
		}
		return true, nil
	}
	return false, d.syntax("looking for beginning of value")
}

// skipKey skips an object's member name and its colon.
func (d *Decoder) skipKey() error {
	if err := d.expect('"', "looking for beginning of object key string"); err != nil {
		return err
	}
	if _, _, err := d.str(nil, 0); err != nil {
		return err
	}
	return d.expect(':', "after object key")
}

// stringRun returns how many bytes at the start of b are part of a JSON
// string as they are, up to a quote, a backslash or a control character,
// and whether any of them is not ASCII. It tests eight bytes at a time:
// strings were the lexers' largest cost, a byte-by-byte loop.
func stringRun[T string | []byte](b T) (n int, nonASCII bool) {
	const highs = 0x8080808080808080
	if len(b) < 8 {
		var seen byte
		for i := 0; i < len(b); i++ {
			c := b[i]
			if c == '"' || c == '\\' || c < 0x20 {
				return i, seen >= 0x80
			}
			seen |= c
		}
		return len(b), seen >= 0x80
	}
	var seen uint64
	for i := 0; ; i += 8 {
		if i+8 > len(b) {
			// The last eight bytes, overlapping those already tested.
			i = len(b) - 8
		}
		w := load64(b, i)
		if m := specials(w); m != 0 {
			k := bits.TrailingZeros64(m) / 8
			seen |= w & (1<<(8*k) - 1)
			return i + k, seen&highs != 0
		}
		seen |= w
		if i+8 == len(b) {
			return len(b), seen&highs != 0
		}
	}
}

// specials has the high bit of each byte of w set that is a control
// character, a quote or a backslash, and perhaps of bytes after the first
// such, where the subtractions borrow: the lowest bit set is exact.
func specials(w uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q, bs := w^('"'*ones), w^('\\'*ones)
	return ((w-0x20*ones)&^w | (q-ones)&^q | (bs-ones)&^bs) & highs
}

// load64 reads the eight bytes of b at i, little-endian; the compiler
// makes it one load.
func load64[T string | []byte](b T, i int) uint64 {
	b = b[i : i+8]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}
