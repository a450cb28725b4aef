package workers

import (
	"fmt"
	"testing"
	"time"
)

func TestDedupeWindow(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	type step struct {
		add   string
		check string
		at    time.Duration
		want  bool
	}
	tests := []struct {
		name  string
		span  time.Duration
		max   int
		steps []step
	}{
		{"remembers within span", 10 * time.Minute, 100, []step{
			{add: "a", at: 0},
			{check: "a", at: 9 * time.Minute, want: true},
			{check: "b", at: 9 * time.Minute, want: false},
		}},
		{"forgets after span", 10 * time.Minute, 100, []step{
			{add: "a", at: 0},
			{check: "a", at: 11 * time.Minute, want: false},
		}},
		{"bounded: oldest goes first", time.Hour, 2, []step{
			{add: "a", at: 0}, {add: "b", at: time.Second}, {add: "c", at: 2 * time.Second},
			{check: "a", at: 3 * time.Second, want: false},
			{check: "b", at: 3 * time.Second, want: true},
			{check: "c", at: 3 * time.Second, want: true},
		}},
		{"adding twice keeps one entry", time.Hour, 2, []step{
			{add: "a", at: 0}, {add: "a", at: time.Second}, {add: "b", at: 2 * time.Second},
			{check: "a", at: 3 * time.Second, want: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newDedupeWindow(tt.span, tt.max)
			for i, s := range tt.steps {
				now := t0.Add(s.at)
				if s.add != "" {
					w.Add(idHasher.Sum(s.add), now)
					continue
				}
				if got := w.Contains(idHasher.Sum(s.check), now); got != s.want {
					t.Fatalf("step %d: Contains(%q) = %v, want %v", i, s.check, got, s.want)
				}
			}
		})
	}
}

func TestDedupeWindowStaysBounded(t *testing.T) {
	w := newDedupeWindow(time.Hour, 1000)
	now := time.Now()
	for i := range 100_000 {
		w.Add(idHasher.Sum(fmt.Sprintf("id-%d", i)), now)
	}
	if w.Len() != 1000 {
		t.Fatalf("Len = %d, want 1000", w.Len())
	}
	if cap(w.queue) > 10_000 {
		t.Fatalf("queue capacity grew to %d; the dead front is not reclaimed", cap(w.queue))
	}
	if !w.Contains(idHasher.Sum("id-99999"), now) || w.Contains(idHasher.Sum("id-0"), now) {
		t.Fatal("window kept the wrong ids")
	}
}
