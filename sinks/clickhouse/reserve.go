package clickhouse

import (
	"reflect"
	"slices"
	"time"
	"unsafe"

	"github.com/ClickHouse/ch-go/proto"
	chcol "github.com/ClickHouse/clickhouse-go/v2/lib/column"

	"github.com/sluicehq/sluice/internal/slicepool"
)

// The driver gathers a column's values in a buffer that starts empty for
// every INSERT and grows by doubling as values are appended. For the strings
// of a batch (event_ids, the names of a map's entries, one by one) the
// growing was a third of all the work role allocated, and appending 20,000
// event_ids took 139 ns each against 32 ns with the buffer sized first.
//
// The driver has no call to size it, so reserve reaches the buffer itself:
// the field of the driver's column type that holds it, found by reflection
// once and checked for its type. A driver release that renames or retypes
// the field turns reserve into a no-op, never into a wrong write, and fails
// TestReserve so that the loss is seen.
var (
	stringCol   = fieldAt[chcol.String, proto.ColStr]("col")
	float64Col  = fieldAt[chcol.Float64, proto.ColFloat64]("col")
	int64Col    = fieldAt[chcol.Int64, proto.ColInt64]("col")
	int32Col    = fieldAt[chcol.Int32, proto.ColInt32]("col")
	uint16Col   = fieldAt[chcol.UInt16, proto.ColUInt16]("col")
	dateTimeCol = fieldAt[chcol.DateTime, proto.ColDateTime]("col")
)

// field is where a struct of type S holds a field of type F, if it does.
type field[S, F any] struct {
	offset uintptr
	ok     bool
}

// fieldAt looks up S's field name, of type F.
func fieldAt[S, F any](name string) field[S, F] {
	f, ok := reflect.TypeFor[S]().FieldByName(name)
	if !ok || f.Type != reflect.TypeFor[F]() {
		return field[S, F]{}
	}
	return field[S, F]{offset: f.Offset, ok: true}
}

// in returns the field in *s, or nil when S has no such field.
func (f field[S, F]) in(s *S) *F {
	if !f.ok {
		return nil
	}
	return (*F)(unsafe.Add(unsafe.Pointer(s), f.offset))
}

// reserve makes room in c, the batch's column, for the values of col (as
// slotColumns builds them) before appendColumn appends them: buffers from
// b, the column's own, that an INSERT sent before gave back
// (recycleDriverColumns), or new ones of the size needed. Columns of other
// types (LowCardinality, Map, DateTime64) are left as they are.
func reserve(c chcol.Interface, col any, b *columnBuffers) {
	switch rows := col.(type) {
	case []string:
		reserveStrings(c, len(rows), totalLen(rows), b)
	case [][]string:
		n, size := 0, 0
		for _, r := range rows {
			n, size = n+len(r), size+totalLen(r)
		}
		reserveOffsets(c, len(rows), b)
		reserveStrings(elements(c), n, size, b)
	case [][]float64:
		n := 0
		for _, r := range rows {
			n += len(r)
		}
		reserveOffsets(c, len(rows), b)
		if f, ok := elements(c).(*chcol.Float64); ok {
			take(float64Col.in(f), n, &b.float64s)
		}
	case []float64:
		if f, ok := c.(*chcol.Float64); ok {
			take(float64Col.in(f), len(rows), &b.float64s)
		}
	case []int64:
		if i, ok := c.(*chcol.Int64); ok {
			take(int64Col.in(i), len(rows), &b.int64s)
		}
	case []int32:
		if i, ok := c.(*chcol.Int32); ok {
			take(int32Col.in(i), len(rows), &b.int32s)
		}
	case []uint16:
		if i, ok := c.(*chcol.UInt16); ok {
			take(uint16Col.in(i), len(rows), &b.uint16s)
		}
	case []time.Time:
		if d, ok := c.(*chcol.DateTime); ok {
			if col := dateTimeCol.in(d); col != nil {
				take(&col.Data, len(rows), &b.dateTimes)
			}
		}
	}
}

// elements returns the column of an Array column's elements, or nil for
// another column.
func elements(c chcol.Interface) chcol.Interface {
	if a, ok := c.(*chcol.Array); ok {
		return a.Base()
	}
	return nil
}

// reserveStrings makes room in a String column for n more strings of size
// bytes in all.
func reserveStrings(c chcol.Interface, n, size int, b *columnBuffers) {
	s, ok := c.(*chcol.String)
	if !ok {
		return
	}
	if col := stringCol.in(s); col != nil {
		take(&col.Buf, size, &b.bytes)
		take(&col.Pos, n, &b.positions)
	}
}

// reserveOffsets makes room in an Array column for the end offsets of n
// more rows.
func reserveOffsets(c chcol.Interface, n int, b *columnBuffers) {
	if a, ok := c.(*chcol.Array); ok {
		if offsets := arrayOffsets.in(a); offsets != nil {
			take(offsets, n, &b.offsets)
		}
	}
}

// take makes room in *s for n more values: a slice from pool when *s has
// none yet (a new batch's column), else *s grown. A nil s (the driver's
// column without the field) is left alone.
func take[C ~[]E, E any](s *C, n int, pool *slicepool.Pool[E]) {
	if s == nil {
		return
	}
	if cap(*s) == 0 {
		*s = pool.Get(n)
		return
	}
	*s = slices.Grow(*s, n)
}

func totalLen(ss []string) int {
	n := 0
	for _, s := range ss {
		n += len(s)
	}
	return n
}
