package clickhouse

import (
	"sync"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	chcol "github.com/ClickHouse/clickhouse-go/v2/lib/column"

	"github.com/sluicehq/sluice/internal/slicepool"
)

// The columns of an INSERT live as long as the INSERT: the slices
// buildColumns makes from the rows (a string header, a time or a number a
// row each), and the buffers the driver copies them into (a string's
// bytes and 16 more for where it is, a number, an Array row's end
// offset). Allocated anew for each INSERT, they were two fifths of the
// bytes the work role allocated at saturation, and every byte allocated
// brings the next garbage collection nearer. So an INSERT that was sent
// gives them back, and the next takes them: newColumn and recycleColumns
// for ours, reserve and recycleDriverColumns for the driver's. In
// BenchmarkInsert a 20,000-row batch allocated 18.8 MB before, 4 after.
//
// The pools of our columns are by element type: their slices all have a
// batch's length. The driver's buffers are kept by table and column
// (driverBuffers), as their sizes differ from column to column (an
// event_id, a Nested map's names, four or five a row) by more than the
// four times a pool tolerates (slicepool.Pool.Get). Memory stays bounded
// by the INSERTs in flight, as for the workers' batches.
var (
	stringCols  slicepool.Pool[string]
	timeCols    slicepool.Pool[time.Time]
	float64Cols slicepool.Pool[float64]
	int64Cols   slicepool.Pool[int64]
	int32Cols   slicepool.Pool[int32]
	uint16Cols  slicepool.Pool[uint16]
	uint8Cols   slicepool.Pool[uint8]
	boolCols    slicepool.Pool[bool]
	stringRows  slicepool.Pool[[]string]
	float64Rows slicepool.Pool[[]float64]

	// driverBuffers holds a *columnBuffers for each columnKey.
	driverBuffers sync.Map
)

// columnKey names a column of a table.
type columnKey struct{ table, column string }

// columnBuffers are the buffers of a driver's column, by what it holds: a
// String column's bytes and where each string is in them, an Array
// column's end offsets, numbers, times. One column uses one or two.
type columnBuffers struct {
	bytes     slicepool.Pool[byte]
	positions slicepool.Pool[proto.Position]
	offsets   slicepool.Pool[uint64]
	float64s  slicepool.Pool[float64]
	int64s    slicepool.Pool[int64]
	int32s    slicepool.Pool[int32]
	uint16s   slicepool.Pool[uint16]
	dateTimes slicepool.Pool[proto.DateTime]
}

// buffersOf returns the pools of column k's driver buffers.
func buffersOf(k columnKey) *columnBuffers {
	if b, ok := driverBuffers.Load(k); ok {
		return b.(*columnBuffers)
	}
	b, _ := driverBuffers.LoadOrStore(k, new(columnBuffers))
	return b.(*columnBuffers)
}

// newColumn returns a column of n zero values, recycled from an INSERT
// sent before when its type has a pool.
func newColumn[T any](n int) []T {
	var s any
	switch any(*new(T)).(type) {
	case string:
		s = stringCols.Get(n)
	case time.Time:
		s = timeCols.Get(n)
	case float64:
		s = float64Cols.Get(n)
	case int64:
		s = int64Cols.Get(n)
	case int32:
		s = int32Cols.Get(n)
	case uint16:
		s = uint16Cols.Get(n)
	case uint8:
		s = uint8Cols.Get(n)
	case bool:
		s = boolCols.Get(n)
	case []string:
		s = stringRows.Get(n)
	case []float64:
		s = float64Rows.Get(n)
	default:
		return make([]T, n)
	}
	return s.([]T)[:n]
}

// recycleColumns gives the columns of an INSERT back to their pools, once
// it was sent: the driver has copied them, and nothing reads them again.
func recycleColumns(data []any) {
	for _, c := range data {
		recycleColumn(c)
	}
}

// recycleColumn gives one column back to its pool; one of a type without
// a pool is left to the collector.
func recycleColumn(c any) {
	switch c := c.(type) {
	case []string:
		stringCols.Put(c)
	case []time.Time:
		timeCols.Put(c)
	case []float64:
		float64Cols.Put(c)
	case []int64:
		int64Cols.Put(c)
	case []int32:
		int32Cols.Put(c)
	case []uint16:
		uint16Cols.Put(c)
	case []uint8:
		uint8Cols.Put(c)
	case []bool:
		boolCols.Put(c)
	case [][]string:
		stringRows.Put(c)
	case [][]float64:
		float64Rows.Put(c)
	}
}

// recycleDriverColumns takes the buffers of the driver's columns from a
// batch that was sent, for reserve to give the next batch: cols[i]'s go
// to bufs[i] (none where bufs[i] is nil). The batch must not be used
// again.
func recycleDriverColumns(cols []chcol.Interface, bufs []*columnBuffers) {
	for i, c := range cols {
		b := bufs[i]
		if b == nil {
			continue
		}
		if a, ok := c.(*chcol.Array); ok {
			if offsets := arrayOffsets.in(a); offsets != nil {
				give(offsets, &b.offsets)
			}
			c = a.Base()
		}
		recycleValues(c, b)
	}
}

// recycleValues takes the buffers of a driver column's values.
func recycleValues(c chcol.Interface, b *columnBuffers) {
	switch c := c.(type) {
	case *chcol.String:
		if col := stringCol.in(c); col != nil {
			give(&col.Buf, &b.bytes)
			give(&col.Pos, &b.positions)
		}
	case *chcol.Float64:
		give(float64Col.in(c), &b.float64s)
	case *chcol.Int64:
		give(int64Col.in(c), &b.int64s)
	case *chcol.Int32:
		give(int32Col.in(c), &b.int32s)
	case *chcol.UInt16:
		give(uint16Col.in(c), &b.uint16s)
	case *chcol.DateTime:
		if col := dateTimeCol.in(c); col != nil {
			give(&col.Data, &b.dateTimes)
		}
	}
}

// give puts *s in pool and leaves the column without it. A nil s (the
// driver's column without the field) is left alone.
func give[C ~[]E, E any](s *C, pool *slicepool.Pool[E]) {
	if s == nil {
		return
	}
	pool.Put(*s)
	*s = nil
}
