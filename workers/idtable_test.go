package workers

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sluicehq/sluice/eventkey"
)

// idTable against a Go map, under random sets, gets and deletes of keys
// whose homes crowd into the last slots of the table, so that runs
// are long, wrap around, and deletions move entries back across the wrap.
func TestIDTableMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var tab idTable
	want := map[eventkey.Key]int64{}
	key := func() eventkey.Key {
		// Homes among the last 64 slots of any table; the high word
		// tells the keys apart.
		return eventkey.Key{^uint64(rng.IntN(64)), uint64(rng.IntN(50))}
	}
	for op := range 50_000 {
		k := key()
		switch rng.IntN(3) {
		case 0:
			off := int64(op)
			tab.set(k, off)
			want[k] = off
		case 1:
			tab.delete(k)
			delete(want, k)
		}
		got, ok := tab.get(k)
		if w, wok := want[k]; ok != wok || got != w {
			t.Fatalf("op %d: get(%v) = %d, %v; want %d, %v", op, k, got, ok, w, wok)
		}
		if tab.n != len(want) {
			t.Fatalf("op %d: %d ids, want %d", op, tab.n, len(want))
		}
	}
	for k, w := range want {
		if got, ok := tab.get(k); !ok || got != w {
			t.Fatalf("get(%v) = %d, %v at the end; want %d", k, got, ok, w)
		}
	}
	if 3*tab.n > 2*len(tab.slots) {
		t.Errorf("%d ids in %d slots: more than two thirds full", tab.n, len(tab.slots))
	}
}

// A table grows four times at a step up to the size it has full, and no
// further while it holds no more than it is meant to.
func TestIDTableGrowsFourfoldUpToItsFullSize(t *testing.T) {
	const ids = 5000
	tab := idTable{maxSlots: slotsFor(ids)}
	if tab.maxSlots != 8192 {
		t.Fatalf("slotsFor(%d) = %d, want 8192 (at most two thirds full with %d ids)", ids, tab.maxSlots, ids+2)
	}
	var sizes []int
	for i := range ids + 1 { // a window adds one before it drops its oldest
		tab.set(eventkey.Key{uint64(i) * 0x9e3779b97f4a7c15, uint64(i)}, int64(i))
		if n := len(tab.slots); len(sizes) == 0 || sizes[len(sizes)-1] != n {
			sizes = append(sizes, n)
		}
	}
	if want := []int{1024, 4096, 8192}; !slices.Equal(sizes, want) {
		t.Errorf("sizes %v, want %v", sizes, want)
	}
	for i := range ids + 1 {
		if off, ok := tab.get(eventkey.Key{uint64(i) * 0x9e3779b97f4a7c15, uint64(i)}); !ok || off != int64(i) {
			t.Fatalf("id %d: %d, %v after growing", i, off, ok)
		}
	}
}
