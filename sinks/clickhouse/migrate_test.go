package clickhouse

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/schemas"
)

// fakeTable describes a table as the system tables would: st's columns in
// types of flavor fl, partitioned by key (without stored_at for the
// previous layout), with engine_full's tail (a TTL clause, settings).
func fakeTable(st *schemas.Stream, fl flavor, key, tail string) *tableInfo {
	ti := &tableInfo{engine: "MergeTree", partitionKey: key, sortingKey: strings.Join(st.OrderBy, ", "), cols: map[string]string{}}
	for _, sl := range wantSlots(st, fl) {
		if sl.src == srcStoredAt && key == ColKafkaPartition {
			continue
		}
		for _, c := range sl.cols {
			ti.cols[c.name] = c.typ
			ti.names = append(ti.names, c.name)
		}
	}
	ti.engineFull = fmt.Sprintf("MergeTree PARTITION BY %s ORDER BY (%s) %s", key, ti.sortingKey, tail)
	return ti
}

// TestMigrationsGolden pins what EnsureTables reports for tables that
// differ from what Sluice would create, on 18.16 and on the current LTS.
// The 18.16 rebuilds also run for real (TestPreviousLayout,
// TestTableDiffers); the LTS statements are pinned only.
func TestMigrationsGolden(t *testing.T) {
	iot, logs := builtin(t, "iot_telemetry"), builtin(t, "app_logs")
	month, ttl90 := TableOptions{}, TableOptions{TTL: 90 * 24 * time.Hour}
	const ttlTail = "TTL stored_at + toIntervalDay(30) SETTINGS ttl_only_drop_parts = 1, index_granularity = 8192"
	lowCard := fakeTable(iot, modernTypes, "toYYYYMM(stored_at)", "")
	lowCard.cols["device_id"] = "String"
	lowCard.cols["metrics"] = "Map(String, Float64)"
	cases := []struct {
		name string
		st   *schemas.Stream
		v    Version
		o    TableOptions
		ti   *tableInfo
	}{
		{"18.16, previous layout", iot, v1816, month, fakeTable(iot, legacyTypes, ColKafkaPartition, "")},
		{"18.16, TTL asked (Sluice drops partitions: nothing to migrate)", iot, v1816, ttl90, fakeTable(iot, legacyTypes, "toYYYYMM(stored_at)", "")},
		{"25.3, previous layout with 18.16's types", logs, v253, ttl90, fakeTable(logs, legacyTypes, ColKafkaPartition, "")},
		{"25.3, upgraded from 18.16: time layout with 18.16's types", iot, v253, month, fakeTable(iot, legacyTypes, "toYYYYMM(stored_at)", "")},
		{"25.3, plain String and Map(String, ...) where LowCardinality is wanted", iot, v253, month, lowCard},
		{"25.3, TTL asked, table has none", iot, v253, ttl90, fakeTable(iot, modernTypes, "toYYYYMM(stored_at)", "SETTINGS index_granularity = 8192")},
		{"25.3, TTL of 30 days, 90 asked", iot, v253, ttl90, fakeTable(iot, modernTypes, "toYYYYMM(stored_at)", ttlTail)},
		{"25.3, TTL, none asked", iot, v253, month, fakeTable(iot, modernTypes, "toYYYYMM(stored_at)", ttlTail)},
		{"25.3, as Sluice creates it", iot, v253, ttl90, fakeTable(iot, modernTypes, "toYYYYMM(stored_at)", strings.Replace(ttlTail, "(30)", "(90)", 1))},
	}
	var b strings.Builder
	for _, c := range cases {
		fmt.Fprintf(&b, "== %s\n", c.name)
		migs := migrationsFor("sluice", c.st, c.v, c.o, c.ti)
		if len(migs) == 0 {
			b.WriteString("(none)\n")
		}
		for _, m := range migs {
			fmt.Fprintf(&b, "-- %s: %s\n", m.Table, m.Problem)
			for _, q := range m.Statements {
				b.WriteString(q + ";\n")
			}
		}
		b.WriteString("\n")
	}
	golden(t, "migrations.golden", b.String())
}

// TestResolve: the writer follows the types it finds, and says which it
// cannot write.
func TestResolve(t *testing.T) {
	st := orderStream()
	cases := []struct {
		typ      string
		fl       flavor
		field    string
		wantForm form
		ok       bool
	}{
		{"DateTime64(3)", legacyTypes, "ts", formTime64, true},
		{"DateTime64(3, 'UTC')", modernTypes, "ts", formTime64, true},
		{"DateTime", modernTypes, "ts", formTime64, false}, // no ts_ms
		{"LowCardinality(String)", legacyTypes, "note", formString, true},
		{"Enum8('new' = 1, 'paid' = 2, 'shipped' = 3)", modernTypes, "status", formString, true},
		{"Nullable(String)", legacyTypes, "note", formString, false},
		{"UInt64", legacyTypes, "note", formString, false},
		{"Bool", legacyTypes, "paid", formBool, true},
		{"UInt8", modernTypes, "paid", formUInt8, true},
		{"Float32", legacyTypes, "amount", formFloat, false},
		{"Map(String, Float64)", legacyTypes, "prices", formMap, true},
		{"Map(LowCardinality(String), Float64)", legacyTypes, "prices", formMap, true},
		{"Map(String, String)", legacyTypes, "prices", formMap, false},
	}
	for _, c := range cases {
		var want slot
		for _, sl := range wantSlots(st, c.fl) {
			if sl.name == c.field {
				want = sl
			}
		}
		got, ok := resolve(want, map[string]string{c.field: c.typ})
		if got.form != c.wantForm || ok != c.ok || got.field != want.field {
			t.Errorf("%s %s (%v): form %v, ok %v; want %v, %v", c.field, c.typ, c.fl, got.form, ok, c.wantForm, c.ok)
		}
	}
}
