// Package slicepool recycles slices whose life is one batch: a worker's
// batch of messages, the rows it stores, the columns of an INSERT.
package slicepool

import "sync"

// Pool recycles slices of T once the batch that used one is done, so that
// the next batch takes one of the same size rather than allocating and
// zeroing it anew. Per-batch slices were a third of the bytes the work
// role allocated at saturation, and every byte allocated brings the next
// garbage collection nearer.
//
// A slice is put back only when nothing reads it any more; Put zeroes it,
// so that it keeps nothing alive and Get hands out zero values. Memory
// stays bounded by the batches in flight: a slice is reused before any is
// made, and the runtime drops what the pool holds over two collections.
//
// The zero value is ready to use; a Pool is safe for concurrent use.
type Pool[T any] struct{ p sync.Pool }

// Get returns a slice of length 0 with room for n, recycled when one large
// enough is at hand. One more than four times too large is left to the
// garbage collector instead, so that after a burst the small batches of a
// quiet hour do not each hold a slice sized for the burst.
func (sp *Pool[T]) Get(n int) []T {
	if s, ok := sp.p.Get().(*[]T); ok {
		if c := cap(*s); c >= n && c <= 4*max(n, 64) {
			return (*s)[:0]
		}
	}
	return make([]T, 0, n)
}

// Put zeroes s, which must be all of the slice that was written to, and
// keeps it for Get.
func (sp *Pool[T]) Put(s []T) {
	if cap(s) == 0 {
		return
	}
	clear(s)
	s = s[:0]
	sp.p.Put(&s)
}
