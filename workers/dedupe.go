package workers

import (
	"hash/maphash"
	"time"
)

// Two independent 64-bit hashes make a 128-bit key: a collision would make
// Sluice drop a distinct event as a duplicate, so 64 bits over millions of
// entries is too thin, while storing whole event_ids (up to 128 bytes) costs
// too much memory.
var seedA, seedB = maphash.MakeSeed(), maphash.MakeSeed()

type idKey [2]uint64

func keyOf(id string) idKey {
	return idKey{maphash.String(seedA, id), maphash.String(seedB, id)}
}

type windowEntry struct {
	key idKey
	at  int64 // unix ms when remembered
}

// dedupeWindow remembers the event_ids one partition delivered recently, so a
// producer's retry with the same event_id is not written twice. It forgets an
// id after span, or earlier when it holds max ids: memory is bounded, and the
// effective window shrinks under very high rates rather than growing without
// bound.
//
// It is owned by the single goroutine that runs a partition's ordered stage
// and is not safe for concurrent use.
type dedupeWindow struct {
	span  time.Duration
	max   int
	seen  map[idKey]struct{}
	queue []windowEntry // insertion order; queue[head:] is live
	head  int
	// evictedYoung counts ids dropped for room before span elapsed.
	evictedYoung int64
}

func newDedupeWindow(span time.Duration, max int) *dedupeWindow {
	if max <= 0 {
		max = 1
	}
	return &dedupeWindow{span: span, max: max, seen: make(map[idKey]struct{})}
}

// Contains reports whether id was remembered and not yet forgotten.
func (w *dedupeWindow) Contains(id string, now time.Time) bool {
	w.expire(now)
	_, ok := w.seen[keyOf(id)]
	return ok
}

// Add remembers id as delivered at now.
func (w *dedupeWindow) Add(id string, now time.Time) {
	k := keyOf(id)
	if _, ok := w.seen[k]; ok {
		return
	}
	w.seen[k] = struct{}{}
	w.queue = append(w.queue, windowEntry{k, now.UnixMilli()})
	for len(w.seen) > w.max {
		w.popOldest(true)
	}
	w.expire(now)
}

// Len returns how many ids are remembered.
func (w *dedupeWindow) Len() int { return len(w.seen) }

func (w *dedupeWindow) expire(now time.Time) {
	limit := now.Add(-w.span).UnixMilli()
	for w.head < len(w.queue) && w.queue[w.head].at < limit {
		w.popOldest(false)
	}
}

func (w *dedupeWindow) popOldest(forRoom bool) {
	e := w.queue[w.head]
	w.queue[w.head] = windowEntry{}
	w.head++
	delete(w.seen, e.key)
	if forRoom {
		w.evictedYoung++
	}
	// Reclaim the dead front of the queue once it is half the slice.
	if w.head > 1024 && w.head*2 > len(w.queue) {
		n := copy(w.queue, w.queue[w.head:])
		w.queue = w.queue[:n]
		w.head = 0
	}
}
