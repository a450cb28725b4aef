package workers

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/eventkey"
)

func TestDedupeWindow(t *testing.T) {
	// step is one call on the window: Duplicate (the default) or, with
	// remember set, Remember; at is the event's receive time after recv0.
	type step struct {
		id       string
		off      int64
		at       time.Duration
		remember bool
		want     bool // Duplicate's answer
	}
	tests := []struct {
		name        string
		span        time.Duration
		max         int
		steps       []step
		wantLen     int
		wantEvicted int64
	}{
		{"duplicate within span of the watermark", 10 * time.Minute, 100, []step{
			{id: "a", off: 0, at: 0},
			{id: "b", off: 1, at: time.Minute},
			{id: "a", off: 2, at: 9 * time.Minute, want: true},
			{id: "c", off: 3, at: 9 * time.Minute},
		}, 3, 0},
		{"a retry that waited out an outage finds its original: receive time, not the clock, ages ids", 10 * time.Minute, 100, []step{
			// Received in 2020 (recv0), checked now: only a watermark
			// moving in receive time could forget a.
			{id: "a", off: 0, at: 0},
			{id: "a", off: 1, at: 9*time.Minute + 59*time.Second, want: true},
		}, 1, 0},
		{"kept while the watermark is exactly span past", 10 * time.Minute, 100, []step{
			{id: "a", off: 0, at: 0},
			{id: "b", off: 1, at: 10 * time.Minute},
			{id: "a", off: 2, at: 10 * time.Minute, want: true},
		}, 2, 0},
		{"forgotten once the watermark moves more than span past", 10 * time.Minute, 100, []step{
			{id: "a", off: 0, at: 0},
			{id: "b", off: 1, at: 10*time.Minute + time.Millisecond},
			{id: "a", off: 2, at: 10*time.Minute + time.Millisecond, want: false},
		}, 2, 0},
		{"the watermark never goes back: an old arrival does not revive what it dropped", 10 * time.Minute, 100, []step{
			{id: "a", off: 0, at: 0},
			{id: "b", off: 1, at: 20 * time.Minute}, // drops a
			{id: "c", off: 2, at: time.Minute},      // late, from a skewed collector
			{id: "a", off: 3, at: 20 * time.Minute, want: false},
		}, 3, 0},
		{"an entry received late waits behind a younger one", 10 * time.Minute, 100, []step{
			{id: "a", off: 0, at: 10 * time.Minute},
			{id: "b", off: 1, at: 0},
			{id: "c", off: 2, at: 15 * time.Minute}, // b is older than span, but behind a
			{id: "b", off: 3, at: 15 * time.Minute, want: true},
			{id: "d", off: 4, at: 21 * time.Minute}, // a goes, and b with it
			{id: "b", off: 5, at: 21 * time.Minute, want: false},
		}, 3, 0},
		{"bounded by max: the oldest goes first, counted as evicted early", time.Hour, 2, []step{
			{id: "a", off: 0, at: 0},
			{id: "b", off: 1, at: time.Second},
			{id: "c", off: 2, at: 2 * time.Second}, // evicts a
			{id: "c", off: 3, at: 3 * time.Second, want: true},
			{id: "b", off: 4, at: 3 * time.Second, want: true},
			{id: "a", off: 5, at: 3 * time.Second, want: false}, // new again: evicts b
		}, 2, 2},
		{"ids gone by span are not counted as evicted early", time.Minute, 10, []step{
			{id: "a", off: 0, at: 0},
			{id: "b", off: 1, at: 2 * time.Minute},
		}, 1, 0},
		{"first-offset rule: a lane behind sees the original an ahead lane added as no duplicate", time.Hour, 100, []step{
			// The lane ahead reads offsets 3 and 10.
			{id: "a", off: 3, at: 0},
			{id: "a", off: 10, at: time.Minute, want: true},
			// The lane behind reads them after it.
			{id: "a", off: 3, at: 0, want: false},
			{id: "a", off: 10, at: time.Minute, want: true},
		}, 1, 0},
		{"first-offset rule: a lane ahead that saw only the retry yields the original to the lane behind", time.Hour, 100, []step{
			{id: "a", off: 10, at: time.Minute},             // ahead started past offset 3
			{id: "a", off: 3, at: 0, want: false},           // behind: the original
			{id: "a", off: 10, at: time.Minute, want: true}, // behind: the retry
		}, 1, 0},
		{"the same offset read again is not a duplicate", time.Hour, 100, []step{
			{id: "a", off: 4, at: 0},
			{id: "a", off: 4, at: 0, want: false},
		}, 1, 0},
		{"Remember from the store: a duplicate at later offsets only", 10 * time.Minute, 100, []step{
			{id: "a", off: 5, at: 0, remember: true},
			{id: "a", off: 5, at: 0, want: false}, // an output behind the store publishes the original
			{id: "a", off: 8, at: time.Minute, want: true},
			{id: "a", off: 2, at: 0, want: false}, // earlier than what the store holds: the original
			{id: "a", off: 5, at: 0, want: true},
		}, 1, 0},
		{"Remember keeps the lowest offset", 10 * time.Minute, 100, []step{
			{id: "a", off: 5, at: 0, remember: true},
			{id: "a", off: 3, at: 0, remember: true},
			{id: "a", off: 9, at: 0, remember: true},
			{id: "a", off: 4, at: 0, want: true},
			{id: "a", off: 3, at: 0, want: false},
		}, 1, 0},
		{"Remember moves the watermark like any id", 10 * time.Minute, 100, []step{
			{id: "a", off: 0, at: 0, remember: true},
			{id: "b", off: 1, at: 11 * time.Minute, remember: true},
			{id: "a", off: 2, at: 11 * time.Minute, want: false},
		}, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newDedupeWindow(tt.span, tt.max)
			for i, s := range tt.steps {
				k, at := idHasher.Sum(s.id), recv0.Add(s.at)
				if s.remember {
					w.Remember(k, s.off, at)
					continue
				}
				if got := w.Duplicate(s.id, s.off, at, true); got != s.want {
					t.Fatalf("step %d: Duplicate(%q at offset %d) = %v, want %v", i, s.id, s.off, got, s.want)
				}
			}
			if got := w.Len(); got != tt.wantLen {
				t.Errorf("Len = %d, want %d", got, tt.wantLen)
			}
			if got := w.takeEvicted(); got != tt.wantEvicted {
				t.Errorf("evicted early: %d, want %d", got, tt.wantEvicted)
			}
			if got := w.takeEvicted(); got != 0 {
				t.Errorf("takeEvicted did not reset: %d", got)
			}
		})
	}
}

// An id evicted for room although it was out of span anyway is not one
// "forgotten before the dedupe window elapsed".
func TestDedupeWindowEvictedEarlyCountsOnlyYoungIDs(t *testing.T) {
	w := newDedupeWindow(time.Minute, 2)
	w.Duplicate("a", 0, recv0, true)
	w.Duplicate("b", 1, recv0, true)
	w.Duplicate("c", 2, recv0.Add(10*time.Minute), true) // a and b are out of span
	if n := w.takeEvicted(); n != 0 {
		t.Errorf("evicted early: %d, want 0", n)
	}
}

func TestDedupeWindowStaysBounded(t *testing.T) {
	w := newDedupeWindow(time.Hour, 500)
	for i := range 20_000 {
		w.Duplicate(fmt.Sprintf("id-%d", i), int64(i), recv0, true)
	}
	if w.Len() != 500 {
		t.Fatalf("Len = %d, want 500", w.Len())
	}
	if size := len(w.queue.ring); size != 501 {
		t.Fatalf("queue ring has %d slots, want 501: it grew past the window's size", size)
	}
	if size := len(w.first.slots); size != slotsFor(500) {
		t.Fatalf("id table has %d slots, want %d: it grew past the window's size", size, slotsFor(500))
	}
	if n := w.takeEvicted(); n != 19_500 {
		t.Errorf("evicted early: %d, want 19500", n)
	}
	if !w.Duplicate("id-19999", 20_000, recv0, true) {
		t.Error("the newest id was forgotten")
	}
	if w.Duplicate("id-0", 20_001, recv0, true) {
		t.Error("the oldest id was kept")
	}
}

// Warm reads ahead the slots of a batch's keys and of the oldest ids the
// batch will evict, and changes nothing the window decides.
func TestDedupeWindowWarm(t *testing.T) {
	key := func(i int) eventkey.Key { return idHasher.Sum(fmt.Sprint(i)) }
	w := newDedupeWindow(time.Hour, 4)
	for i := range 3 {
		w.DuplicateKey(key(i), int64(i), recv0, true)
	}
	// Three ids and two more make one too many: the oldest, 0, goes.
	got := w.Warm([]eventkey.Key{key(10), key(11)})
	if want := []eventkey.Key{key(10), key(11), key(0)}; !slices.Equal(got, want) {
		t.Errorf("Warm returned %d keys, want the batch's and the oldest id's (%d)", len(got), len(want))
	}
	if w.Len() != 3 {
		t.Errorf("Len = %d after Warm, want 3", w.Len())
	}
	// A batch larger than the window evicts no more than the window holds.
	if got := w.Warm(make([]eventkey.Key, 9)); len(got) != 9+3 {
		t.Errorf("Warm of 9 keys returned %d, want 12", len(got))
	}
	// A batch that fits evicts none.
	if got := w.Warm([]eventkey.Key{key(10)}); len(got) != 1 {
		t.Errorf("Warm of 1 key returned %d, want 1", len(got))
	}
	for i, want := range []bool{false, false, true, true} {
		if dup := w.DuplicateKey(key([]int{10, 11, 1, 2}[i]), int64(20+i), recv0, true); dup != want {
			t.Errorf("decision %d: duplicate = %v, want %v", i, dup, want)
		}
	}
}

// Lanes of one partition share its window from their own positions: each
// takes exactly the ids seen at a lower offset as duplicates, whatever the
// interleaving.
func TestDedupeWindowSharedByLanes(t *testing.T) {
	const n, distinct = 2000, 1500 // offsets 1500.. repeat the ids of 0..
	w := newDedupeWindow(time.Hour, n)
	var wg sync.WaitGroup
	dups := make([][]int64, 3)
	for lane := range dups {
		wg.Go(func() {
			for off := range int64(n) {
				if w.Duplicate(fmt.Sprint(off%distinct), off, recv0.Add(time.Duration(off)*time.Millisecond), lane == 0) {
					dups[lane] = append(dups[lane], off)
				}
			}
		})
	}
	wg.Wait()
	for lane, d := range dups {
		if len(d) != n-distinct || d[0] != distinct || d[len(d)-1] != n-1 {
			t.Errorf("lane %d: %d duplicates from %v; want offsets %d-%d", lane, len(d), d[:min(3, len(d))], distinct, n-1)
		}
	}
}

// A lane behind the store's gets the store's answers, even for ids the
// window has forgotten since: the output publishes what the store kept.
func TestDedupeWindowTrailingLaneGetsLeadAnswers(t *testing.T) {
	const n = 3000
	w := newDedupeWindow(time.Hour, 50) // far fewer ids than events
	// Every 100th offset repeats the id of the offset 10 before it.
	id := func(off int64) string {
		if off%100 == 99 {
			off -= 10
		}
		return fmt.Sprint(off)
	}
	var lead []bool
	for off := range int64(n) {
		lead = append(lead, w.Duplicate(id(off), off, recv0, true))
	}
	if lead[98] || !lead[99] {
		t.Fatalf("store's answers: offset 98 %v, offset 99 %v; want false, true", lead[98], lead[99])
	}
	// By now the window holds only the last 50 ids: asked itself, it
	// would take offset 99 for new.
	for off := int64(0); off < n; off += 3 {
		if got := w.Duplicate(id(off), off, recv0, false); got != lead[off] {
			t.Fatalf("trailing lane at offset %d: %v, the store's answer %v", off, got, lead[off])
		}
	}
}

// The store's answers are kept for at most maxVerdictSkips duplicates;
// before them a trailing lane asks the window.
func TestDedupeWindowLeadAnswersBounded(t *testing.T) {
	const n = 3000
	w := newDedupeWindow(time.Hour, 50)
	for off := range int64(n) {
		w.Duplicate(fmt.Sprint(off%40), off, recv0, true) // a duplicate from offset 40 on
	}
	if got, from := len(w.verdicts.skips), w.verdicts.lo; got != maxVerdictSkips || from != n-maxVerdictSkips {
		t.Fatalf("%d duplicates recorded from offset %d; want the newest %d, from %d", got, from, maxVerdictSkips, n-maxVerdictSkips)
	}
	if w.Duplicate("forgotten", 45, recv0, false) {
		t.Error("offset 45, before the record: the window took an id it never held for a duplicate")
	}
}

// An id an output added at a later offset, which the store's lane finds
// at an earlier one with a receive time more than the span later (clocks
// of collectors apart): the window moves on past the id and forgets it
// whole, table and queue alike, rather than keeping it in the table with
// no queue entry to age it out.
func TestStoreFindsAnOutputsIdPastTheSpan(t *testing.T) {
	w := newDedupeWindow(10*time.Minute, 100)
	w.Duplicate("x", 5, recv0, false)
	if w.Duplicate("x", 3, recv0.Add(20*time.Minute), true) {
		t.Fatal("the original at offset 3 was taken for a duplicate")
	}
	if n, queued := w.Len(), w.queue.Len(); n != queued {
		t.Errorf("%d ids in the table, %d in the queue: they must be the same ids", n, queued)
	}
}

// TestKeyOf checks that a store's lane asks the window about the id's own
// key whether or not prepare hashed it: a batch whose Decoded lack their
// keys must not have all its events share the zero key (and the second
// taken for a duplicate of the first).
func TestKeyOf(t *testing.T) {
	a, b := Decoded{}, Decoded{}
	a.Event.ID, b.Event.ID = "a", "b"
	if keyOf(a) != idHasher.Sum("a") || keyOf(a) == keyOf(b) {
		t.Error("keyOf does not hash the id of a Decoded that has no key")
	}
	a.Key = idHasher.Sum("other")
	if keyOf(a) != a.Key {
		t.Error("keyOf hashed again an id prepare had hashed")
	}
	w := newDedupeWindow(time.Minute, 10)
	at := time.Now()
	if w.DuplicateKey(keyOf(b), 1, at, true) || !w.Duplicate("b", 2, at, true) {
		t.Error("Duplicate and DuplicateKey disagree on the key of an id")
	}
}
