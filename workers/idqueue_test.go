package workers

import (
	"math/rand/v2"
	"testing"

	"github.com/sluicehq/sluice/eventkey"
)

// The ring gives entries back in the order they went in, across wrapping
// and growing while wrapped, checked against a plain slice.
func TestIDQueueKeepsOrder(t *testing.T) {
	for _, size := range []int{0, 1, 3, 64} {
		q := newIDQueue(size)
		var model []windowEntry
		rng := rand.New(rand.NewPCG(1, uint64(size)))
		next := int64(0)
		for step := range 5_000 {
			if len(model) > 0 && rng.IntN(3) == 0 {
				want := model[0]
				model = model[1:]
				if got := q.oldest(); got != want {
					t.Fatalf("size %d, step %d: oldest is %v, want %v", size, step, got, want)
				}
				if got := q.pop(); got != want {
					t.Fatalf("size %d, step %d: popped %v, want %v", size, step, got, want)
				}
			} else {
				e := windowEntry{key: eventkey.Key{uint64(next), 0}, at: next}
				next++
				q.push(e)
				model = append(model, e)
			}
			if q.Len() != len(model) {
				t.Fatalf("size %d, step %d: Len %d, want %d", size, step, q.Len(), len(model))
			}
		}
	}
}

// A window never grows its table or its queue: both are made for its
// most ids at the start.
func TestDedupeWindowMadeFull(t *testing.T) {
	w := newDedupeWindow(0, 3000)
	slots, ring := len(w.first.slots), len(w.queue.ring)
	for i := range 10_000 {
		w.DuplicateKey(eventkey.Key{uint64(i) * 0x9e3779b97f4a7c15, 1}, int64(i), recv0, true)
	}
	if len(w.first.slots) != slots || len(w.queue.ring) != ring {
		t.Errorf("table %d → %d slots, queue %d → %d: the window grew", slots, len(w.first.slots), ring, len(w.queue.ring))
	}
	if 3*3001 > 2*slots {
		t.Errorf("%d slots hold 3001 ids more than two thirds full", slots)
	}
}
