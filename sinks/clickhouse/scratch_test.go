package clickhouse

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// TestSlab checks that the slices a slab hands out within one write never
// overlap, keep their values when a later take outgrows the array, and
// that the array is reused after reset.
func TestSlab(t *testing.T) {
	var s slab[int]
	var taken [][]int
	for i, n := range []int{3, 5, 1, 40, 2} {
		xs := s.take(n)
		for j := range xs {
			xs[j] = 100*i + j
		}
		taken = append(taken, xs)
	}
	for i, xs := range taken {
		for j, x := range xs {
			if x != 100*i+j {
				t.Fatalf("take %d element %d: %d, want %d: takes overlap", i, j, x, 100*i+j)
			}
		}
	}
	s.reset()
	before := cap(s.buf)
	if xs := s.take(before); &xs[0] != &s.buf[0] || cap(s.buf) != before {
		t.Error("a take within the array after reset allocated a new one")
	}
	if xs := (*slab[int])(nil).take(4); len(xs) != 4 {
		t.Errorf("a nil slab took %d elements, want 4", len(xs))
	}
}

// TestColumnsReused checks that the columns of a write built from reused
// memory are those built from fresh memory, for batches of other sizes
// and events than the write before.
func TestColumnsReused(t *testing.T) {
	st := builtin(t, "iot_telemetry")
	lay, problems := layoutOf(st, fakeTable(st, legacyTypes, "toYYYYMM(stored_at)", ""), v1816)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	reused := new(columns)
	var pool columnPool
	for i, n := range []int{300, 20, 1000, 1} {
		rows, err := withRecords(st, demoBatch(rng, int64(i*10_000), n, start))
		if err != nil {
			t.Fatal(err)
		}
		stored := start.Add(time.Duration(i) * time.Second)
		names, want, err := buildColumns(new(columns), lay, 3, stored, rows)
		if err != nil {
			t.Fatal(err)
		}
		_, got, err := buildColumns(reused, lay, 3, stored, rows)
		if err != nil {
			t.Fatal(err)
		}
		for c := range want {
			if !reflect.DeepEqual(got[c], want[c]) {
				t.Errorf("write %d, column %s: built from reused memory, it differs", i, names[c])
			}
		}
		pool.put(reused)
		reused = pool.get()
	}
}
