package syslog

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/sluicehq/sluice/internal/testkit"
)

// FuzzToEvent: any input either maps onto a valid app_logs event or is
// refused with ErrUnparsable; nothing panics.
func FuzzToEvent(f *testing.F) {
	for _, s := range []string{
		`<156>1 2026-11-30T14:09:33.354106+00:00 vm myapp - MID1 [timeQuality tzKnown="1"][ex@32473 k="v 1"] hello`,
		`<13>Nov 30 14:09:33 vm myapp[11460]: with pid`, `<13>2026-11-30T14:00:00.123456+00:00 host tag[123]: msg`,
		`<14>disk full`, `<13>1 - - - - - -`, "\x00\xff", `<191>1 - - - - - [a b="\]"]`,
	} {
		f.Add([]byte(s))
	}
	stream := testkit.Registry(f).Stream(Stream)
	f.Fuzz(func(t *testing.T, line []byte) {
		ev, err := ToEvent(line, testNow)
		if err != nil {
			if !errors.Is(err, ErrUnparsable) {
				t.Fatalf("%q: %v", line, err)
			}
			return
		}
		if _, ferrs := stream.Validate(ev); len(ferrs) > 0 {
			t.Fatalf("%q maps onto an invalid event %v: %v", line, ev, ferrs)
		}
	})
}

// FuzzFrames: the frame reader never returns more than the maximum, and
// never panics, whatever the stream.
func FuzzFrames(f *testing.F) {
	f.Add([]byte("5 <13>a\n<13>b\r\n12345678901 x"))
	f.Add([]byte("3 abc3 def\n\n\n9"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		fr := newFrameReader(bytes.NewReader(stream), 16, 32)
		for range len(stream) + 1 {
			got, err := fr.next()
			if err != nil {
				if err != io.EOF && !errors.Is(err, errFrameTooLarge) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("%q: %v", stream, err)
				}
				return
			}
			if len(got.msg) > 32 || len(got.msg) == 0 {
				t.Fatalf("%q: frame of %d bytes", stream, len(got.msg))
			}
		}
		t.Fatalf("%q: more frames than bytes", stream)
	})
}
