package clickhouse

import (
	"testing"
	"time"

	chcol "github.com/ClickHouse/clickhouse-go/v2/lib/column"

	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks"
)

// TestEncodeModernTypes checks, without a server, that what Write sends for
// a table of the current LTS's types (DateTime64, Map, LowCardinality,
// Bool) is what the driver accepts for those columns. The 18.16 types are
// checked against the real server by the other tests.
func TestEncodeModernTypes(t *testing.T) {
	sc := &chcol.ServerContext{VersionMajor: 25, VersionMinor: 3, Timezone: time.UTC}
	cases := readBackCases()
	for _, st := range []*schemas.Stream{builtin(t, "iot_telemetry"), builtin(t, "app_logs"), orderStream()} {
		lay, problems := layoutOf(st, fakeTable(st, modernTypes, "toYYYYMM(stored_at)", ""), v253)
		if len(problems) > 0 {
			t.Fatalf("%s: %v", st.Name, problems)
		}
		var rows []sinks.Row
		for _, c := range cases {
			if c.stream == st.Name {
				rows = append(rows, sinks.Row{Offset: int64(len(rows)), Event: c.event})
			}
		}
		rows, err := withRecords(st, rows)
		if err != nil {
			t.Fatal(err)
		}
		names, data, err := buildColumns(lay, 0, time.Now().Truncate(time.Second), rows)
		if err != nil {
			t.Fatalf("%s: %v", st.Name, err)
		}
		types := map[string]string{}
		for _, sl := range lay.slots {
			for _, c := range sl.cols {
				types[c.name] = c.typ
			}
		}
		for i, name := range names {
			col, err := chcol.Type(types[name]).Column(name, sc)
			if err != nil {
				t.Fatalf("%s column %s %s: %v", st.Name, name, types[name], err)
			}
			if _, err := col.Append(data[i]); err != nil {
				t.Errorf("%s column %s %s: append %T: %v", st.Name, name, types[name], data[i], err)
			} else if col.Rows() != len(rows) {
				t.Errorf("%s column %s: %d rows, want %d", st.Name, name, col.Rows(), len(rows))
			}
		}
	}
}
