package relp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Frame is one RELP frame: TXNR SP COMMAND SP DATALEN [SP DATA] LF.
type Frame struct {
	// Txnr is the transaction number, 0 to 999,999,999. A client numbers
	// its commands 1, 2, ... and the server answers each with its number.
	Txnr int
	// Cmd is the command: open, syslog, close, rsp, serverclose.
	Cmd string
	// Data is the payload, DATALEN bytes; nil when DATALEN is 0.
	Data []byte
}

// Protocol limits, as librelp enforces them.
const (
	maxTxnr      = 999_999_999
	maxDigits    = 9  // of TXNR and DATALEN
	maxCmdLength = 32 // letters
)

// DefaultMaxFrameBytes is librelp's own default for the largest DATALEN a
// server takes (128 KiB); rsyslog's senders stay below it.
const DefaultMaxFrameBytes = 128 << 10

// Framing errors. Both end the connection: after a broken frame nothing
// that follows can be trusted to start a frame.
var (
	// ErrInvalidFrame: the bytes are not a RELP frame.
	ErrInvalidFrame = errors.New("relp: invalid frame")
	// ErrFrameTooLarge: DATALEN is over the server's maximum.
	ErrFrameTooLarge = errors.New("relp: frame too large")
)

// ReadFrame reads one frame from br, refusing a DATALEN over maxData
// before reading any of the data, so that a peer cannot make the server
// allocate more than maxData for one frame. An input that ends before the
// first byte gives io.EOF; one that ends inside a frame gives
// io.ErrUnexpectedEOF.
func ReadFrame(br *bufio.Reader, maxData int) (Frame, error) {
	return readFrame(br, maxData, nil)
}

// readFrame is ReadFrame that, when reserve is not nil, calls it with
// DATALEN once the header is read and before the data is allocated: the
// server takes the frame's memory from its budgets there, and may wait.
// An error from reserve is returned as it is.
func readFrame(br *bufio.Reader, maxData int, reserve func(n int) error) (Frame, error) {
	var f Frame
	txnr, sep, err := readNumber(br, "TXNR")
	if err != nil {
		return f, err
	}
	if sep != ' ' {
		return f, invalid("TXNR ends with %q, not a space", sep)
	}
	f.Txnr = txnr
	if f.Cmd, err = readCommand(br); err != nil {
		return f, err
	}
	n, sep, err := readNumber(br, "DATALEN")
	if err = unexpected(err); err != nil {
		return f, err
	}
	if n == 0 && sep == '\n' {
		return f, reserveData(reserve, 0)
	}
	if sep != ' ' {
		return f, invalid("DATALEN ends with %q, not a space", sep)
	}
	if n > maxData {
		return f, fmt.Errorf("%w: DATALEN %d over the %d-byte limit", ErrFrameTooLarge, n, maxData)
	}
	if err := reserveData(reserve, n); err != nil {
		return f, err
	}
	if n > 0 {
		f.Data = make([]byte, n)
		if _, err := io.ReadFull(br, f.Data); err != nil {
			return f, unexpected(err)
		}
	}
	c, err := br.ReadByte()
	if err != nil {
		return f, unexpected(err)
	}
	if c != '\n' {
		return f, invalid("no LF after DATALEN %d bytes of data (got %q): DATALEN does not match the data", n, c)
	}
	return f, nil
}

func reserveData(reserve func(int) error, n int) error {
	if reserve == nil {
		return nil
	}
	return reserve(n)
}

// readNumber reads 1 to 9 digits and the byte after them.
func readNumber(br *bufio.Reader, what string) (n int, sep byte, err error) {
	for i := 0; ; i++ {
		c, err := br.ReadByte()
		if err != nil {
			if i > 0 {
				err = unexpected(err)
			}
			return 0, 0, err
		}
		if c < '0' || c > '9' {
			if i == 0 {
				return 0, 0, invalid("%s starts with %q, not a digit", what, c)
			}
			return n, c, nil
		}
		if i == maxDigits {
			return 0, 0, invalid("%s has more than %d digits", what, maxDigits)
		}
		n = n*10 + int(c-'0')
	}
}

// readCommand reads 1 to 32 ASCII letters and the space after them.
func readCommand(br *bufio.Reader) (string, error) {
	var buf [maxCmdLength]byte
	for i := 0; ; i++ {
		c, err := br.ReadByte()
		if err != nil {
			return "", unexpected(err)
		}
		switch {
		case c == ' ' && i > 0:
			return string(buf[:i]), nil
		case (c < 'a' || c > 'z') && (c < 'A' || c > 'Z'):
			return "", invalid("command holds %q, not a letter", c)
		case i == maxCmdLength:
			return "", invalid("command longer than %d letters", maxCmdLength)
		}
		buf[i] = c
	}
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidFrame}, args...)...)
}

// unexpected turns an end of input inside a frame into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// AppendFrame appends the encoding of a frame to buf.
func AppendFrame(buf []byte, txnr int, cmd string, data []byte) []byte {
	buf = strconv.AppendInt(buf, int64(txnr), 10)
	buf = append(buf, ' ')
	buf = append(buf, cmd...)
	buf = append(buf, ' ')
	buf = strconv.AppendInt(buf, int64(len(data)), 10)
	if len(data) > 0 {
		buf = append(buf, ' ')
		buf = append(buf, data...)
	}
	return append(buf, '\n')
}

// nextTxnr is the transaction number after t; librelp wraps to 1 after the
// largest.
func nextTxnr(t int) int {
	if t >= maxTxnr {
		return 1
	}
	return t + 1
}
