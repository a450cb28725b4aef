package schemas

import (
	"os"
	"reflect"
	"slices"
	"testing"
	"testing/fstest"
)

// FuzzLoad loads arbitrary stream definitions. Loading must not panic and
// must give the same answer twice; a stream it accepts must keep the
// promises check makes (a required string partition key, a lookup of
// every field), and the Decoder must agree with Validate on events of it.
func FuzzLoad(f *testing.F) {
	for _, name := range []string{"iot_telemetry.yaml", "app_logs.yaml", typedDir + "/machine_state.yaml"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("name: s\npartition_key: k\nfields:\n  - {name: k, type: string, required: true, max_length: 3}\n" +
		"  - {name: m, type: map(string), max_entries: 1, max_length: 2}\n  - {name: n, type: number, min: 0, max: 1}\n"))
	f.Add([]byte("name: s\npartition_key: k\nfields: [{name: k, type: enum, values: [a, a]}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// The stream's name must be the file's: try the names the seeds use.
		for _, file := range []string{"s.yaml", "iot_telemetry.yaml", "app_logs.yaml", "machine_state.yaml"} {
			fsys := fstest.MapFS{file: {Data: data}}
			r, err := load(fsys)
			r2, err2 := load(fsys)
			if (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() {
				t.Fatalf("two answers: %v, %v", err, err2)
			}
			if err != nil {
				continue
			}
			if !reflect.DeepEqual(r.Names(), r2.Names()) {
				t.Fatalf("two answers: %v, %v", r.Names(), r2.Names())
			}
			for _, st := range r.Streams() {
				checkLoadedStream(t, st)
			}
		}
	})
}

// checkLoadedStream checks what check promises of a loaded stream, and
// runs the decoder seeds through the Decoder against Validate.
func checkLoadedStream(t *testing.T, st *Stream) {
	t.Helper()
	pk := st.Field(st.PartitionKey)
	if pk == nil || pk.Type != TypeString || !pk.Required {
		t.Fatalf("%s: partition key %q is not a required string field", st.Name, st.PartitionKey)
	}
	for i := range st.Fields {
		if st.Field(st.Fields[i].Name) != &st.Fields[i] || st.index[st.Fields[i].Name] != i {
			t.Fatalf("%s: field %s not looked up", st.Name, st.Fields[i].Name)
		}
	}
	for _, s := range slices.Concat(fuzzSeeds, decoderSeeds) {
		checkDecoderMatchesValidate(t, st, []byte(s))
	}
}
