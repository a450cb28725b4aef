package clickhouse

import (
	"bytes"
	"testing"

	"github.com/ClickHouse/ch-go/proto"
	chcol "github.com/ClickHouse/clickhouse-go/v2/lib/column"
)

// TestAppendArrays checks that appendArrays encodes Array columns exactly
// as the driver's own path does, appended to in two goes, empty rows
// included. It fails when a driver release moves the buffers out of
// appendArrays' reach.
func TestAppendArrays(t *testing.T) {
	names := make([][]string, 1500)
	values := make([][]float64, len(names))
	for i := range names {
		names[i] = []string{"battery", "humidity", "rssi", "temperature"}[:i%5]
		values[i] = []float64{1.5, 2, float64(i), -4}[:i%5]
	}
	cases := []struct {
		typ         string
		first, rest any
	}{
		{"Array(String)", names[:700], names[700:]},
		{"Array(Float64)", values[:700], values[700:]},
	}
	for _, c := range cases {
		direct, driver := driverColumn(t, c.typ), driverColumn(t, c.typ)
		for _, part := range []any{c.first, c.rest} {
			if !appendArrays(direct, part) {
				t.Fatalf("%s: appendArrays cannot reach the driver's buffers", c.typ)
			}
			if err := appendColumn(batchColumn{driver}, part); err != nil {
				t.Fatalf("%s: %v", c.typ, err)
			}
		}
		if direct.Rows() != len(names) || driver.Rows() != len(names) {
			t.Fatalf("%s: %d and %d rows, want %d", c.typ, direct.Rows(), driver.Rows(), len(names))
		}
		var a, b proto.Buffer
		direct.Encode(&a)
		driver.Encode(&b)
		if !bytes.Equal(a.Buf, b.Buf) {
			t.Errorf("%s: appendArrays encodes %d bytes that differ from the driver's %d", c.typ, len(a.Buf), len(b.Buf))
		}
	}
}

func TestAppendArraysLeavesOtherColumns(t *testing.T) {
	for _, c := range []struct {
		typ  string
		data any
	}{
		{"String", []string{"a"}},
		{"Array(Array(String))", [][]string{{"a"}}},
		{"Array(Int32)", [][]float64{{1}}},
	} {
		col := driverColumn(t, c.typ)
		if appendArrays(col, c.data) || col.Rows() != 0 {
			t.Errorf("%s: appendArrays took %T, which is not its to append", c.typ, c.data)
		}
	}
}

func driverColumn(t testing.TB, typ string) chcol.Interface {
	t.Helper()
	col, err := chcol.Type(typ).Column("x", nil)
	if err != nil {
		t.Fatal(err)
	}
	return col
}

// BenchmarkAppendArrays appends a batch's metric names, three Nested
// names a row, by appendArrays and by the driver's own path.
func BenchmarkAppendArrays(b *testing.B) {
	names := make([][]string, 5000)
	for i := range names {
		names[i] = []string{"humidity", "rssi", "temperature"}
	}
	for _, bc := range []struct {
		name string
		add  func(chcol.Interface) error
	}{
		{"direct", func(c chcol.Interface) error {
			if !appendArrays(c, names) {
				b.Fatal("appendArrays cannot reach the driver's buffers")
			}
			return nil
		}},
		{"driver", func(c chcol.Interface) error { return appendColumn(batchColumn{c}, names) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			// One column, emptied each time: what is measured is the
			// appending, not the allocating.
			c := driverColumn(b, "Array(String)")
			for b.Loop() {
				c.Reset()
				if err := bc.add(c); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(names)), "ns/row")
		})
	}
}
