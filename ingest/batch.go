package ingest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/sluicehq/sluice/schemas"
)

// IndexError is one problem with one event of a batch. Index counts the
// events of the input from 0: the elements of a JSON array, the top-level
// values of a JSON body, or the non-blank lines of an NDJSON body.
type IndexError struct {
	Index int    `json:"index"`
	Error string `json:"error"`
}

// Response is what became of a batch's events; it is also the body of the
// HTTP collector's 202 and 400 answers.
type Response struct {
	Accepted int `json:"accepted"`
	Rejected int `json:"rejected"`
	// Errors lists problems, one per field, in input order; never null. It
	// is capped (GateConfig.MaxReportedErrors) so that a large bad input
	// does not produce a large answer.
	Errors []IndexError `json:"errors"`
	// ErrorsOmitted counts the problems left out of Errors: by the cap on
	// the list, and beyond the first schemas.MaxProblems of one event.
	ErrorsOmitted int `json:"errors_omitted,omitempty"`
}

// ErrTooManyEvents is returned while reading a batch with more events than
// GateConfig.MaxEvents.
var ErrTooManyEvents = errors.New("too many events in one batch")

// Batch collects the events of one input (an HTTP body, an MQTT message,
// syslog lines) for one stream. Each event is validated and encoded as soon
// as it is added, so decoded maps, several times larger than their JSON, do
// not pile up. A Batch is used by one goroutine; Commit sends it.
type Batch struct {
	g      *Gate
	stream *schemas.Stream
	topic  string
	origin Origin
	now    time.Time

	next int // index of the next event
	msgs []Message
	dead []Message // dead letters, produced with msgs
	// enc holds the keys and values of the inEnc messages from
	// msgs[sealed] on, back to back, each message's value and then its
	// key, as they were encoded; seal moves them out. Once it is full
	// (encFull), the batch's other events are encoded apart, each in
	// scratch and then copied out. Encoding into one buffer rather than
	// allocating for each event (a twentieth of the collector's CPU
	// samples) makes one allocation per request.
	enc, scratch  []byte
	sealed, inEnc int
	encFull       bool
	resp          Response
	// counted is set once the rejected events are in the metrics.
	counted bool
}

// Report returns what became of the events so far, with Accepted set to
// the events that Commit would produce.
func (b *Batch) Report() Response {
	r := b.resp
	r.Accepted = len(b.msgs)
	return r
}

// Len is the number of events in the batch, valid or not.
func (b *Batch) Len() int { return b.next }

// count claims the next index, failing once the batch has too many events.
func (b *Batch) count() (int, error) {
	if b.next >= b.g.maxEvents {
		return 0, fmt.Errorf("%w: more than %d", ErrTooManyEvents, b.g.maxEvents)
	}
	i := b.next
	b.next++
	return i, nil
}

func (b *Batch) report(index int, problem string) {
	if len(b.resp.Errors) < b.g.maxReportedErrors {
		b.resp.Errors = append(b.resp.Errors, IndexError{Index: index, Error: problem})
	} else {
		b.resp.ErrorsOmitted++
	}
}

// reportField is report for a problem with a field, formatted only when
// it is listed: a body of many bad events costs no string for each.
func (b *Batch) reportField(index int, fe schemas.FieldError) {
	if len(b.resp.Errors) < b.g.maxReportedErrors {
		b.report(index, fe.Error())
	} else {
		b.resp.ErrorsOmitted++
	}
}

// Reject counts the next event as rejected for problem, dead-lettering raw
// when the origin asks for it. Sources call it for input they cannot even
// decode into an event (a syslog line that does not parse, say).
func (b *Batch) Reject(raw []byte, problem string) error {
	i, err := b.count()
	if err != nil {
		return err
	}
	b.resp.Rejected++
	b.report(i, problem)
	if b.origin.DeadLetter {
		b.deadLetter(raw, problem)
	}
	return nil
}

// Add validates, completes and encodes one decoded JSON value (what
// encoding/json decodes into an any). An invalid event is reported, and
// dead-lettered if the origin asks for it; the error is only for a batch
// that is full. Bodies read with ReadJSON and ReadNDJSON never become such
// values: Add is for sources that parse their input themselves.
func (b *Batch) Add(v any) error { return b.AddWithID(v, "") }

// AddWithID is Add with the event_id to give the event if it has none; an
// empty id falls back to the origin's Identity or a random one.
func (b *Batch) AddWithID(v any, id string) error {
	obj, ok := v.(map[string]any)
	if !ok {
		return b.Reject(marshalRaw(v), "not a JSON object (got "+schemas.JSONKind(v)+")")
	}
	i, err := b.count()
	if err != nil {
		return err
	}
	for k, fill := range b.origin.Fields {
		if _, set := obj[k]; !set {
			obj[k] = fill
		}
	}
	ev, ferrs := b.stream.Validate(obj)
	if len(ferrs) > 0 {
		b.rejectInvalid(i, ferrs, 0, func() []byte { return marshalRaw(obj) })
		return nil
	}
	b.complete(i, &validatedEvent{b.stream, ev, obj}, id)
	return nil
}

// validEvent is a valid event for complete to stamp and encode.
type validEvent interface {
	// id returns the producer's event_id, "" if none.
	id() string
	// appendTo appends the event, encoded with the event_id and
	// received_at given, and then its partition key to b (a message's
	// value and key), and returns b and the length of the value; on an
	// error, b as it was.
	appendTo(b []byte, id string, receivedAt time.Time) ([]byte, int, error)
	// raw returns the event's JSON, for a dead letter.
	raw() []byte
}

// decodedEvent is an event a Decoder read: it encodes without building
// the Event, and as an interface it takes no allocation.
type decodedEvent struct{ v *schemas.Decoded }

func (e decodedEvent) id() string { return e.v.ID }
func (e decodedEvent) appendTo(b []byte, id string, at time.Time) ([]byte, int, error) {
	return e.v.AppendKeyed(b, id, at)
}
func (e decodedEvent) raw() []byte { return bytes.Clone(e.v.Raw) }

// validatedEvent is an event Validate returned for obj.
type validatedEvent struct {
	st  *schemas.Stream
	ev  schemas.Event
	obj map[string]any
}

func (e *validatedEvent) id() string { return e.ev.ID }
func (e *validatedEvent) appendTo(b []byte, id string, at time.Time) ([]byte, int, error) {
	e.ev.ID, e.ev.ReceivedAt = id, at
	return e.st.AppendKeyed(b, e.ev)
}
func (e *validatedEvent) raw() []byte { return marshalRaw(e.obj) }

// rejectInvalid rejects event i, already counted, for its problems and
// omitted more that are only counted.
func (b *Batch) rejectInvalid(i int, problems []schemas.FieldError, omitted int, raw func() []byte) {
	b.resp.Rejected++
	for _, fe := range problems {
		b.reportField(i, fe)
	}
	b.resp.ErrorsOmitted += omitted
	if b.origin.DeadLetter {
		all := make([]string, len(problems))
		for j, fe := range problems {
			all[j] = fe.Error()
		}
		reason := strings.Join(all, "; ")
		if omitted > 0 {
			reason += fmt.Sprintf("; and %d more", omitted)
		}
		b.deadLetter(raw(), reason)
	}
}

// complete gives valid event i, already counted, its event_id (the
// producer's, id, derived or random) and received_at, encodes it and adds
// it to the batch.
func (b *Batch) complete(i int, ev validEvent, id string) {
	if own := ev.id(); own != "" {
		id = own
	}
	if id == "" && b.origin.Identity != nil {
		id = DeriveID(b.origin.Identity, indexBytes(i))
	}
	if id == "" {
		// v7: time-ordered, so IDs Sluice assigns sort by arrival.
		u, err := uuid.NewV7()
		if err != nil {
			b.rejectValid(i, ev.raw, "event_id: cannot assign one: "+err.Error())
			return
		}
		id = u.String()
	}
	key, val, err := b.encode(ev, id)
	if err != nil {
		b.rejectValid(i, ev.raw, "event: "+err.Error())
		return
	}
	b.msgs = append(b.msgs, Message{Topic: b.topic, Key: key, Value: val, Time: b.now})
}

// encode encodes ev with event_id id and returns its key and value: in
// b.enc while it has room, else in an allocation of their own, encoded in
// b.scratch first (a buffer on the stack would escape through the
// interface call, an allocation of its own for each event).
func (b *Batch) encode(ev validEvent, id string) (key, val []byte, err error) {
	if b.enc == nil && !b.encFull {
		b.enc = getEncoded()
	}
	dst := b.enc
	if b.encFull {
		dst = b.scratch[:0]
	}
	start := len(dst)
	enc, n, err := ev.appendTo(dst, id, b.now)
	if err != nil {
		return nil, nil, err
	}
	if err := b.checkSize(len(enc) - start); err != nil {
		return nil, nil, err
	}
	switch {
	case b.encFull:
		b.scratch = enc
	case cap(enc) == cap(b.enc):
		b.enc = enc
		b.inEnc++
		key, val = splitKeyed(enc[start:], n)
		return key, val, nil
	default:
		// b.enc is full: this event and the batch's others go apart, so
		// that no buffer grows past encodedCap (and seal copies no more).
		b.encFull = true
	}
	key, val = splitKeyed(bytes.Clone(enc[start:]), n)
	return key, val, nil
}

// splitKeyed splits an event that AppendKeyed appended, its value of n
// bytes and then its key, into the key and the value, neither of which
// can be appended to over the other or what follows.
func splitKeyed(b []byte, n int) (key, val []byte) {
	return b[n:len(b):len(b)], b[:n:n]
}

// checkSize refuses an event of size bytes encoded (key and value) over
// the gate's limit.
func (b *Batch) checkSize(size int) error {
	if size > b.g.maxEventBytes {
		return fmt.Errorf("%d bytes encoded, over the %d-byte limit", size, b.g.maxEventBytes)
	}
	return nil
}

// rejectValid rejects event i, already counted, for one problem.
func (b *Batch) rejectValid(i int, raw func() []byte, problem string) {
	b.resp.Rejected++
	b.report(i, problem)
	if b.origin.DeadLetter {
		b.deadLetter(raw(), problem)
	}
}

// malformed fails the whole input: after a syntax error the rest of a JSON
// document cannot be read reliably, and accepting the part before it would
// leave the producer guessing which events made it. The broken value counts
// as one more rejected event, and nothing before it is accepted; the raw
// input is dead-lettered whole when the origin asks for it.
func (b *Batch) malformed(problem string) {
	b.resp.Rejected += len(b.msgs) + 1
	b.msgs = nil
	b.sealed, b.inEnc, b.encFull = 0, 0, false
	if b.enc != nil {
		b.enc = b.enc[:0]
	}
	b.dead = nil
	b.report(b.next, problem)
	b.next++
	if b.origin.DeadLetter {
		b.deadLetter(b.origin.Raw, problem)
	}
}

// DeriveID returns the deterministic event_id of an event known by parts
// (for MQTT the topic, the payload and the event's index in it; for syslog
// the raw line), so that the same input resent after a crash gets the same
// id and the workers count it once. It is a UUID of version 8 (RFC 9562's
// custom layout) holding 122 bits of one SHA-256 over a namespace and the
// length-prefixed parts: one hash per event on the collectors' hot path.
func DeriveID(parts ...[]byte) string {
	h := sha256.New()
	h.Write(idSpace[:])
	var n [8]byte
	for _, p := range parts {
		// Length prefixes keep ("ab","c") apart from ("a","bc").
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	var sum [sha256.Size]byte
	var u uuid.UUID
	copy(u[:], h.Sum(sum[:0]))
	u[6] = u[6]&0x0f | 0x80 // version 8
	u[8] = u[8]&0x3f | 0x80 // the RFC 9562 variant
	return u.String()
}

// idSpace separates derived event_ids from any other use of the hash.
var idSpace = uuid.MustParse("5a1c3e6e-0d1b-4c8e-9a57-2f7c1d0b5e11")

func indexBytes(i int) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	return b[:]
}

// marshalRaw gives back JSON for a decoded value, to dead-letter it.
func marshalRaw(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(fmt.Sprint(v))
	}
	return b
}

// ReadError marks an error from the reader a batch reads, as opposed to a
// problem with the JSON in it: the decoder passes reader errors through
// unchanged, so tagging them is how the two are told apart.
type ReadError struct {
	What string
	Err  error
}

func (e *ReadError) Error() string { return e.What + ": " + e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

// ErrInputTooLarge is returned when the input, or one NDJSON line of it,
// passes its size limit.
var ErrInputTooLarge = errors.New("input too large")

// isReadFailure reports whether err ends the input for a reason that is not
// the JSON in it.
func isReadFailure(err error) bool {
	var re *ReadError
	return errors.As(err, &re) || errors.Is(err, ErrInputTooLarge) || errors.Is(err, bufio.ErrTooLong)
}

// ReadJSON adds a single object, an array of objects, or a sequence of
// top-level values from r. It returns an error only for what ends the
// input as a whole: ErrTooManyEvents, or a failure of r (a *ReadError,
// ErrInputTooLarge); JSON problems are reported per event.
//
// Events are validated as they are read (schemas.Decoder), so that what a
// body costs in memory is bounded by what its valid events keep, not by
// its size: unknown keys, deep nesting or long values are refused as they
// come and skipped without being held.
func (b *Batch) ReadJSON(r io.Reader) error {
	return b.readJSON(b.decoder(r, schemas.FramingJSON, 0))
}

// ReadJSONBytes is ReadJSON of input already in memory (an MQTT payload),
// read in place.
func (b *Batch) ReadJSONBytes(input []byte) error {
	return b.readJSON(b.stream.NewDecoderBytes(input, b.decoderConfig(schemas.FramingJSON, 0)))
}

func (b *Batch) readJSON(d *schemas.Decoder) error {
	var v schemas.Decoded
	// Declared once: errors.As makes it escape, and an allocation per
	// event would make a body of a million empty objects cost megabytes.
	var se *schemas.SyntaxError
	for {
		err := d.Next(&v)
		switch {
		case err == io.EOF:
			switch {
			case b.next > 0:
			case d.InArray():
				b.report(0, "empty array: no events")
			default:
				b.report(0, "empty body: expected a JSON object, an array of objects, or NDJSON")
			}
			return nil
		case errors.As(err, &se):
			b.malformed(jsonProblem(se))
			return nil
		case err != nil:
			return readFailure(err)
		}
		if err := b.addDecoded(&v); err != nil {
			return err
		}
	}
}

// ReadNDJSON adds one JSON object per line of r; lines longer than maxLine
// bytes end the input with ErrInputTooLarge. Lines are independent, so a
// malformed line rejects only itself. Blank lines are skipped and take no
// index.
func (b *Batch) ReadNDJSON(r io.Reader, maxLine int) error {
	d := b.decoder(r, schemas.FramingNDJSON, maxLine)
	var v schemas.Decoded
	// Declared once: errors.As makes it escape, and an allocation per
	// event would make a body of a million empty objects cost megabytes.
	var se *schemas.SyntaxError
	for {
		err := d.Next(&v)
		switch {
		case err == io.EOF:
			if b.next == 0 {
				b.report(0, "empty body: no NDJSON lines")
			}
			return nil
		case errors.Is(err, schemas.ErrLineTooLong):
			return fmt.Errorf("%w: a line over %d bytes", ErrInputTooLarge, maxLine)
		case errors.As(err, &se):
			err = b.Reject(nil, jsonProblem(se))
		case err != nil:
			return readFailure(err)
		default:
			err = b.addDecoded(&v)
		}
		if err != nil {
			return err
		}
	}
}

// decoder returns a schemas.Decoder of the batch's stream over r. Only an
// origin that dead-letters needs each event's text, and its input is
// already in memory (an MQTT payload).
func (b *Batch) decoder(r io.Reader, framing schemas.Framing, maxLine int) *schemas.Decoder {
	return b.stream.NewDecoder(r, b.decoderConfig(framing, maxLine))
}

func (b *Batch) decoderConfig(framing schemas.Framing, maxLine int) schemas.DecoderConfig {
	return schemas.DecoderConfig{Framing: framing, MaxLine: maxLine, Fill: b.origin.Fields, KeepRaw: b.origin.DeadLetter}
}

// addDecoded adds one value a Decoder read.
func (b *Batch) addDecoded(v *schemas.Decoded) error {
	ev := decodedEvent{v}
	if v.NotObject != "" {
		return b.Reject(ev.raw(), "not a JSON object (got "+v.NotObject+")")
	}
	i, err := b.count()
	if err != nil {
		return err
	}
	if len(v.Problems) > 0 {
		b.rejectInvalid(i, v.Problems, v.Omitted, ev.raw)
		return nil
	}
	b.complete(i, ev, "")
	return nil
}

// readFailure returns an error of the reader as ReadJSON's callers expect
// one: tagged as a read failure.
func readFailure(err error) error {
	if isReadFailure(err) {
		return err
	}
	return &ReadError{What: "reading body", Err: err}
}

// jsonProblem describes malformed JSON for the producer.
func jsonProblem(se *schemas.SyntaxError) string {
	if se.EOF {
		return "invalid JSON: unexpected end of input"
	}
	return fmt.Sprintf("invalid JSON near byte %d: %s", se.Offset, se.Msg)
}

// seal moves the keys and values in b.enc into one allocation of exactly
// their size, and gives b.enc back for another batch to encode into. The
// messages then hold no more memory than the gate's byte admission weighs,
// and a batch being read holds at most encodedCap besides them.
func (b *Batch) seal() {
	if b.enc == nil {
		return
	}
	buf := append([]byte(nil), b.enc...)
	off := 0
	for i := b.sealed; i < b.sealed+b.inEnc; i++ {
		m := &b.msgs[i]
		nv, nk := len(m.Value), len(m.Key)
		m.Value = buf[off : off+nv : off+nv]
		m.Key = buf[off+nv : off+nv+nk : off+nv+nk]
		off += nv + nk
	}
	b.sealed, b.inEnc, b.encFull = len(b.msgs), 0, false
	putEncoded(b.enc)
	b.enc = nil
}

// encodedPool holds the buffers batches encode their events into, for
// the next batches.
var encodedPool sync.Pool

// encodedCap is an encoding buffer's capacity: an HTTP body of a hundred
// events of a few hundred bytes.
const encodedCap = 64 << 10

func getEncoded() []byte {
	if p, ok := encodedPool.Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return make([]byte, 0, encodedCap)
}

func putEncoded(b []byte) {
	encodedPool.Put(&b)
}
