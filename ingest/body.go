package ingest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/sluicehq/sluice/schemas"
)

// IndexError is one problem with one event of a request. Index counts the
// events of the body from 0: the elements of a JSON array, the top-level
// values of a JSON body, or the non-blank lines of an NDJSON body.
type IndexError struct {
	Index int    `json:"index"`
	Error string `json:"error"`
}

// Response is the body of the 202 and 400 answers to an event post.
type Response struct {
	Accepted int `json:"accepted"`
	Rejected int `json:"rejected"`
	// Errors lists problems, one per field, in body order; never null. It
	// is capped (CollectorConfig.MaxReportedErrors) so that a large bad body
	// does not produce a large answer.
	Errors []IndexError `json:"errors"`
	// ErrorsOmitted counts the problems left out of Errors by the cap.
	ErrorsOmitted int `json:"errors_omitted,omitempty"`
}

// errTooLarge is returned by maxReader once the decompressed body passes
// the limit.
var errTooLarge = errors.New("body too large")

// requestError fails a whole request with an HTTP status.
type requestError struct {
	status int
	msg    string
}

// bodyError is a failure to read or decompress the body, as opposed to a
// problem with the JSON in it. json.Decoder and bufio.Scanner pass reader
// errors through unchanged, so tagging them here is how we tell the two apart.
type bodyError struct {
	what string
	err  error
}

func (e *bodyError) Error() string { return e.what + ": " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

type tagReader struct {
	r    io.Reader
	what string
}

func (t tagReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		var be *bodyError
		if !errors.As(err, &be) {
			err = &bodyError{what: t.what, err: err}
		}
	}
	return n, err
}

// maxReader fails with errTooLarge when more than n bytes are read, unlike
// io.LimitReader which would silently truncate. It is what stops a gzip bomb:
// only the compressed size is bounded by http.MaxBytesReader.
type maxReader struct {
	r io.Reader
	n int64 // bytes still allowed
}

func (m *maxReader) Read(p []byte) (int, error) {
	if m.n <= 0 {
		// At the limit exactly, the body may also be at its end: probe.
		var one [1]byte
		k, err := m.r.Read(one[:])
		if k > 0 {
			return 0, errTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > m.n {
		p = p[:m.n]
	}
	k, err := m.r.Read(p)
	m.n -= int64(k)
	return k, err
}

// fullReader makes every Read fill its buffer unless the body ends or
// fails. json.Decoder rescans all buffered whitespace on each refill while
// it looks for the next token; with small reads (network chunks, gzip
// windows), a body of 8 MiB of blanks would cost it quadratic time. With
// full reads its buffer doubles on every refill, and the rescans add up to
// a linear cost. bufio.Scanner looking for a newline behaves the same.
type fullReader struct{ r io.Reader }

func (f fullReader) Read(p []byte) (int, error) {
	n, err := io.ReadFull(f.r, p)
	if err == io.ErrUnexpectedEOF {
		// A short read then the end: tagReader wraps every real error, so a
		// bare ErrUnexpectedEOF can only come from io.ReadFull itself.
		err = io.EOF
	}
	return n, err
}

// openBody returns the decompressed, size-limited body.
func (c *Collector) openBody(w http.ResponseWriter, r *http.Request) (io.Reader, *requestError) {
	limit := c.maxBodyBytes
	if r.ContentLength > limit {
		return nil, c.tooLarge()
	}
	var body io.Reader = tagReader{r: http.MaxBytesReader(w, r.Body, limit), what: "reading body"}
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
		return fullReader{body}, nil
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			if rerr := c.readFailure(err); rerr != nil {
				return nil, rerr
			}
			return nil, &requestError{http.StatusBadRequest, "invalid gzip body: " + err.Error()}
		}
		return fullReader{&maxReader{r: tagReader{r: zr, what: "invalid gzip body"}, n: limit}}, nil
	default:
		return nil, &requestError{http.StatusUnsupportedMediaType,
			fmt.Sprintf("unsupported Content-Encoding %q: use gzip or none", schemas.Truncate(enc, 32))}
	}
}

func (c *Collector) tooLarge() *requestError {
	return &requestError{http.StatusRequestEntityTooLarge,
		fmt.Sprintf("body larger than %d bytes (the limit applies after decompression too)", c.maxBodyBytes)}
}

// readFailure maps a body read error to a request error, or returns nil if
// err is not one (so it is a JSON problem).
func (c *Collector) readFailure(err error) *requestError {
	var mbe *http.MaxBytesError
	if errors.Is(err, errTooLarge) || errors.As(err, &mbe) || errors.Is(err, bufio.ErrTooLong) {
		return c.tooLarge()
	}
	var be *bodyError
	if errors.As(err, &be) {
		return &requestError{http.StatusBadRequest, be.Error()}
	}
	return nil
}

// isNDJSON reports whether the Content-Type announces one JSON value per line.
// Anything else is read as JSON, which also accepts concatenated objects, so
// NDJSON sent with a generic type still works as long as no line is malformed.
func isNDJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	switch mt {
	case "application/x-ndjson", "application/ndjson", "application/jsonl",
		"application/x-jsonlines", "application/jsonlines":
		return true
	}
	return false
}

// batch turns a body into Kafka messages and per-event errors. Each event is
// validated and encoded as soon as it is decoded, so the decoded maps, which
// are several times larger than their JSON, do not pile up.
type batch struct {
	c      *Collector
	stream *schemas.Stream
	topic  string
	now    time.Time

	next int // index of the next event
	msgs []Message
	resp Response
}

func (c *Collector) newBatch(st *schemas.Stream, now time.Time) *batch {
	return &batch{
		c:      c,
		stream: st,
		topic:  c.topics[st.Name],
		now:    now,
		resp:   Response{Errors: []IndexError{}},
	}
}

// count claims the next index, failing once the request has too many events.
func (b *batch) count() (int, *requestError) {
	if b.next >= b.c.maxEvents {
		return 0, &requestError{http.StatusRequestEntityTooLarge,
			fmt.Sprintf("more than %d events in one request: split it", b.c.maxEvents)}
	}
	i := b.next
	b.next++
	return i, nil
}

func (b *batch) report(index int, problem string) {
	if len(b.resp.Errors) < b.c.maxReportedErrors {
		b.resp.Errors = append(b.resp.Errors, IndexError{Index: index, Error: problem})
	} else {
		b.resp.ErrorsOmitted++
	}
}

// reject counts the next event as rejected for one problem.
func (b *batch) reject(problem string) *requestError {
	i, rerr := b.count()
	if rerr != nil {
		return rerr
	}
	b.resp.Rejected++
	b.report(i, problem)
	return nil
}

// add validates, completes and encodes one decoded JSON value.
func (b *batch) add(v any) *requestError {
	obj, ok := v.(map[string]any)
	if !ok {
		return b.reject("not a JSON object (got " + schemas.JSONKind(v) + ")")
	}
	i, rerr := b.count()
	if rerr != nil {
		return rerr
	}
	ev, ferrs := b.stream.Validate(obj)
	if len(ferrs) > 0 {
		b.resp.Rejected++
		for _, fe := range ferrs {
			b.report(i, fe.Error())
		}
		return nil
	}
	if ev.ID == "" {
		// v7: time-ordered, so IDs Sluice assigns sort by arrival.
		id, err := uuid.NewV7()
		if err != nil {
			b.resp.Rejected++
			b.report(i, "event_id: cannot assign one: "+err.Error())
			return nil
		}
		ev.ID = id.String()
	}
	ev.ReceivedAt = b.now
	val, err := b.stream.Encode(ev)
	if err != nil {
		b.resp.Rejected++
		b.report(i, "event: "+err.Error())
		return nil
	}
	if size := len(ev.Key) + len(val); size > b.c.maxEventBytes {
		b.resp.Rejected++
		b.report(i, fmt.Sprintf("event: %d bytes encoded, over the %d-byte limit", size, b.c.maxEventBytes))
		return nil
	}
	b.msgs = append(b.msgs, Message{Topic: b.topic, Key: []byte(ev.Key), Value: val, Time: b.now})
	return nil
}

// malformed fails the whole body: after a syntax error the rest of a JSON
// document cannot be read reliably, and accepting the part before it would
// leave the client guessing which events made it. The broken value counts as
// one more rejected event, and nothing before it is accepted.
func (b *batch) malformed(problem string) {
	b.resp.Rejected += len(b.msgs) + 1
	b.msgs = nil
	b.report(b.next, problem)
	b.next++
}

// readJSON reads a single object, an array of objects, or a sequence of
// top-level values.
func (b *batch) readJSON(r io.Reader) *requestError {
	br := bufio.NewReaderSize(r, 64<<10)
	first, skipped, err := peekNonSpace(br)
	if err == io.EOF {
		b.report(0, "empty body: expected a JSON object, an array of objects, or NDJSON")
		return nil
	}
	if err != nil {
		return b.jsonFailure(err, skipped)
	}
	dec := json.NewDecoder(br)
	if first != '[' {
		for {
			var v any
			err := dec.Decode(&v)
			if err == io.EOF {
				return nil
			}
			if err != nil {
				if done, rerr := b.decodeError(err, skipped); done {
					return rerr
				}
				continue
			}
			if rerr := b.add(v); rerr != nil {
				return rerr
			}
		}
	}

	if _, err := dec.Token(); err != nil { // the '['
		return b.jsonFailure(err, skipped)
	}
	for dec.More() {
		var v any
		if err := dec.Decode(&v); err != nil {
			if done, rerr := b.decodeError(err, skipped); done {
				return rerr
			}
			continue
		}
		if rerr := b.add(v); rerr != nil {
			return rerr
		}
	}
	if _, err := dec.Token(); err != nil { // the ']', or why it is missing
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return b.jsonFailure(err, skipped)
	}
	if b.next == 0 {
		b.report(0, "empty array: no events")
		return nil
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			err = errors.New("unexpected data after the top-level array")
		}
		return b.jsonFailure(err, skipped)
	}
	return nil
}

// decodeError handles a failed Decode. A type error (a number out of float64
// range) leaves the decoder in step, so only that event is rejected; anything
// else ends the body. done reports whether to stop reading.
func (b *batch) decodeError(err error, skipped int64) (done bool, rerr *requestError) {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return false, b.reject(typeErrorProblem(te))
	}
	return true, b.jsonFailure(err, skipped)
}

// jsonFailure ends reading: a body read error becomes the request's status,
// a JSON error makes the body malformed.
func (b *batch) jsonFailure(err error, skipped int64) *requestError {
	if rerr := b.c.readFailure(err); rerr != nil {
		return rerr
	}
	b.malformed(jsonProblem(err, skipped))
	return nil
}

// readNDJSON reads one JSON object per line. Lines are independent, so a
// malformed line rejects only itself. Blank lines are skipped and take no
// index.
func (b *batch) readNDJSON(r io.Reader) *requestError {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), int(b.c.maxBodyBytes)+64)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var v any
		if err := json.Unmarshal(line, &v); err != nil {
			var te *json.UnmarshalTypeError
			problem := jsonProblem(err, 0)
			if errors.As(err, &te) {
				problem = typeErrorProblem(te)
			}
			if rerr := b.reject(problem); rerr != nil {
				return rerr
			}
			continue
		}
		if rerr := b.add(v); rerr != nil {
			return rerr
		}
	}
	if err := sc.Err(); err != nil {
		if rerr := b.c.readFailure(err); rerr != nil {
			return rerr
		}
		return &requestError{http.StatusBadRequest, "reading body: " + err.Error()}
	}
	if b.next == 0 {
		b.report(0, "empty body: no NDJSON lines")
	}
	return nil
}

// peekNonSpace consumes leading JSON whitespace and returns the next byte
// without consuming it, and how many bytes it skipped.
func peekNonSpace(br *bufio.Reader) (byte, int64, error) {
	var skipped int64
	for {
		c, err := br.ReadByte()
		if err != nil {
			return 0, skipped, err
		}
		switch c {
		case ' ', '\t', '\r', '\n':
			skipped++
			continue
		}
		_ = br.UnreadByte()
		return c, skipped, nil
	}
}

func jsonProblem(err error, offsetBase int64) string {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se) && se.Error() != "unexpected end of JSON input":
		return fmt.Sprintf("invalid JSON near byte %d: %s", offsetBase+se.Offset, se.Error())
	case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF):
		return "invalid JSON: unexpected end of input"
	}
	return "invalid JSON: " + strings.TrimPrefix(err.Error(), "json: ")
}

// typeErrorProblem describes the one type error decoding into an empty
// interface can produce: a number too large for float64. The decoder does
// not say which field held it.
func typeErrorProblem(te *json.UnmarshalTypeError) string {
	return fmt.Sprintf("invalid JSON: %s out of range", te.Value)
}
