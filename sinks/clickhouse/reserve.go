package clickhouse

import (
	"reflect"
	"slices"
	"unsafe"

	"github.com/ClickHouse/ch-go/proto"
	chcol "github.com/ClickHouse/clickhouse-go/v2/lib/column"
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
	stringCol  = fieldAt[chcol.String, proto.ColStr]("col")
	float64Col = fieldAt[chcol.Float64, proto.ColFloat64]("col")
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

// reserve makes room in c, the batch's column named by key, for the values
// of col (as slotColumns builds them) before appendColumn appends them. A
// String column's room is the buffers of the same column of an INSERT sent
// before, when there are some (recycleDriverColumns). Columns of other
// types (LowCardinality, Map, the numbers appended in one go) are left as
// they are.
func reserve(c chcol.Interface, col any, key columnKey) {
	switch rows := col.(type) {
	case []string:
		reserveStrings(c, len(rows), totalLen(rows), key)
	case [][]string:
		n, size := 0, 0
		for _, r := range rows {
			n, size = n+len(r), size+totalLen(r)
		}
		reserveStrings(elements(c), n, size, key)
	case [][]float64:
		n := 0
		for _, r := range rows {
			n += len(r)
		}
		reserveFloat64s(elements(c), n)
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
func reserveStrings(c chcol.Interface, n, size int, key columnKey) {
	s, ok := c.(*chcol.String)
	if !ok {
		return
	}
	if col := stringCol.in(s); col != nil {
		if cap(col.Buf) == 0 {
			// A new batch's column: take the buffers of one sent
			// before.
			b := buffersOf(key)
			col.Buf, col.Pos = b.bytes.Get(size), b.positions.Get(n)
			return
		}
		col.Buf = slices.Grow(col.Buf, size)
		col.Pos = slices.Grow(col.Pos, n)
	}
}

// reserveFloat64s makes room in a Float64 column for n more values.
func reserveFloat64s(c chcol.Interface, n int) {
	f, ok := c.(*chcol.Float64)
	if !ok {
		return
	}
	if col := float64Col.in(f); col != nil {
		*col = slices.Grow(*col, n)
	}
}

func totalLen(ss []string) int {
	n := 0
	for _, s := range ss {
		n += len(s)
	}
	return n
}
