package workers

import "github.com/sluicehq/sluice/eventkey"

// idQueue is a dedupe window's ids in the order they were added, oldest
// first: a ring of entries that reuses its slots.
//
// Why: it was a slice appended to at the back and cut at the front. Its
// dead front was copied away once it was half the slice, so the slice
// grew to twice the ids it held, and a full window moved half its entries
// for every half it added: at saturation a twentieth of the work role's
// CPU went to growing and moving it. The ring grows by doubling while the
// window fills, up to limit entries, and then never moves.
//
// It grows rather than being made whole at the start because the
// collector counts a whole window as live heap from the first event: made
// whole, the work role's windows doubled the heap the collector let it
// reach at 20,000 events/s, and its resident memory with it.
type idQueue struct {
	ring  []windowEntry // ring[head] is the oldest of n entries, wrapping
	head  int
	n     int
	limit int // the most entries the ring grows to
}

// newIDQueue returns an empty queue whose ring grows to limit entries at
// most.
func newIDQueue(limit int) idQueue { return idQueue{limit: limit} }

// Len returns how many entries the queue holds.
func (q *idQueue) Len() int { return q.n }

// push adds e at the back, growing the ring only when it is full.
func (q *idQueue) push(e windowEntry) {
	if q.n == len(q.ring) {
		q.grow()
	}
	i := q.head + q.n
	if i >= len(q.ring) {
		i -= len(q.ring)
	}
	q.ring[i] = e
	q.n++
}

// keys appends the keys of the n oldest entries (all of them when there are
// fewer) to dst.
func (q *idQueue) keys(dst []eventkey.Key, n int) []eventkey.Key {
	for i := range min(n, q.n) {
		j := q.head + i
		if j >= len(q.ring) {
			j -= len(q.ring)
		}
		dst = append(dst, q.ring[j].key)
	}
	return dst
}

// oldest returns the entry at the front. The queue must not be empty.
func (q *idQueue) oldest() windowEntry { return q.ring[q.head] }

// pop removes and returns the entry at the front. The queue must not be
// empty.
func (q *idQueue) pop() windowEntry {
	e := q.ring[q.head]
	q.head++
	if q.head == len(q.ring) {
		q.head = 0
	}
	q.n--
	return e
}

// grow doubles the ring, unwrapping it, but not past limit once it is
// below it; a ring at limit or beyond doubles, which the window never
// asks for (it holds at most limit entries).
func (q *idQueue) grow() {
	size := max(64, 2*len(q.ring))
	if q.limit > len(q.ring) {
		size = min(size, q.limit)
	}
	ring := make([]windowEntry, size)
	k := copy(ring, q.ring[q.head:])
	copy(ring[k:], q.ring[:q.head])
	q.ring, q.head = ring, 0
}
