package workers

// idQueue is a dedupe window's ids in the order they were added, oldest
// first: a ring of entries that reuses its slots.
//
// Why: it was a slice appended to at the back and cut at the front, whose
// dead front was copied away once it was half the slice. Filling a window
// of a million ids that way grew the slice by doubling and moved it each
// time, with the table beside it (idTable), some 10 MB allocated and
// copied per partition, and at saturation a twentieth of the work role's
// CPU went to it. A window made with its full size (newIDQueue) never
// grows or moves: 24 bytes an id, as the memory plan counts, of which
// the kernel maps only what the window has filled.
type idQueue struct {
	ring []windowEntry // ring[head] is the oldest of n entries, wrapping
	head int
	n    int
}

// newIDQueue returns a queue that holds size entries without growing.
func newIDQueue(size int) idQueue { return idQueue{ring: make([]windowEntry, size)} }

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

// grow doubles the ring, unwrapping it.
func (q *idQueue) grow() {
	ring := make([]windowEntry, max(64, 2*len(q.ring)))
	k := copy(ring, q.ring[q.head:])
	copy(ring[k:], q.ring[:q.head])
	q.ring, q.head = ring, 0
}
