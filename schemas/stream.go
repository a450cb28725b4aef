package schemas

import (
	"errors"
	"io"
	"sync"
)

// Why a hand-written decoder. Producers' bodies were decoded whole into
// map[string]any and validated afterwards: a body of unknown keys, deep
// nesting or a huge array cost many times its size in memory before the
// first check could refuse it. Decoder reads an event token by token and
// checks each member against the schema as it arrives, building only what
// a valid event keeps and skipping the rest without buffering it.
//
// Measured with BenchmarkReadBody in ingest (100 events, 2 cores):
// encoding/json's Decoder.Token alone, without validating or encoding
// anything, takes 480 µs and 8,400 allocations a body, since it boxes every
// token; the map-based reading it replaces took 510 µs; this lexer, with
// validation and encoding, 340 µs and 2,000 allocations. jsontext
// (github.com/go-json-experiment/json) is not a dependency of the module.
// Like decodeFast's parser, the lexer reads the buffer directly and
// allocates only the strings and maps an event keeps.

// MaxDepth bounds the nesting of a body, as encoding/json bounds it.
const MaxDepth = 10000

// MaxProblems bounds the problems listed for one event; Decoded.Omitted
// counts the rest, so that an event of many bad keys gets a short answer.
const MaxProblems = 5

// MaxNumberLength bounds a number's literal, in bytes: a float64 never
// needs more, and a longer one is refused rather than held in memory.
const MaxNumberLength = 256

// Framing says how the events of one input follow one another.
type Framing int

const (
	// FramingJSON is one object, an array of objects, or a sequence of
	// top-level values. A syntax error ends the input.
	FramingJSON Framing = iota
	// FramingNDJSON is one value per line. A syntax error rejects its line
	// only; blank lines are skipped.
	FramingNDJSON
)

// ErrLineTooLong ends an NDJSON input with a line over DecoderConfig.MaxLine.
var ErrLineTooLong = errors.New("line too long")

// DecoderConfig says how a Decoder reads its input.
type DecoderConfig struct {
	// Framing says how events follow one another.
	Framing Framing
	// MaxLine bounds an NDJSON line, in bytes; zero means no bound.
	MaxLine int
	// Fill gives fields that an event does not set (MQTT topic
	// placeholders), as if the event had set them to these strings.
	Fill map[string]string
	// KeepRaw makes Decoded.Raw hold each value's text, for dead letters.
	// It costs a copy of each value: set it only for input already in
	// memory.
	KeepRaw bool
}

// Decoded is one value read by a Decoder. It is valid until the next call
// of Next.
//
// A valid event (no Problems, NotObject "") is held as the Decoder read
// it, one value per field, and built into an Event only when Event is
// called: a collector that only encodes it (Encode) never builds the map
// that an Event holds, which was a fifth of its CPU.
type Decoded struct {
	// ID is the valid event's event_id, "" when the producer sent none.
	// Like the values Encode writes, it lives in the Decoder's memory
	// until the next Next: a caller that keeps it calls Event, which
	// copies it, or clones it.
	ID string
	// Problems lists at most MaxProblems problems of the event, in schema
	// order (event_id, the stream's fields, received_at, unknown names).
	Problems []FieldError
	// Omitted counts the event's problems beyond those listed.
	Omitted int
	// NotObject names the kind of a value that is not an object ("array",
	// "number", ...); such a value is no event at all.
	NotObject string
	// Raw is the value's JSON text, with DecoderConfig.KeepRaw.
	Raw []byte

	s     *Stream  // the stream of a valid event; nil otherwise
	d     *Decoder // whose eventState holds the valid event, until Event
	event Event    // what Event built
}

// Decoder reads the events of one stream from JSON text, validating each
// as it reads it. Build one with Stream.NewDecoder.
type Decoder struct {
	s   *Stream
	cfg DecoderConfig
	r   io.Reader

	buf  []byte
	pool *[]byte // where buf came from in bufPool, while the Decoder has it
	pos  int     // next unread byte of buf
	off  int64   // input offset of buf[0]
	rerr error   // why r gave no more: io.EOF or a read error

	lines     bool  // NDJSON: '\n' ends a value
	lineStart int64 // NDJSON: input offset of the current line
	state     frameState
	array     bool // the input is a JSON array
	values    int  // values returned so far

	raw     []byte
	rawFrom int // start of the recorded value in buf, or -1

	ev       eventState
	keyField int           // index of the partition key field, or -1
	probes   []internProbe // by field index, for stringValue
	fillKeys []string      // the names of cfg.Fill, sorted
	// Scratch reused for every event: names, strings, number literals, the
	// nesting of skipped values.
	key, lit, stack []byte
	// nonASCII says a raw byte of the last string read was not ASCII.
	nonASCII bool
}

type frameState int

const (
	frameStart    frameState = iota // nothing read yet
	frameArray                      // inside the top-level array
	frameAfter                      // after the top-level array
	frameSequence                   // top-level values one after another
	frameLines                      // NDJSON
	frameDone
)

// bufPool holds read buffers of Decoders that reached the end of their
// input. A buffer was a quarter of the bytes the collector allocated for
// a body of 100 events: bodies are mostly far smaller than bufSize, and a
// new buffer is zeroed.
var bufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, bufSize)
	return &b
}}

// NewDecoder returns a Decoder reading the events of s from r.
func (s *Stream) NewDecoder(r io.Reader, cfg DecoderConfig) *Decoder {
	d := s.newDecoder(r, cfg)
	d.pool = bufPool.Get().(*[]byte)
	d.buf = (*d.pool)[:0]
	return d
}

// NewDecoderBytes returns a Decoder of input already in memory: it reads
// input in place, without the read buffer, and never writes to it.
func (s *Stream) NewDecoderBytes(input []byte, cfg DecoderConfig) *Decoder {
	d := s.newDecoder(nil, cfg)
	// With the input as the whole buffer and the end already reached,
	// refill never moves or reads: the buffer is never written.
	d.buf, d.rerr = input[:len(input):len(input)], io.EOF
	return d
}

// newDecoder returns a Decoder without its buffer.
func (s *Stream) newDecoder(r io.Reader, cfg DecoderConfig) *Decoder {
	d := &Decoder{s: s, cfg: cfg, r: r, rawFrom: -1}
	if cfg.Framing == FramingNDJSON {
		d.lines, d.state = true, frameLines
	}
	d.ev.init(s)
	d.keyField = -1
	if i, ok := s.index[s.PartitionKey]; ok {
		d.keyField = i
	}
	d.fillKeys = sortedKeys(cfg.Fill)
	d.ev.filled = make([]bool, len(d.fillKeys))
	return d
}

// InArray reports whether the input is a JSON array, so far as read.
func (d *Decoder) InArray() bool { return d.array }

// Next reads the next value. It returns io.EOF at the end of the input, a
// *SyntaxError for malformed JSON, ErrLineTooLong, or the reader's error.
// After a *SyntaxError in NDJSON, Next goes on with the next line; in JSON
// nothing more can be read.
func (d *Decoder) Next(out *Decoded) error {
	err := d.next(out)
	if d.state == frameDone && d.pool != nil {
		// Nothing more is read, and nothing returned points into the
		// buffer (Raw is a copy): another Decoder can have it.
		*d.pool = d.buf[:0]
		bufPool.Put(d.pool)
		d.buf, d.pos, d.pool = nil, 0, nil
	}
	return err
}

// next is Next, but for giving back the buffer.
func (d *Decoder) next(out *Decoded) error {
	*out = Decoded{}
	for {
		switch d.state {
		case frameStart:
			c, ok := d.nonSpace()
			if !ok {
				return d.end()
			}
			d.state = frameSequence
			if c == '[' {
				d.pos++
				d.state, d.array = frameArray, true
			}
		case frameArray:
			return d.nextElement(out)
		case frameAfter:
			return d.afterArray()
		case frameSequence:
			if _, ok := d.nonSpace(); !ok {
				return d.end()
			}
			return d.fail(d.value(out, 0))
		case frameLines:
			return d.nextLine(out)
		default:
			return io.EOF
		}
	}
}

// end is Next's answer at the end of the input: io.EOF, or the read error
// that ended it.
func (d *Decoder) end() error {
	d.state = frameDone
	if d.rerr != nil && d.rerr != io.EOF {
		return d.rerr
	}
	return io.EOF
}

// fail ends the input at a syntax or read error in JSON framing.
func (d *Decoder) fail(err error) error {
	if err != nil {
		d.state = frameDone
	}
	return err
}

// nextElement reads the next element of the top-level array.
func (d *Decoder) nextElement(out *Decoded) error {
	c, ok := d.nonSpace()
	if !ok {
		return d.fail(d.endErr())
	}
	switch {
	case c == ']':
		d.pos++
		d.state = frameAfter
		return d.afterArray()
	case d.values > 0 && c != ',':
		// encoding/json's Decoder says this one at the byte itself.
		return d.fail(&SyntaxError{Msg: "expected comma after array element", Offset: d.offset()})
	case d.values > 0:
		d.pos++
	}
	return d.fail(d.value(out, 1))
}

// afterArray checks that nothing but white space follows the top-level
// array. An empty array ends the input there, whatever follows, so that it
// is reported as empty.
func (d *Decoder) afterArray() error {
	d.state = frameDone
	if d.values == 0 {
		return io.EOF
	}
	c, ok := d.nonSpace()
	if !ok {
		return d.end()
	}
	if kindAt(c) != "" {
		return &SyntaxError{Msg: "unexpected data after the top-level array", Offset: d.offset() + 1}
	}
	return d.syntax("looking for beginning of value")
}

// nextLine reads the value of the next non-blank NDJSON line.
func (d *Decoder) nextLine(out *Decoded) error {
	for {
		c, ok := d.nonSpace()
		if !ok {
			if err := d.checkLine(); err != nil {
				return err
			}
			return d.end()
		}
		if c != '\n' {
			break
		}
		if err := d.newLine(); err != nil {
			return err
		}
	}
	err := d.value(out, 0)
	if err == nil {
		if c, ok := d.nonSpace(); ok && c != '\n' {
			err = d.syntax("after top-level value")
		}
	}
	if err == nil {
		return d.checkLine()
	}
	var se *SyntaxError
	if !errors.As(err, &se) {
		return err
	}
	// The line is rejected alone: go on after its end.
	*out = Decoded{}
	if err := d.skipLine(); err != nil {
		return err
	}
	return se
}

// newLine consumes the '\n' at the next byte and starts a line.
func (d *Decoder) newLine() error {
	if err := d.checkLine(); err != nil {
		return err
	}
	d.pos++
	d.lineStart = d.offset()
	return nil
}

// checkLine fails once the current line is longer than MaxLine.
func (d *Decoder) checkLine() error {
	if d.cfg.MaxLine > 0 && d.offset()-d.lineStart > int64(d.cfg.MaxLine) {
		d.state = frameDone
		return ErrLineTooLong
	}
	return nil
}

// skipLine reads up to and including the next '\n', keeping nothing.
func (d *Decoder) skipLine() error {
	for d.fill() {
		for i := d.pos; i < len(d.buf); i++ {
			if d.buf[i] == '\n' {
				d.pos = i
				return d.newLine()
			}
		}
		d.pos = len(d.buf)
		if err := d.checkLine(); err != nil {
			return err
		}
	}
	return d.checkLine()
}

// value reads one top-level value (an element, in an array) at depth:
// an event object, or anything else, which is skipped.
func (d *Decoder) value(out *Decoded, depth int) error {
	c, ok := d.nonSpace()
	if !ok {
		return d.endErr()
	}
	if d.cfg.KeepRaw {
		d.raw, d.rawFrom = d.raw[:0], d.pos
	}
	var err error
	if c == '{' {
		err = d.event(out, depth+1)
	} else if out.NotObject = kindAt(c); out.NotObject == "" {
		err = d.syntax("looking for beginning of value")
	} else {
		err = d.skip(depth)
	}
	if d.rawFrom >= 0 {
		d.raw = append(d.raw, d.buf[d.rawFrom:d.pos]...)
		d.rawFrom = -1
		out.Raw = d.raw
	}
	if err != nil {
		*out = Decoded{}
		return err
	}
	d.values++
	return nil
}
