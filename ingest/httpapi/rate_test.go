package httpapi

import (
	"errors"
	"io"
	"os"
	"testing"
	"time"
)

// scriptedBody is a body whose every Read takes a set time on a fake clock
// and returns a set result.
type scriptedBody struct {
	now   *time.Time
	steps []step
}

type step struct {
	takes time.Duration
	n     int
	err   error
}

func (s *scriptedBody) Read(p []byte) (int, error) {
	if len(s.steps) == 0 {
		return 0, io.EOF
	}
	st := s.steps[0]
	s.steps = s.steps[1:]
	*s.now = s.now.Add(st.takes)
	return st.n, st.err
}

func (s *scriptedBody) Close() error { return nil }

// newScripted returns a rate reader at 1000 bytes/s after a 5 s grace on a
// fake clock, and the deadlines it sets.
func newScripted(steps ...step) (*rateReader, *time.Time, *[]time.Time) {
	now := time.Unix(1000, 0)
	var deadlines []time.Time
	rr := newRateReader(&scriptedBody{now: &now, steps: steps}, func(t time.Time) error {
		deadlines = append(deadlines, t)
		return nil
	}, 1000, 5*time.Second)
	rr.now = func() time.Time { return now }
	return rr, &now, &deadlines
}

// The deadline is the grace plus what the bytes read pay for, less the
// time spent waiting, from the start of each read.
func TestRateReaderDeadlines(t *testing.T) {
	rr, now, deadlines := newScripted(
		step{takes: time.Second, n: 500},      // 0.5 s paid, 1 s waited
		step{takes: 2 * time.Second, n: 3000}, // 3.5 s paid, 3 s waited
		step{takes: time.Second, err: os.ErrDeadlineExceeded},
	)
	start := *now
	buf := make([]byte, 4096)
	if n, err := rr.Read(buf); n != 500 || err != nil {
		t.Fatalf("first read: %d, %v", n, err)
	}
	if n, err := rr.Read(buf); n != 3000 || err != nil {
		t.Fatalf("second read: %d, %v", n, err)
	}
	_, err := rr.Read(buf)
	if !errors.Is(err, errBodyTooSlow) {
		t.Fatalf("read past the deadline: %v, want errBodyTooSlow", err)
	}
	want := []time.Time{
		start.Add(5 * time.Second),
		start.Add(time.Second).Add(5*time.Second + 500*time.Millisecond - time.Second),
		start.Add(3 * time.Second).Add(5*time.Second + 3500*time.Millisecond - 3*time.Second),
	}
	if len(*deadlines) != len(want) {
		t.Fatalf("deadlines %v, want %v", *deadlines, want)
	}
	for i := range want {
		if !(*deadlines)[i].Equal(want[i]) {
			t.Errorf("deadline %d = +%s, want +%s", i, (*deadlines)[i].Sub(start), want[i].Sub(start))
		}
	}
}

// A client that used up its allowance is refused without another read; one
// whose body ends has its deadline cleared, and later reads set none.
func TestRateReaderExhaustedAndEnd(t *testing.T) {
	rr, _, deadlines := newScripted(step{takes: 5 * time.Second}) // nothing, all the grace
	buf := make([]byte, 16)
	if _, err := rr.Read(buf); err != nil {
		t.Fatalf("first read: %v", err)
	}
	if _, err := rr.Read(buf); !errors.Is(err, errBodyTooSlow) {
		t.Fatalf("read with no allowance left: %v, want errBodyTooSlow", err)
	}
	if len(*deadlines) != 1 {
		t.Errorf("deadlines set %v, want only the first", *deadlines)
	}

	rr, _, deadlines = newScripted(step{takes: time.Millisecond, n: 10, err: io.EOF})
	if _, err := rr.Read(buf); err != io.EOF {
		t.Fatalf("read: %v, want EOF", err)
	}
	if _, err := rr.Read(buf); err != io.EOF {
		t.Fatalf("read after the end: %v, want EOF", err)
	}
	if got := *deadlines; len(got) != 2 || !got[1].IsZero() {
		t.Errorf("deadlines %v, want one then the zero time (cleared) and no more", got)
	}
}

// Without deadline support (a recorder in tests) the reader only passes
// bytes through.
func TestRateReaderWithoutDeadlines(t *testing.T) {
	now := time.Unix(0, 0)
	rr := newRateReader(&scriptedBody{now: &now, steps: []step{{takes: time.Hour, n: 1}}}, nil, 1, time.Second)
	if n, err := rr.Read(make([]byte, 1)); n != 1 || err != nil {
		t.Fatalf("read: %d, %v", n, err)
	}
}

// Once the body holds a parsing slot, what is left of the grace goes but
// the slack: the next read may wait only that long plus what new bytes pay.
func TestRateReaderSpendGrace(t *testing.T) {
	rr, now, deadlines := newScripted(
		step{takes: time.Second, n: 500}, // 0.5 s paid, 1 s waited: 4.5 s left
		step{takes: time.Second, n: 1000},
	)
	buf := make([]byte, 4096)
	if n, err := rr.Read(buf); n != 500 || err != nil {
		t.Fatalf("first read: %d, %v", n, err)
	}
	rr.spendGrace(2 * time.Second)
	before := *now
	if n, err := rr.Read(buf); n != 1000 || err != nil {
		t.Fatalf("second read: %d, %v", n, err)
	}
	if got := (*deadlines)[1].Sub(before); got != 2*time.Second {
		t.Errorf("deadline after the grace was spent: +%s, want +2s", got)
	}
	if got := rr.allowance(); got != 2*time.Second {
		t.Errorf("allowance after a second that paid for one: %s, want 2s", got)
	}
	rr.spendGrace(10 * time.Second) // never adds
	if got := rr.allowance(); got != 2*time.Second {
		t.Errorf("allowance after a larger slack: %s, want 2s", got)
	}
}
