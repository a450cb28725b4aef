package clickhouse

import (
	"sync"
	"time"
)

// columns is the memory that buildColumns cuts a write's column slices
// from, kept for the next write: the driver copies every value as it is
// appended, so the slices are free again once send returns. Made afresh for
// every batch, they were a ninth of all the work role allocated (some 300
// bytes an event), and each collection of that garbage cost CPU.
//
// A columns is used by one write at a time; Sink.columns hands them out.
type columns struct {
	strs    slab[string]
	times   slab[time.Time]
	int32s  slab[int32]
	int64s  slab[int64]
	uint16s slab[uint16]
	uint8s  slab[uint8]
	bools   slab[bool]
	floats  slab[float64]
	// The rows of a Nested map's names and values, and what appendRows
	// hands the driver for them.
	strRows   slab[[]string]
	floatRows slab[[]float64]
	strPtrs   slab[*string]
	floatPtrs slab[*float64]
}

// reset makes c's memory free for the next write. Elements that point
// elsewhere are cleared first, so that a columns waiting in the pool holds
// no batch's events in memory.
func (c *columns) reset() {
	c.strs.clear()
	c.times.clear()
	c.strRows.clear()
	c.floatRows.clear()
	c.strPtrs.clear()
	c.floatPtrs.clear()
	for _, s := range []interface{ reset() }{&c.strs, &c.times, &c.int32s, &c.int64s, &c.uint16s,
		&c.uint8s, &c.bools, &c.floats, &c.strRows, &c.floatRows, &c.strPtrs, &c.floatPtrs} {
		s.reset()
	}
}

// columnPool holds the columns of writes that are done.
type columnPool struct{ p sync.Pool }

func (p *columnPool) get() *columns {
	if c, ok := p.p.Get().(*columns); ok {
		return c
	}
	return new(columns)
}

func (p *columnPool) put(c *columns) {
	if c != nil {
		c.reset()
		p.p.Put(c)
	}
}

// slab hands out slices of one array, reused from write to write. A slice
// taken stays valid until reset, even when a later take outgrows the
// array: that take starts a larger one, which the next write reuses.
type slab[T any] struct{ buf []T }

// take returns n elements, to be set by the caller (they may hold values
// of an earlier write). A nil slab allocates them.
func (s *slab[T]) take(n int) []T {
	if s == nil {
		return make([]T, n)
	}
	if len(s.buf)+n > cap(s.buf) {
		s.buf = make([]T, 0, max(2*cap(s.buf), n))
	}
	out := s.buf[len(s.buf) : len(s.buf)+n : len(s.buf)+n]
	s.buf = s.buf[:len(s.buf)+n]
	return out
}

// reset frees every element taken.
func (s *slab[T]) reset() { s.buf = s.buf[:0] }

// clear zeroes the elements taken since the last reset.
func (s *slab[T]) clear() { clear(s.buf) }
