package slicepool

import "testing"

// A recycled slice comes back empty and zeroed however it was used, and
// one too small for the next batch is not handed out.
func TestPoolZeroes(t *testing.T) {
	var sp Pool[message]
	for round := range 50 {
		s := sp.Get(8)
		if len(s) != 0 || cap(s) < 8 {
			t.Fatalf("round %d: got len %d cap %d, want len 0 and room for 8", round, len(s), cap(s))
		}
		for i, m := range s[:cap(s)] {
			if m.Offset != 0 || m.Value != nil || m.Key != nil {
				t.Fatalf("round %d: slot %d holds %+v from an earlier use", round, i, m)
			}
		}
		for i := range 8 + round%5 { // past the room asked for, as append grows
			s = append(s, message{Offset: int64(i + 1), Value: []byte("v")})
		}
		sp.Put(s)
	}
	if s := sp.Get(1 << 20); cap(s) < 1<<20 {
		t.Errorf("asked for room for %d, got %d", 1<<20, cap(s))
	} else {
		sp.Put(append(s, message{}))
	}
	if s := sp.Get(10); cap(s) > 4*64 {
		t.Errorf("asked for room for 10, got a recycled slice of %d", cap(s))
	}
}

// message is a slice element with pointers, as the workers' are.
type message struct {
	Offset     int64
	Key, Value []byte
}
