package workers

import (
	"time"

	"github.com/sluicehq/sluice/eventkey"
)

// ids turns event_ids into the keys the dedupe windows hold. One hasher per
// process: the windows are rebuilt from ClickHouse after a restart, never
// carried over.
var idHasher = eventkey.NewHasher()

type windowEntry struct {
	key eventkey.Key
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
	seen  map[eventkey.Key]struct{}
	queue []windowEntry // insertion order; queue[head:] is live
	head  int
	// evictedYoung counts ids dropped for room before span elapsed.
	evictedYoung int64
}

func newDedupeWindow(span time.Duration, max int) *dedupeWindow {
	if max <= 0 {
		max = 1
	}
	return &dedupeWindow{span: span, max: max, seen: make(map[eventkey.Key]struct{})}
}

// Contains reports whether the event_id with key k was remembered and not
// yet forgotten.
func (w *dedupeWindow) Contains(k eventkey.Key, now time.Time) bool {
	w.expire(now)
	_, ok := w.seen[k]
	return ok
}

// Add remembers the event_id with key k as delivered at now.
func (w *dedupeWindow) Add(k eventkey.Key, now time.Time) {
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
