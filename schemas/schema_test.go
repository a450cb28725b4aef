package schemas

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestBuiltin(t *testing.T) {
	r, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.Names(), []string{"app_logs", "iot_telemetry"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	for _, tt := range []struct{ name, key, table string }{
		{"iot_telemetry", "device_id", "iot_telemetry"},
		{"app_logs", "service", "app_logs"},
	} {
		st := r.Stream(tt.name)
		if st == nil || st.PartitionKey != tt.key || st.Table != tt.table {
			t.Errorf("stream %s = %+v, want partition key %s and table %s", tt.name, st, tt.key, tt.table)
		}
	}
	if r.Stream("nope") != nil {
		t.Error("unknown stream found")
	}
	if st := r.Streams(); len(st) != 2 || st[0].Name != "app_logs" {
		t.Errorf("Streams() not sorted by name: %v", st)
	}
}

// A valid definition that the cases below break one way each.
const goodDef = `name: sensors
partition_key: id
order_by: [id, ts]
fields:
  - name: id
    type: string
    required: true
  - name: ts
    type: timestamp
    required: true
  - name: level
    type: enum
    values: [low, high]
  - name: readings
    type: map(number)
  - name: temp
    type: number
    min: -40
    max: 125
  - name: running
    type: boolean
`

func TestLoadDir(t *testing.T) {
	// edit replaces old with new in goodDef, and fails if old is not there.
	edit := func(pairs ...string) string {
		s := goodDef
		for i := 0; i < len(pairs); i += 2 {
			if !strings.Contains(s, pairs[i]) {
				t.Fatalf("test bug: %q not in the definition", pairs[i])
			}
			s = strings.Replace(s, pairs[i], pairs[i+1], 1)
		}
		return s
	}
	tests := []struct {
		name  string
		files map[string]string
		want  string // the error after "schemas in DIR: "; "" means it loads
	}{
		{"valid", map[string]string{"sensors.yaml": goodDef}, ""},
		{"other files are ignored", map[string]string{"sensors.yaml": goodDef, "README.md": "x", "old.yml": "x"}, ""},
		{"no definitions", map[string]string{"README.md": "x"}, "no *.yaml stream definitions"},
		{"empty file", map[string]string{"sensors.yaml": "# nothing yet\n"}, "sensors.yaml: no stream definition in the file"},
		{"not YAML", map[string]string{"sensors.yaml": "name: [x"},
			"sensors.yaml: yaml: line 1: did not find expected ',' or ']'"},
		{"unknown key", map[string]string{"sensors.yaml": edit("partition_key:", "partitionkey:")},
			"sensors.yaml: yaml: unmarshal errors:\n  line 2: field partitionkey not found in type schemas.Stream"},
		{"unknown field key", map[string]string{"sensors.yaml": edit("required: true\n  - name: ts", "requried: true\n  - name: ts")},
			"sensors.yaml: yaml: unmarshal errors:\n  line 7: field requried not found in type schemas.Field"},
		{"file name differs", map[string]string{"sensor.yaml": goodDef},
			`sensor.yaml: stream name "sensors" differs from the file name`},
		{"bad stream name", map[string]string{"Sensors.yaml": edit("name: sensors", "name: Sensors")},
			`Sensors.yaml: name "Sensors": must match ^[a-z][a-z0-9_]{0,62}$`},
		{"bad table name", map[string]string{"sensors.yaml": edit("name: sensors\n", "name: sensors\ntable: 'x;drop'\n")},
			`sensors.yaml: table "x;drop": must match ^[a-z][a-z0-9_]{0,62}$`},
		{"two streams, one table", map[string]string{
			"a.yaml": edit("name: sensors", "name: a\ntable: shared"),
			"b.yaml": edit("name: sensors", "name: b\ntable: shared"),
		}, `b.yaml: table "shared" already used by stream a`},
		{"a table named after another stream", map[string]string{
			"a.yaml": edit("name: sensors", "name: a"),
			"b.yaml": edit("name: sensors", "name: b\ntable: a"),
		}, `b.yaml: table "a" already used by stream a`},
		{"no fields", map[string]string{"sensors.yaml": "name: sensors\npartition_key: id\n"}, "sensors.yaml: fields: none defined"},
		{"bad field name", map[string]string{"sensors.yaml": edit("name: readings", "name: read-ings")},
			`sensors.yaml: fields[3].name "read-ings": must match ^[a-z][a-z0-9_]{0,62}$`},
		{"event_id reserved", map[string]string{"sensors.yaml": edit("name: readings", "name: event_id")},
			`sensors.yaml: fields[3].name "event_id": reserved`},
		{"received_at reserved", map[string]string{"sensors.yaml": edit("name: readings", "name: received_at")},
			`sensors.yaml: fields[3].name "received_at": reserved`},
		{"kafka_ prefix reserved", map[string]string{"sensors.yaml": edit("name: readings", "name: kafka_offset")},
			`sensors.yaml: fields[3].name "kafka_offset": reserved`},
		{"duplicate field", map[string]string{"sensors.yaml": edit("name: readings", "name: level")},
			`sensors.yaml: fields[3].name "level": defined twice`},
		{"unknown type", map[string]string{"sensors.yaml": edit("type: map(number)", "type: int")},
			`sensors.yaml: fields[3] readings: unknown type "int"`},
		{"no type", map[string]string{"sensors.yaml": edit("    type: map(number)\n", "")},
			`sensors.yaml: fields[3] readings: unknown type ""`},
		{"enum without values", map[string]string{"sensors.yaml": edit("    values: [low, high]\n", "")},
			`sensors.yaml: fields[2] level: enum without values`},
		{"millisecond column clash", map[string]string{"sensors.yaml": edit("name: readings\n    type: map(number)", "name: ts_ms\n    type: string")},
			`sensors.yaml: field ts_ms: clashes with the millisecond column of ts`},
		{"no partition key", map[string]string{"sensors.yaml": edit("partition_key: id\n", "")},
			`sensors.yaml: partition_key "": no such field`},
		{"partition key not a field", map[string]string{"sensors.yaml": edit("partition_key: id", "partition_key: device")},
			`sensors.yaml: partition_key "device": no such field`},
		{"partition key optional", map[string]string{"sensors.yaml": edit("type: string\n    required: true", "type: string")},
			`sensors.yaml: partition_key "id": must be a required string field`},
		{"partition key not a string", map[string]string{"sensors.yaml": edit("partition_key: id", "partition_key: ts")},
			`sensors.yaml: partition_key "ts": must be a required string field`},
		{"partition key an enum", map[string]string{"sensors.yaml": edit("partition_key: id", "partition_key: level")},
			`sensors.yaml: partition_key "level": must be a required string field`},
		{"order by unknown", map[string]string{"sensors.yaml": edit("[id, ts]", "[id, time]")},
			`sensors.yaml: order_by "time": no such field`},
		{"order by a map", map[string]string{"sensors.yaml": edit("[id, ts]", "[readings]")},
			`sensors.yaml: order_by "readings": maps cannot be sort keys`},
		{"order by a number and a boolean", map[string]string{"sensors.yaml": edit("[id, ts]", "[running, temp, id]")}, ""},
		{"partition key a number", map[string]string{"sensors.yaml": edit("partition_key: id", "partition_key: temp")},
			`sensors.yaml: partition_key "temp": must be a required string field`},
		{"partition key a boolean", map[string]string{"sensors.yaml": edit("partition_key: id", "partition_key: running",
			"type: boolean", "type: boolean\n    required: true")},
			`sensors.yaml: partition_key "running": must be a required string field`},

		// number: min and max, both optional, both finite, in order.
		{"number without bounds", map[string]string{"sensors.yaml": edit("    min: -40\n    max: 125\n", "")}, ""},
		{"number with min only", map[string]string{"sensors.yaml": edit("    max: 125\n", "")}, ""},
		{"number with max only", map[string]string{"sensors.yaml": edit("    min: -40\n", "")}, ""},
		{"number bounds equal", map[string]string{"sensors.yaml": edit("min: -40", "min: 125")}, ""},
		{"number bounds fractional", map[string]string{"sensors.yaml": edit("min: -40", "min: -0.5", "max: 125", "max: 1.5e3")}, ""},
		{"number min above max", map[string]string{"sensors.yaml": edit("min: -40", "min: 125.5")},
			`sensors.yaml: fields[4] temp: min 125.5 is greater than max 125`},
		{"number min NaN", map[string]string{"sensors.yaml": edit("min: -40", "min: .nan")},
			`sensors.yaml: fields[4] temp: min NaN: must be a finite number`},
		{"number max infinite", map[string]string{"sensors.yaml": edit("max: 125", "max: .inf")},
			`sensors.yaml: fields[4] temp: max +Inf: must be a finite number`},
		{"number min infinite", map[string]string{"sensors.yaml": edit("min: -40", "min: -.inf")},
			`sensors.yaml: fields[4] temp: min -Inf: must be a finite number`},
		{"number min not a number", map[string]string{"sensors.yaml": edit("min: -40", "min: cold")},
			"sensors.yaml: yaml: unmarshal errors:\n  line 18: cannot unmarshal !!str `cold` into float64"},
		{"number with max_length", map[string]string{"sensors.yaml": edit("type: number", "type: number\n    max_length: 8")},
			`sensors.yaml: fields[4] temp: option max_length does not apply to type number`},
		{"number with values", map[string]string{"sensors.yaml": edit("type: number", "type: number\n    values: [1, 2]")},
			`sensors.yaml: fields[4] temp: option values does not apply to type number`},
		{"number with max_entries", map[string]string{"sensors.yaml": edit("type: number", "type: number\n    max_entries: 3")},
			`sensors.yaml: fields[4] temp: option max_entries does not apply to type number`},

		// boolean: no options.
		{"boolean required", map[string]string{"sensors.yaml": edit("type: boolean", "type: boolean\n    required: true")}, ""},
		{"boolean with min", map[string]string{"sensors.yaml": edit("type: boolean", "type: boolean\n    min: 0")},
			`sensors.yaml: fields[5] running: option min does not apply to type boolean`},
		{"boolean with max", map[string]string{"sensors.yaml": edit("type: boolean", "type: boolean\n    max: 1")},
			`sensors.yaml: fields[5] running: option max does not apply to type boolean`},
		{"boolean with values", map[string]string{"sensors.yaml": edit("type: boolean", "type: boolean\n    values: [yes, no]")},
			`sensors.yaml: fields[5] running: option values does not apply to type boolean`},
		{"boolean with max_length", map[string]string{"sensors.yaml": edit("type: boolean", "type: boolean\n    max_length: 5")},
			`sensors.yaml: fields[5] running: option max_length does not apply to type boolean`},

		// The other types refuse what does not apply to them too.
		{"string with min", map[string]string{"sensors.yaml": edit("type: string", "type: string\n    min: 1")},
			`sensors.yaml: fields[0] id: option min does not apply to type string`},
		{"string with an empty values list", map[string]string{"sensors.yaml": edit("type: string", "type: string\n    values: []")},
			`sensors.yaml: fields[0] id: option values does not apply to type string`},
		{"timestamp with max_length", map[string]string{"sensors.yaml": edit("type: timestamp", "type: timestamp\n    max_length: 30")},
			`sensors.yaml: fields[1] ts: option max_length does not apply to type timestamp`},
		{"enum with max_length", map[string]string{"sensors.yaml": edit("type: enum", "type: enum\n    max_length: 4")},
			`sensors.yaml: fields[2] level: option max_length does not apply to type enum`},
		{"enum with max", map[string]string{"sensors.yaml": edit("type: enum", "type: enum\n    max: 4")},
			`sensors.yaml: fields[2] level: option max does not apply to type enum`},
		{"map with values", map[string]string{"sensors.yaml": edit("type: map(number)", "type: map(number)\n    values: [a]")},
			`sensors.yaml: fields[3] readings: option values does not apply to type map(number)`},
		{"map with min", map[string]string{"sensors.yaml": edit("type: map(number)", "type: map(number)\n    min: 0")},
			`sensors.yaml: fields[3] readings: option min does not apply to type map(number)`},
		{"map with its options", map[string]string{"sensors.yaml": edit("type: map(number)", "type: map(number)\n    max_entries: 8\n    max_length: 16")}, ""},
		{"negative max_length", map[string]string{"sensors.yaml": edit("type: string", "type: string\n    max_length: -1")},
			`sensors.yaml: fields[0] id: max_length -1: must not be negative`},
		{"negative max_entries", map[string]string{"sensors.yaml": edit("type: map(number)", "type: map(number)\n    max_entries: -1")},
			`sensors.yaml: fields[3] readings: max_entries -1: must not be negative`},
		{"enum with an empty values list", map[string]string{"sensors.yaml": edit("[low, high]", "[]")},
			`sensors.yaml: fields[2] level: enum without values`},
		{"enum value twice", map[string]string{"sensors.yaml": edit("[low, high]", "[low, high, low]")},
			`sensors.yaml: fields[2] level: values: "low" listed twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			r, err := LoadDir(dir)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				st := r.Stream("sensors")
				if st == nil || st.Table != "sensors" || st.Field("readings") == nil || st.Field("event_id") != nil {
					t.Errorf("loaded %+v", st)
				}
				return
			}
			if want := "schemas in " + dir + ": " + tt.want; err == nil || err.Error() != want {
				t.Errorf("err = %v\nwant  %s", err, want)
			}
		})
	}
}

func TestLoadDirMissing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nope")
	if _, err := LoadDir(dir); err == nil || err.Error() != "schemas in "+dir+": no *.yaml stream definitions" {
		t.Errorf("err = %v", err)
	}
}

// A stream defined in a file validates by its definition.
func TestLoadedStreamValidates(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "sensors.yaml"), []byte(goodDef), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	st := r.Stream("sensors")
	_, errs := st.Validate(obj(t, `{"id":"x","ts":0,"level":"mid","readings":{"a":1}}`))
	if got, want := errStrings(errs), []string{`level: "mid" is not one of low, high`}; !reflect.DeepEqual(got, want) {
		t.Errorf("errors %q, want %q", got, want)
	}
	ev, errs := st.Validate(obj(t, `{"id":"x","ts":0}`))
	if errs != nil || ev.Key != "x" {
		t.Errorf("optional fields absent: %+v, %v", ev, errs)
	}
	_, errs = st.Validate(obj(t, `{"id":"x","ts":0,"temp":125.01,"running":"yes"}`))
	if got, want := errStrings(errs), []string{"temp: 125.01 is above the maximum 125", "running: must be true or false, got string"}; !reflect.DeepEqual(got, want) {
		t.Errorf("errors %q, want %q", got, want)
	}
}

// TestTypedTestdata pins testdata/typed/machine_state.yaml, which tests of
// other packages load.
func TestTypedTestdata(t *testing.T) {
	r, err := LoadDir(typedDir)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Names(); !reflect.DeepEqual(got, []string{"machine_state"}) {
		t.Fatalf("streams %v, want only machine_state", got)
	}
	st := r.Stream("machine_state")
	if st.PartitionKey != "machine_id" || st.Table != "machine_state" || !reflect.DeepEqual(st.OrderBy, []string{"machine_id", "ts"}) {
		t.Errorf("stream %+v", st)
	}
	ptr := func(x float64) *float64 { return &x }
	want := []Field{
		{Name: "machine_id", Type: TypeString, Required: true, MaxLength: 128},
		{Name: "ts", Type: TypeTimestamp, Required: true},
		{Name: "temperature", Type: TypeNumber, Min: ptr(-273.15), Max: ptr(1000)},
		{Name: "running", Type: TypeBoolean, Required: true},
		{Name: "mode", Type: TypeEnum, Required: true, Values: []string{"idle", "auto", "manual", "maintenance"}},
	}
	if !reflect.DeepEqual(st.Fields, want) {
		t.Errorf("fields\n got %+v\nwant %+v", st.Fields, want)
	}
}
