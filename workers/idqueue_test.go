package workers

import (
	"math/rand/v2"
	"testing"

	"github.com/sluicehq/sluice/eventkey"
)

// The ring gives entries back in the order they went in, across wrapping,
// growing while wrapped and growing past its limit, checked against a plain slice.
func TestIDQueueKeepsOrder(t *testing.T) {
	for _, limit := range []int{0, 1, 3, 64, 100} {
		q := newIDQueue(limit)
		var model []windowEntry
		rng := rand.New(rand.NewPCG(1, uint64(limit)))
		next := int64(0)
		for step := range 5_000 {
			if len(model) > 0 && rng.IntN(3) == 0 {
				want := model[0]
				model = model[1:]
				if got := q.oldest(); got != want {
					t.Fatalf("limit %d, step %d: oldest is %v, want %v", limit, step, got, want)
				}
				if got := q.pop(); got != want {
					t.Fatalf("limit %d, step %d: popped %v, want %v", limit, step, got, want)
				}
			} else {
				e := windowEntry{key: eventkey.Key{uint64(next), 0}, at: next}
				next++
				q.push(e)
				model = append(model, e)
			}
			if q.Len() != len(model) {
				t.Fatalf("limit %d, step %d: Len %d, want %d", limit, step, q.Len(), len(model))
			}
		}
	}
}
