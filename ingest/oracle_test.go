package ingest

// The map-based reading of bodies that Batch.ReadJSON and ReadNDJSON did
// before schemas.Decoder, kept as the oracle of FuzzReadBody: each body is
// decoded with encoding/json into map[string]any and added with Add.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/sluicehq/sluice/schemas"
)

// oracleReadJSON is ReadJSON as it was: encoding/json's Decoder, a
// map[string]any per value, then Add.
func (b *Batch) oracleReadJSON(r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	first, skipped, err := oraclePeekNonSpace(br)
	if err == io.EOF {
		b.report(0, "empty body: expected a JSON object, an array of objects, or NDJSON")
		return nil
	}
	if err != nil {
		return b.oracleJSONFailure(err, skipped)
	}
	dec := json.NewDecoder(br)
	if first != '[' {
		return b.oracleReadValues(dec, skipped)
	}
	if _, err := dec.Token(); err != nil { // the '['
		return b.oracleJSONFailure(err, skipped)
	}
	for dec.More() {
		if done, err := b.oracleDecodeOne(dec, skipped, true); done {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the ']', or why it is missing
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return b.oracleJSONFailure(err, skipped)
	}
	if b.next == 0 {
		b.report(0, "empty array: no events")
		return nil
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			err = errors.New("unexpected data after the top-level array")
		}
		return b.oracleJSONFailure(err, skipped)
	}
	return nil
}

// oracleReadValues adds top-level values until the input ends.
func (b *Batch) oracleReadValues(dec *json.Decoder, skipped int64) error {
	for {
		done, err := b.oracleDecodeOne(dec, skipped, false)
		if done {
			return err
		}
	}
}

// oracleDecodeOne decodes and adds one value, an element of an array if
// inArray. done reports whether to stop.
func (b *Batch) oracleDecodeOne(dec *json.Decoder, skipped int64, inArray bool) (done bool, err error) {
	var v any
	if err := dec.Decode(&v); err != nil {
		if err == io.EOF && inArray {
			// Fixed here, as ReadJSON now reads it (FuzzReadBody found
			// it): the end of the input right after an element's comma
			// was taken for the end of the array, and "[0," or
			// "[{...}," accepted as whole.
			return true, b.oracleJSONFailure(io.ErrUnexpectedEOF, skipped)
		}
		if err == io.EOF {
			return true, nil
		}
		// A type error (a number out of float64 range) leaves the decoder
		// in step, so only that event is rejected; anything else ends.
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			if err := b.Reject(nil, oracleTypeErrorProblem(te)); err != nil {
				return true, err
			}
			return false, nil
		}
		return true, b.oracleJSONFailure(err, skipped)
	}
	if err := b.Add(v); err != nil {
		return true, err
	}
	return false, nil
}

// oracleJSONFailure ends reading: a read failure is returned, a JSON error makes
// the input malformed.
func (b *Batch) oracleJSONFailure(err error, skipped int64) error {
	if isReadFailure(err) {
		return err
	}
	b.malformed(oracleJSONProblem(err, skipped))
	return nil
}

// oracleReadNDJSON is ReadNDJSON as it was: it adds one JSON object per line of r; lines longer than maxLine
// bytes end the input with ErrInputTooLarge. Lines are independent, so a
// malformed line rejects only itself. Blank lines are skipped and take no
// index.
func (b *Batch) oracleReadNDJSON(r io.Reader, maxLine int) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, min(64<<10, maxLine)), maxLine)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var v any
		if err := json.Unmarshal(line, &v); err != nil {
			var te *json.UnmarshalTypeError
			problem := oracleJSONProblem(err, 0)
			if errors.As(err, &te) {
				problem = oracleTypeErrorProblem(te)
			}
			if err := b.Reject(line, problem); err != nil {
				return err
			}
			continue
		}
		if err := b.Add(v); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("%w: a line over %d bytes", ErrInputTooLarge, maxLine)
		}
		if isReadFailure(err) {
			return err
		}
		return &ReadError{What: "reading body", Err: err}
	}
	if b.next == 0 {
		b.report(0, "empty body: no NDJSON lines")
	}
	return nil
}

// oraclePeekNonSpace consumes leading JSON whitespace and returns the next byte
// without consuming it, and how many bytes it skipped.
func oraclePeekNonSpace(br *bufio.Reader) (byte, int64, error) {
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

func oracleJSONProblem(err error, offsetBase int64) string {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se) && se.Error() != "unexpected end of JSON input":
		return fmt.Sprintf("invalid JSON near byte %d: %s", offsetBase+se.Offset, se.Error())
	case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF):
		return "invalid JSON: unexpected end of input"
	}
	return "invalid JSON: " + strings.TrimPrefix(err.Error(), "json: ")
}

// oracleTypeErrorProblem describes the one type error decoding into an empty
// interface can produce: a number too large for float64. The decoder does
// not say which field held it.
func oracleTypeErrorProblem(te *json.UnmarshalTypeError) string {
	return fmt.Sprintf("invalid JSON: %s out of range", schemas.Truncate(te.Value, 40))
}
