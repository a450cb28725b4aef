package ingest

import (
	"testing"
	"time"
)

// The cache answers only while every topic asked for is fresh, never
// changes a map it returned, and forgets everything at once.
func TestLeaderCache(t *testing.T) {
	c := leaderCache{ttl: time.Second}
	t0 := time.Unix(1000, 0)
	if md := c.get([]string{"a"}, t0); md != nil {
		t.Fatalf("empty cache answered %v", md)
	}
	c.put(map[string][]int32{"a": {1, 2}}, t0)
	first := c.get([]string{"a"}, t0.Add(999*time.Millisecond))
	if len(first["a"]) != 2 {
		t.Fatalf("get(a) = %v, want a's leaders", first)
	}
	if md := c.get([]string{"a", "b"}, t0); md != nil {
		t.Fatalf("get(a, b) = %v with b never named, want nil", md)
	}
	if md := c.get([]string{"a"}, t0.Add(time.Second)); md != nil {
		t.Fatalf("get(a) = %v a ttl later, want nil", md)
	}
	c.put(map[string][]int32{"b": {3}}, t0.Add(500*time.Millisecond))
	if _, ok := first["b"]; ok {
		t.Fatal("put wrote into a map get had returned")
	}
	both := c.get([]string{"a", "b"}, t0.Add(900*time.Millisecond))
	if len(both["a"]) != 2 || len(both["b"]) != 1 {
		t.Fatalf("get(a, b) = %v, want both", both)
	}
	if md := c.get([]string{"b"}, t0.Add(1200*time.Millisecond)); md == nil {
		t.Fatal("b went stale with a, want each topic its own age")
	}
	c.forget()
	if md := c.get([]string{"b"}, t0.Add(600*time.Millisecond)); md != nil {
		t.Fatalf("get(b) = %v after forget, want nil", md)
	}
}
