package syslog

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/sluicehq/sluice/backpressure"
)

// errFrameTooLarge ends a connection whose octet count passes the maximum:
// after it the stream cannot be trusted to resynchronise on a frame.
var errFrameTooLarge = errors.New("octet count over the maximum message size")

// maxCountDigits is the most digits an octet count may have before the
// reader gives up on it; any count that long is over every sane maximum.
const maxCountDigits = 10

// frameReader splits a TCP stream into syslog frames (RFC 6587), telling
// the framing apart per frame: one that starts with a digit is octet
// counted ("LEN SP MSG"), any other is delimited by LF (CRLF tolerated).
// A frame returned by next is valid until the following call.
type frameReader struct {
	br  *bufio.Reader
	max int
	buf []byte // long lines and octet frames larger than br's buffer

	// long, when set, is taken for buf before buf is allocated, and given
	// back at the next frame (see Config.MaxLongMessageBytes); ctx ends a
	// wait for it. held is what this reader took.
	long *backpressure.Admission
	ctx  context.Context
	held int64
}

func newFrameReader(r io.Reader, bufSize, max int) *frameReader {
	return &frameReader{br: bufio.NewReaderSize(r, bufSize), max: max}
}

// frame is one message read by next. truncated says a newline-delimited
// line was longer than the maximum: msg holds its first max bytes and the
// rest was skipped; size is the line's full length then.
type frame struct {
	msg       []byte
	truncated bool
	size      int
}

// next returns the next non-empty frame. At the end of the stream it
// returns io.EOF; a last line without LF is returned first.
func (f *frameReader) next() (frame, error) {
	// A long frame's buffer is not kept for the connection's life.
	f.dropLong()
	for {
		c, err := f.br.Peek(1)
		if err != nil {
			return frame{}, err
		}
		var fr frame
		if c[0] >= '0' && c[0] <= '9' {
			fr, err = f.counted()
		} else {
			fr, err = f.line()
		}
		if err != nil || len(fr.msg) > 0 || fr.truncated {
			return fr, err
		}
		// An empty line (a CRLF or LF after an octet-counted frame, as
		// some senders add): nothing to return.
	}
}

// counted reads "LEN SP MSG". Digits not followed by a space are not an
// octet count: the frame is read as a line instead, so that the parser
// dead-letters it rather than the connection being dropped.
func (f *frameReader) counted() (frame, error) {
	n, digits := 0, 0
	for {
		c, err := f.br.Peek(digits + 1)
		if err != nil {
			if errors.Is(err, io.EOF) && digits > 0 {
				return f.line()
			}
			return frame{}, err
		}
		d := c[digits]
		if d == ' ' && digits > 0 {
			break
		}
		if d < '0' || d > '9' {
			return f.line()
		}
		if digits == maxCountDigits {
			return frame{}, fmt.Errorf("%w: more than %d digits", errFrameTooLarge, maxCountDigits)
		}
		n = n*10 + int(d-'0')
		digits++
	}
	if n > f.max {
		return frame{}, fmt.Errorf("%w: %d bytes, at most %d", errFrameTooLarge, n, f.max)
	}
	if _, err := f.br.Discard(digits + 1); err != nil {
		return frame{}, err
	}
	if n <= f.br.Size() {
		msg, err := f.br.Peek(n)
		if err != nil {
			return frame{}, noEOF(err)
		}
		// Discard only moves the read position: msg stays valid until the
		// next read fills the buffer.
		_, _ = f.br.Discard(n)
		return frame{msg: msg, size: n}, nil
	}
	if err := f.takeLong(n); err != nil {
		return frame{}, err
	}
	f.buf = make([]byte, n)
	if _, err := io.ReadFull(f.br, f.buf); err != nil {
		return frame{}, noEOF(err)
	}
	return frame{msg: f.buf[:n], size: n}, nil
}

// line reads up to and excluding LF (and a CR before it). A line longer
// than max keeps its first max bytes and the rest is skipped.
func (f *frameReader) line() (frame, error) {
	chunk, err := f.br.ReadSlice('\n')
	if err == nil || (errors.Is(err, io.EOF) && len(chunk) > 0) {
		msg := trimEOL(chunk)
		if len(msg) > f.max { // only when the buffer is larger than max
			return frame{msg: msg[:f.max], truncated: true, size: len(msg)}, nil
		}
		return frame{msg: msg, size: len(msg)}, nil
	}
	if !errors.Is(err, bufio.ErrBufferFull) {
		return frame{}, err
	}
	// Longer than the buffer: gather it in f.buf up to max (and the CR LF
	// that may end it), then skip.
	if err := f.takeLong(f.max + 2); err != nil {
		return frame{}, err
	}
	f.buf = append(make([]byte, 0, f.max+2), chunk...)
	size := len(chunk)
	for {
		chunk, err = f.br.ReadSlice('\n')
		size += len(chunk)
		if room := f.max + 2 - len(f.buf); room > 0 {
			f.buf = append(f.buf, chunk[:min(room, len(chunk))]...)
		}
		if err == nil || errors.Is(err, io.EOF) {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return frame{}, err
		}
	}
	size -= len(chunk) - len(trimEOL(chunk))
	msg := trimEOL(f.buf)
	if len(msg) > f.max {
		return frame{msg: msg[:f.max], truncated: true, size: size}, nil
	}
	return frame{msg: msg, size: len(msg)}, nil
}

// trimEOL drops a trailing LF and a CR before it.
func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte{'\n'})
	return bytes.TrimSuffix(b, []byte{'\r'})
}

// noEOF turns an EOF in the middle of a frame into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// takeLong takes n bytes of the long-message budget for buf, waiting
// while other connections hold it: at most the read timeout (the
// Admission's MaxWait), then the connection is closed with
// backpressure.ErrBusy.
func (f *frameReader) takeLong(n int) error {
	if f.long == nil {
		return nil
	}
	w := min(int64(n), f.long.Capacity())
	if err := f.long.Acquire(f.ctx, w); err != nil {
		return fmt.Errorf("memory for a message of %d bytes: %w", n, err)
	}
	f.held = w
	return nil
}

// dropLong lets go of a long frame's buffer and gives its budget back,
// which ends the frame returned last. The reader's owner calls it once the
// frame is in a batch, and when the connection ends; next calls it too.
func (f *frameReader) dropLong() {
	f.buf = nil
	if f.held > 0 {
		f.long.Release(f.held)
		f.held = 0
	}
}
