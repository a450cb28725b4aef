package clickhouse

import (
	"fmt"
	"reflect"
	"testing"
	"unsafe"

	chcol "github.com/ClickHouse/clickhouse-go/v2/lib/column"
)

// batchColumn lets appendColumn append to a driver column outside a batch.
type batchColumn struct{ chcol.Interface }

func (c batchColumn) Append(v any) error {
	_, err := c.Interface.Append(v)
	return err
}

// TestReserve checks that reserve sizes the driver's buffers for the
// values appendColumn then appends, so that appending them moves no
// buffer, and that the values read back as appended. It fails when a
// driver release moves the buffers out of reserve's reach.
func TestReserve(t *testing.T) {
	ids := make([]string, 5000)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench01-iot_telemetry-%d", i)
	}
	names := make([][]string, 2000)
	values := make([][]float64, len(names))
	for i := range names {
		names[i] = []string{"battery", "humidity", "rssi", "temperature"}[:1+i%4]
		values[i] = []float64{1.5, 2, float64(i), -4}[:1+i%4]
	}
	cases := []struct {
		typ  string
		data any
		n    int
	}{
		{"String", ids, len(ids)},
		{"Array(String)", names, len(names)},
		{"Array(Float64)", values, len(values)},
	}
	for _, c := range cases {
		col, err := chcol.Type(c.typ).Column("x", nil)
		if err != nil {
			t.Fatal(err)
		}
		reserve(col, c.data, new(columnBuffers))
		before := bufferOf(t, col)
		if err := appendColumn(batchColumn{col}, c.data); err != nil {
			t.Fatalf("%s: %v", c.typ, err)
		}
		if after := bufferOf(t, col); after != before {
			t.Errorf("%s: appending moved the buffer that reserve sized", c.typ)
		}
		if col.Rows() != c.n {
			t.Fatalf("%s: %d rows, want %d", c.typ, col.Rows(), c.n)
		}
		rows := reflect.ValueOf(c.data)
		for i := 0; i < c.n; i += 997 {
			if got, want := col.Row(i, false), rows.Index(i).Interface(); !reflect.DeepEqual(got, want) {
				t.Errorf("%s row %d: %v, want %v", c.typ, i, got, want)
			}
		}
	}
}

// bufferOf returns the address of the array holding the values of col, or
// of its elements for an Array column.
func bufferOf(t *testing.T, col chcol.Interface) unsafe.Pointer {
	t.Helper()
	if a, ok := col.(*chcol.Array); ok {
		col = a.Base()
	}
	switch c := col.(type) {
	case *chcol.String:
		if s := stringCol.in(c); s != nil {
			return unsafe.Pointer(unsafe.SliceData(s.Buf))
		}
	case *chcol.Float64:
		if f := float64Col.in(c); f != nil {
			return unsafe.Pointer(unsafe.SliceData(*f))
		}
	}
	t.Fatalf("%s: the driver's column no longer has the field reserve sizes", col.Type())
	return nil
}
