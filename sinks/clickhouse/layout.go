package clickhouse

import (
	"strings"

	"github.com/sluicehq/sluice/schemas"
)

// form is how a table holds one value of a row, which decides what an
// INSERT sends for it. The writer follows the table as it finds it, not the
// DDL it would create, so that a table of an older layout or of 18.16's
// types on an upgraded server is written correctly until it is migrated.
type form int

const (
	formString    form = iota // String, LowCardinality(String), Enum8/16
	formSplitTime             // DateTime in seconds, UInt16 milliseconds in <name>_ms
	formTime64                // DateTime64(3)
	formNested                // Nested: Array(String) <name>.name, Array(V) <name>.value
	formMap                   // Map(K, V)
	formFloat                 // Float64
	formUInt8                 // UInt8 holding a boolean as 0 or 1
	formBool                  // Bool
	formInt32                 // kafka_partition
	formInt64                 // kafka_offset
	formDateTime              // stored_at
)

// source says where a slot's value comes from.
type source int

const (
	srcEventID source = iota
	srcField
	srcReceivedAt
	srcKafkaPartition
	srcKafkaOffset
	srcStoredAt
)

// column is one physical column, as system.columns names and types it: a
// Nested field is two Array columns, <field>.name and <field>.value.
type column struct {
	name, typ string
	codec     string // CODEC(...) of CREATE TABLE, "" for none
	dflt      string // DEFAULT of CREATE TABLE, "" for none
}

// slot is one value of a row and the column(s) that hold it.
type slot struct {
	src   source
	field *schemas.Field // when src is srcField
	index int            // the field's index in the stream's Fields
	name  string         // the field's name, or Sluice's column's
	form  form
	cols  []column
}

// ddl returns the slot's column definitions for CREATE TABLE, where a
// Nested field is one definition rather than its two arrays.
func (sl slot) ddl() []string {
	if sl.form == formNested {
		value := strings.TrimSuffix(strings.TrimPrefix(sl.cols[1].typ, "Array("), ")")
		return []string{Quote(sl.name) + " Nested(name String, value " + value + ")"}
	}
	out := make([]string, len(sl.cols))
	for i, c := range sl.cols {
		out[i] = Quote(c.name) + " " + c.typ
		if c.dflt != "" {
			out[i] += " DEFAULT " + c.dflt
		}
		if c.codec != "" {
			out[i] += " " + c.codec
		}
	}
	return out
}

func codec(fl flavor, first string) string {
	if fl == legacyTypes {
		return ""
	}
	return "CODEC(" + first + ", ZSTD)"
}

func one(src source, name string, f form, typ, codec string) slot {
	return slot{src: src, name: name, form: f, cols: []column{{name: name, typ: typ, codec: codec}}}
}

// wantSlots returns the slots of st's table as Sluice creates it with types
// of flavor fl, in table order, stored_at last.
func wantSlots(st *schemas.Stream, fl flavor) []slot {
	out := []slot{one(srcEventID, ColEventID, formString, "String", "")}
	for i := range st.Fields {
		sl := wantField(st, &st.Fields[i], fl)
		sl.src, sl.field, sl.index = srcField, &st.Fields[i], i
		out = append(out, sl)
	}
	recv := timeSlot(ColReceivedAt, fl, true)
	recv.src = srcReceivedAt
	stored := one(srcStoredAt, ColStoredAt, formDateTime, "DateTime", codec(fl, "DoubleDelta"))
	// Sluice always sets it. The default covers an INSERT that does not (a
	// writer that has not seen the table migrated to this layout, a manual
	// one): now() is one value per INSERT too, so the INSERT is still one
	// part, and a recent one, where Progress looks.
	stored.cols[0].dflt = "now()"
	return append(out, recv,
		one(srcKafkaPartition, ColKafkaPartition, formInt32, "Int32", ""),
		one(srcKafkaOffset, ColKafkaOffset, formInt64, "Int64", codec(fl, "Delta")),
		stored,
	)
}

// lowCardinalityNames are string fields with few distinct values in any
// fleet, besides the partition key: a dictionary per part stores them in a
// byte or two and speeds up grouping by them.
var lowCardinalityNames = map[string]bool{"device_id": true, "service": true, "host": true}

func wantField(st *schemas.Stream, f *schemas.Field, fl flavor) slot {
	switch f.Type {
	case schemas.TypeTimestamp:
		return timeSlot(f.Name, fl, f.Name == "ts")
	case schemas.TypeNumberMap:
		return mapSlot(f.Name, fl, "Float64")
	case schemas.TypeStringMap:
		return mapSlot(f.Name, fl, "String")
	case schemas.TypeNumber:
		return one(srcField, f.Name, formFloat, "Float64", codec(fl, "Gorilla"))
	case schemas.TypeBoolean:
		if fl == legacyTypes {
			return one(srcField, f.Name, formUInt8, "UInt8", "")
		}
		return one(srcField, f.Name, formBool, "Bool", "")
	}
	// string, enum
	if fl == modernTypes && (f.Type == schemas.TypeEnum || f.Name == st.PartitionKey || lowCardinalityNames[f.Name]) {
		return one(srcField, f.Name, formString, "LowCardinality(String)", "")
	}
	return one(srcField, f.Name, formString, "String", "")
}

// timeSlot holds a timestamp: DateTime64(3) where the server has it (with
// DoubleDelta for the columns that grow steadily), else seconds and
// milliseconds apart.
func timeSlot(name string, fl flavor, steady bool) slot {
	if fl == legacyTypes {
		return slot{name: name, form: formSplitTime, cols: []column{{name: name, typ: "DateTime"}, {name: name + msSuffix, typ: "UInt16"}}}
	}
	c := ""
	if steady {
		c = codec(fl, "DoubleDelta")
	}
	return one(srcField, name, formTime64, "DateTime64(3)", c)
}

// mapSlot holds a map: Map where the server has it, with the names of
// metrics (few, repeated) as LowCardinality; else Nested arrays.
func mapSlot(name string, fl flavor, value string) slot {
	if fl == legacyTypes {
		return slot{name: name, form: formNested, cols: []column{{name: name + ".name", typ: "Array(String)"}, {name: name + ".value", typ: "Array(" + value + ")"}}}
	}
	key := "String"
	if value == "Float64" {
		key = "LowCardinality(String)"
	}
	return one(srcField, name, formMap, "Map("+key+", "+value+")", "")
}

// resolve returns want as the table holds it, given the table's columns
// (name -> type). The slot takes the form of the columns found where they
// are of a type Sluice can write; ok is false otherwise (a column missing,
// or of a type Sluice cannot write), and then the slot is want itself, so
// that an INSERT names the columns Sluice expects and the server or the
// driver says what is wrong.
func resolve(want slot, have map[string]string) (slot, bool) {
	got, ok := resolveForm(want, have)
	got.src, got.field, got.index = want.src, want.field, want.index
	return got, ok
}

func resolveForm(want slot, have map[string]string) (slot, bool) {
	got := want
	typ, found := have[want.name]
	switch want.form {
	case formSplitTime, formTime64:
		switch {
		case strings.HasPrefix(typ, "DateTime64("):
			return one(want.src, want.name, formTime64, typ, ""), true
		case isDateTime(typ) && have[want.name+msSuffix] == "UInt16":
			return slot{src: want.src, name: want.name, form: formSplitTime,
				cols: []column{{name: want.name, typ: typ}, {name: want.name + msSuffix, typ: "UInt16"}}}, true
		}
	case formNested, formMap:
		value := want.cols[len(want.cols)-1].typ // Array(V) or Map(K, V)
		isNumber := strings.Contains(value, "Float64")
		if found && strings.HasPrefix(typ, "Map(") {
			return one(want.src, want.name, formMap, typ, ""), mapTypeOK(typ, isNumber)
		}
		names, okn := have[want.name+".name"]
		values, okv := have[want.name+".value"]
		if okn && okv {
			got = slot{src: want.src, name: want.name, form: formNested,
				cols: []column{{name: want.name + ".name", typ: names}, {name: want.name + ".value", typ: values}}}
			return got, arrayTypeOK(names, false) && arrayTypeOK(values, isNumber)
		}
	case formUInt8, formBool:
		switch typ {
		case "UInt8":
			return one(want.src, want.name, formUInt8, typ, ""), true
		case "Bool":
			return one(want.src, want.name, formBool, typ, ""), true
		}
	default:
		if found && writableAs(want.form, typ) {
			got.cols = []column{{name: want.name, typ: typ}}
			return got, true
		}
	}
	return got, false
}

func isDateTime(typ string) bool { return typ == "DateTime" || strings.HasPrefix(typ, "DateTime(") }

func writableAs(f form, typ string) bool {
	switch f {
	case formString:
		return stringType(typ) || strings.HasPrefix(typ, "Enum8(") || strings.HasPrefix(typ, "Enum16(")
	case formFloat:
		return typ == "Float64"
	case formInt32:
		return typ == "Int32"
	case formInt64:
		return typ == "Int64"
	case formDateTime:
		return isDateTime(typ)
	}
	return false
}

func stringType(typ string) bool { return typ == "String" || typ == "LowCardinality(String)" }

// mapTypeOK: keys are strings, values Float64 or strings.
func mapTypeOK(typ string, number bool) bool {
	inner := strings.TrimSuffix(strings.TrimPrefix(typ, "Map("), ")")
	for _, k := range []string{"String", "LowCardinality(String)"} {
		if v, ok := strings.CutPrefix(inner, k+", "); ok {
			if number {
				return v == "Float64"
			}
			return stringType(v)
		}
	}
	return false
}

func arrayTypeOK(typ string, number bool) bool {
	inner, ok := strings.CutPrefix(typ, "Array(")
	if !ok {
		return false
	}
	inner = strings.TrimSuffix(inner, ")")
	if number {
		return inner == "Float64"
	}
	return stringType(inner)
}

// tableLayout is a table as Sluice found it, which decides how it writes
// and reads it.
type tableLayout struct {
	// slots are what an INSERT sends, as the table holds them; stored_at
	// only where the table has it.
	slots []slot
	// byTime: partitioned by stored_at (toYYYYMM or toYYYYMMDD), so that
	// Progress and Resume read the newest time partitions only. Otherwise
	// the table is of the previous layout, partitioned by kafka_partition,
	// and they filter on it.
	byTime bool
	// storedAt: the table has the stored_at column.
	storedAt bool
	// recv64: received_at is DateTime64, not seconds plus milliseconds.
	recv64 bool
	// ownTTL: the table has a TTL of its own, so DropExpired leaves it be.
	ownTTL bool
}

// recvMillis is an expression of received_at in Unix milliseconds (Int64).
func (l *tableLayout) recvMillis() string {
	if l.recv64 {
		return "toUnixTimestamp64Milli(" + Quote(ColReceivedAt) + ")"
	}
	return "toInt64(toUnixTimestamp(" + Quote(ColReceivedAt) + ")) * 1000 + " + Quote(ColReceivedAtMs)
}
