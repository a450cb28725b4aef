package workers

import (
	"fmt"
	"testing"
)

func TestTrackerContiguousPrefix(t *testing.T) {
	type done struct{ first, last int64 }
	tests := []struct {
		name  string
		start int64
		done  []done
		want  int64
	}{
		{"nothing done", 10, nil, 10},
		{"in order", 0, []done{{0, 9}, {10, 19}}, 20},
		{"gap holds the prefix back", 0, []done{{10, 19}}, 0},
		{"gap closes", 0, []done{{10, 19}, {20, 29}, {0, 9}}, 30},
		{"out of order with a hole left", 0, []done{{20, 29}, {0, 9}}, 10},
		{"reverse order", 100, []done{{130, 139}, {120, 129}, {110, 119}, {100, 109}}, 140},
		{"stale range below start is ignored", 50, []done{{0, 9}}, 50},
		{"symbolic start resolved by the first range", -2, []done{{40, 49}, {50, 59}}, 60},
		{"overlap with prefix", 0, []done{{0, 9}, {5, 14}}, 15},
		{"pending range overlapping new prefix", 0, []done{{8, 20}, {0, 9}}, 21},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTracker()
			tr.Start(3, tt.start)
			for _, d := range tt.done {
				tr.Done(3, d.first, d.last)
			}
			got, ok := tr.Next(3)
			if !ok || got != tt.want {
				t.Fatalf("Next = %d, %v; want %d", got, ok, tt.want)
			}
		})
	}
}

func TestTrackerCommittableReportsOnlyChanges(t *testing.T) {
	tr := NewTracker()
	tr.Start(0, 0)
	tr.Start(1, 5)
	if c := tr.Committable(); len(c) != 0 {
		t.Fatalf("fresh tracker committable = %v, want none", c)
	}
	tr.Done(0, 0, 4)
	c := tr.Committable()
	if len(c) != 1 || c[0] != 5 {
		t.Fatalf("committable = %v, want map[0:5]", c)
	}
	tr.Committed(c)
	if c := tr.Committable(); len(c) != 0 {
		t.Fatalf("after commit committable = %v, want none", c)
	}
	if _, ok := tr.Next(7); ok {
		t.Fatal("Next on an untracked partition reported ok")
	}
}

func ExampleTracker() {
	tr := NewTracker()
	tr.Start(0, 100)
	tr.Done(0, 110, 119) // finished early, waits for the gap
	n, _ := tr.Next(0)
	fmt.Println(n)
	tr.Done(0, 100, 109)
	n, _ = tr.Next(0)
	fmt.Println(n)
	// Output:
	// 100
	// 120
}
