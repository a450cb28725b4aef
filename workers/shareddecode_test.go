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
		b.Messages = append(b.Messages, Message{Offset: o})
	}
	b.Decoded = make([]Decoded, len(b.Messages))
	return b
}

// TestSharedDecode: what one lane decoded, the other takes once; a third
// look decodes again; an offset a ring's length later evicts; one lane
// shares nothing.
func TestSharedDecode(t *testing.T) {
	if newSharedDecode(1) != nil {
		t.Error("a partition with one lane got a ring")
	}
	s := newSharedDecode(2)
	store := sharedBatch(10, 11, 12)
	if missing := s.take(store); !slices.Equal(missing, []int{0, 1, 2}) {
		t.Fatalf("first lane found %v in an empty ring", missing)
	}
	for i := range store.Decoded {
		store.Decoded[i] = Decoded{Event: schemas.Event{ID: "id" + string(rune('a'+i))}}
	}
	store.Decoded[2].Err = errors.New("bad")
	s.leave(store, []int{0, 1, 2})

	// The output cut its batch differently: 11..13.
	out := sharedBatch(11, 12, 13)
	if missing := s.take(out); !slices.Equal(missing, []int{2}) {
		t.Fatalf("second lane missed %v, want only offset 13", missing)
	}
	if out.Decoded[0].Event.ID != "idb" || out.Decoded[1].Err == nil {
		t.Errorf("second lane took %+v", out.Decoded[:2])
	}
	if missing := s.take(sharedBatch(11)); len(missing) != 1 {
		t.Error("an event was taken by more lanes than the partition has")
	}
	if missing := s.take(sharedBatch(10)); len(missing) != 0 {
		t.Error("offset 10, not yet taken, was lost")
	}

	evict := sharedBatch(20)
	s.leave(evict, []int{0})
	later := sharedBatch(20 + sharedDecodeSlots)
	s.leave(later, []int{0})
	if missing := s.take(sharedBatch(20)); len(missing) != 1 {
		t.Error("offset 20 survived an offset a ring's length later")
	}
}
