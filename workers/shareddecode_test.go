package workers

import (
	"errors"
	"slices"
	"testing"

	"github.com/sluicehq/sluice/schemas"
)

func sharedBatch(offs ...int64) *Batch {
	b := &Batch{}
	for _, o := range offs {
		b.Messages = append(b.Messages, Message{Offset: o, Value: make([]byte, 100)})
	}
	b.Decoded = make([]Decoded, len(b.Messages))
	return b
}

// TestSharedDecode: what one lane decoded, the other takes once; a third
// look decodes again; one lane shares nothing.
func TestSharedDecode(t *testing.T) {
	if newSharedDecode(1) != nil {
		t.Error("a partition with one lane shares")
	}
	s := newSharedDecode(2)
	store := sharedBatch(10, 11, 12)
	if missing := s.take(0, store); !slices.Equal(missing, []int{0, 1, 2}) {
		t.Fatalf("first lane found %v in nothing", missing)
	}
	for i := range store.Decoded {
		store.Decoded[i] = Decoded{Event: schemas.Event{ID: "id" + string(rune('a'+i))}}
	}
	store.Decoded[2].Err = errors.New("bad")
	s.leave(0, store, []int{0, 1, 2})

	// The output cut its batch differently: 11..13.
	out := sharedBatch(11, 12, 13)
	if missing := s.take(1, out); !slices.Equal(missing, []int{2}) {
		t.Fatalf("second lane missed %v, want only offset 13", missing)
	}
	if out.Decoded[0].Event.ID != "idb" || out.Decoded[1].Err == nil {
		t.Errorf("second lane took %+v", out.Decoded[:2])
	}
	if missing := s.take(1, sharedBatch(11)); len(missing) != 1 {
		t.Error("an event was taken twice by one lane")
	}
	if missing := s.take(0, sharedBatch(11)); len(missing) != 1 {
		t.Error("a lane took back what it left")
	}
	if s.bytes != 100 || len(s.held) != 1 {
		t.Errorf("%d bytes in %d events held, want offset 10 only", s.bytes, len(s.held))
	}
}

// TestSharedDecodeBounded: past sharedDecodeBytes nothing more is held,
// until what a lane has passed is let go.
func TestSharedDecodeBounded(t *testing.T) {
	s := newSharedDecode(2)
	n := sharedDecodeBytes / 100
	var offs []int64
	for o := range int64(n + 50) {
		offs = append(offs, o)
	}
	b := sharedBatch(offs...)
	s.take(0, b)
	s.leave(0, b, seq(len(offs)))
	if s.bytes > sharedDecodeBytes || len(s.held) != n {
		t.Fatalf("%d bytes in %d events held, want %d events within %d bytes", s.bytes, len(s.held), n, sharedDecodeBytes)
	}

	// The output skips ahead past all of them (it fell too far behind):
	// what it will never ask for goes when the store needs room.
	s.take(1, sharedBatch(int64(n)+100))
	next := sharedBatch(int64(n)+100, int64(n)+101)
	s.take(0, next)
	s.leave(0, next, []int{0, 1})
	if len(s.held) != 2 || s.bytes != 200 {
		t.Errorf("%d events (%d bytes) held after the output skipped ahead, want the 2 new ones", len(s.held), s.bytes)
	}
}

// TestSharedDecodeLanesPast: an event below every other lane's position is
// not held at all.
func TestSharedDecodeLanesPast(t *testing.T) {
	s := newSharedDecode(3)
	s.take(1, sharedBatch(50))
	s.take(2, sharedBatch(60))
	b := sharedBatch(40, 55, 70)
	s.take(0, b)
	s.leave(0, b, []int{0, 1, 2})
	if s.held[40] != nil {
		t.Error("offset 40, which both outputs have passed, is held")
	}
	if e := s.held[55]; e == nil || e.need != 0b010 {
		t.Errorf("offset 55 held for %+v, want lane 1 only", e)
	}
	if e := s.held[70]; e == nil || e.need != 0b110 {
		t.Errorf("offset 70 held for %+v, want lanes 1 and 2", e)
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
