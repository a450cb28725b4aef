package httpapi

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/schemas"
)

// requestError fails a whole request with an HTTP status.
type requestError struct {
	status int
	msg    string
}

type tagReader struct {
	r    io.Reader
	what string
}

func (t tagReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		var re *ingest.ReadError
		if !errors.As(err, &re) && !errors.Is(err, ingest.ErrInputTooLarge) {
			err = &ingest.ReadError{What: t.what, Err: err}
		}
	}
	return n, err
}

// maxReader fails with ingest.ErrInputTooLarge when more than n bytes are read, unlike
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
			return 0, ingest.ErrInputTooLarge
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

// errBodyTooSlow ends a body that arrived below the collector's minimum
// rate; the collector answers it 408.
var errBodyTooSlow = errors.New("request body arrived too slowly")

// rateReader enforces a minimum average transfer rate on a request body,
// as Kestrel's MinRequestBodyDataRate does, so that a client trickling its
// body (or sending none) cannot hold a connection, a goroutine and maybe a
// parsing slot for long. Before every read it sets the connection's read
// deadline to when the average would fall below rate: grace, plus the
// time the bytes read so far pay for, minus the time already spent waiting
// for them. Only time spent in the underlying Read counts, so a server
// slow to read (busy CPU, a parsing slot to wait for) does not count
// against the client.
type rateReader struct {
	r io.ReadCloser
	// setDeadline sets the connection's read deadline; nil when the
	// connection does not support it (then no rate is enforced).
	setDeadline func(time.Time) error
	now         func() time.Time
	rate        float64 // bytes per second
	grace       time.Duration
	read        int64         // bytes read so far
	waited      time.Duration // time spent in r.Read so far
	done        bool          // the body ended: the deadline is cleared
}

func newRateReader(r io.ReadCloser, setDeadline func(time.Time) error, rate int64, grace time.Duration) *rateReader {
	return &rateReader{r: r, setDeadline: setDeadline, now: time.Now, rate: float64(rate), grace: grace}
}

// allowance is how long the next read may wait for data.
func (rr *rateReader) allowance() time.Duration {
	paid := time.Duration(math.Min(float64(rr.read)/rr.rate*float64(time.Second), math.MaxInt64/2))
	return rr.grace + paid - rr.waited
}

// Read reads from the body with a deadline that leaves it just the
// allowance the minimum rate has earned so far.
func (rr *rateReader) Read(p []byte) (int, error) {
	if rr.setDeadline == nil || rr.done {
		return rr.r.Read(p)
	}
	left := rr.allowance()
	if left <= 0 {
		return 0, rr.tooSlow()
	}
	start := rr.now()
	if err := rr.setDeadline(start.Add(left)); err != nil {
		return 0, fmt.Errorf("set body read deadline: %w", err)
	}
	n, err := rr.r.Read(p)
	rr.waited += rr.now().Sub(start)
	rr.read += int64(n)
	switch {
	case err == io.EOF:
		rr.finish()
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		return n, rr.tooSlow()
	}
	return n, err
}

// spendGrace gives up what is left of the grace but slack: the collector
// calls it once the body holds a parsing slot, so that a client that sends
// the first bytes and stalls gives the slot back after slack, not after
// the whole grace. The minimum rate still pays for every byte that comes.
func (rr *rateReader) spendGrace(slack time.Duration) {
	if left := rr.allowance(); left > slack {
		rr.grace -= left - slack
	}
}

// finish clears the deadline once the body has ended. It must not outlive
// the body: the server reads on in the background to notice a client that
// goes away, and a deadline passing then would cancel the request while it
// waits for Kafka.
func (rr *rateReader) finish() {
	if rr.setDeadline != nil && !rr.done {
		rr.done = true
		_ = rr.setDeadline(time.Time{})
	}
}

func (rr *rateReader) tooSlow() error {
	return fmt.Errorf("%w: %d bytes in %s, below %.0f bytes/s after a %s grace",
		errBodyTooSlow, rr.read, rr.waited.Round(time.Millisecond), rr.rate, rr.grace)
}

// Close closes the body.
func (rr *rateReader) Close() error { return rr.r.Close() }

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
			if re := (*ingest.ReadError)(nil); errors.As(err, &re) {
				return nil, c.readFailure(err)
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

// readFailure maps an error that ended reading a body to a request error.
func (c *Collector) readFailure(err error) *requestError {
	if errors.Is(err, errBodyTooSlow) {
		// The message says how much arrived in how long, and the bound.
		return &requestError{http.StatusRequestTimeout, err.Error()}
	}
	var mbe *http.MaxBytesError
	if errors.Is(err, ingest.ErrInputTooLarge) || errors.As(err, &mbe) || errors.Is(err, bufio.ErrTooLong) {
		return c.tooLarge()
	}
	if errors.Is(err, ingest.ErrTooManyEvents) {
		return &requestError{http.StatusRequestEntityTooLarge,
			fmt.Sprintf("more than %d events in one request: split it", c.gate.MaxEvents())}
	}
	var re *ingest.ReadError
	if errors.As(err, &re) {
		return &requestError{http.StatusBadRequest, re.Error()}
	}
	return &requestError{http.StatusBadRequest, "reading body: " + err.Error()}
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
