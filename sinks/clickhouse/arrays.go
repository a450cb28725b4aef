package clickhouse

import (
	"reflect"
	"slices"
	"unsafe"

	"github.com/ClickHouse/ch-go/proto"
	chcol "github.com/ClickHouse/clickhouse-go/v2/lib/column"
)

// The driver appends an Array column's row by passing each element, as an
// any, through the element column's type switch: for a Nested map's names
// and values (three Array columns of iot_telemetry, a few elements an
// event each) that was a twentieth of the work role's CPU at saturation.
// appendArrays appends them straight into the buffers the driver encodes
// from: the element column's (as reserve reaches it) and the column of
// the rows' end offsets, found here the same way, once. A driver release
// that changes either turns appendArrays into a "no", and appendColumn
// then takes the driver's own path; TestAppendArrays fails so that the
// loss is seen.
var arrayOffsets = offsetsField()

// offsetsLayout is where an Array column keeps the column of its rows' end
// offsets: the field offsets, a slice of pointers to a struct whose field
// values is a chcol.UInt64, one per level of nesting.
type offsetsLayout struct {
	slice  uintptr // of Array.offsets
	values uintptr // of values in the struct offsets points to
	ok     bool
}

var uint64Col = fieldAt[chcol.UInt64, proto.ColUInt64]("col")

func offsetsField() offsetsLayout {
	f, ok := reflect.TypeFor[chcol.Array]().FieldByName("offsets")
	if !ok || f.Type.Kind() != reflect.Slice || f.Type.Elem().Kind() != reflect.Pointer ||
		f.Type.Elem().Elem().Kind() != reflect.Struct || !uint64Col.ok {
		return offsetsLayout{}
	}
	v, ok := f.Type.Elem().Elem().FieldByName("values")
	if !ok || v.Type != reflect.TypeFor[chcol.UInt64]() {
		return offsetsLayout{}
	}
	return offsetsLayout{slice: f.Offset, values: v.Offset, ok: true}
}

// in returns the offsets column of a, an Array of one level, or nil.
func (l offsetsLayout) in(a *chcol.Array) *proto.ColUInt64 {
	if !l.ok {
		return nil
	}
	levels := *(*[]unsafe.Pointer)(unsafe.Add(unsafe.Pointer(a), l.slice))
	if len(levels) != 1 || levels[0] == nil {
		return nil
	}
	return uint64Col.in((*chcol.UInt64)(unsafe.Add(levels[0], l.values)))
}

// appendArrays appends rows to c, an Array(String) or Array(Float64)
// column, and reports whether it could; when it could not, it appended
// nothing.
func appendArrays(c chcol.Interface, col any) bool {
	a, ok := c.(*chcol.Array)
	if !ok {
		return false
	}
	offsets := arrayOffsets.in(a)
	if offsets == nil {
		return false
	}
	switch rows := col.(type) {
	case [][]string:
		s, ok := a.Base().(*chcol.String)
		if !ok {
			return false
		}
		if elems := stringCol.in(s); elems != nil {
			appendRowsTo(offsets, rows, elems.Append)
			return true
		}
	case [][]float64:
		f, ok := a.Base().(*chcol.Float64)
		if !ok {
			return false
		}
		if elems := float64Col.in(f); elems != nil {
			appendRowsTo(offsets, rows, elems.Append)
			return true
		}
	}
	return false
}

// appendRowsTo appends each row's elements with add and its end offset to
// offsets.
func appendRowsTo[T any](offsets *proto.ColUInt64, rows [][]T, add func(T)) {
	*offsets = slices.Grow(*offsets, len(rows))
	var end uint64
	if n := len(*offsets); n > 0 {
		end = (*offsets)[n-1]
	}
	for _, r := range rows {
		for _, v := range r {
			add(v)
		}
		end += uint64(len(r))
		offsets.Append(end)
	}
}
