package schemas

import (
	"slices"
	"testing"
)

// builtinStream returns one of the streams that ship with Sluice.
func builtinStream(tb testing.TB, name string) *Stream {
	tb.Helper()
	r, err := Builtin()
	if err != nil {
		tb.Fatal(err)
	}
	st := r.Stream(name)
	if st == nil {
		tb.Fatalf("no built-in stream %s", name)
	}
	return st
}

// typedDir holds machine_state, a user-defined stream with number, boolean
// and enum fields.
const typedDir = "testdata/typed"

// typedStream returns machine_state as testdata/typed defines it.
func typedStream(tb testing.TB) *Stream {
	tb.Helper()
	r, err := LoadDir(typedDir)
	if err != nil {
		tb.Fatal(err)
	}
	st := r.Stream("machine_state")
	if st == nil {
		tb.Fatalf("no stream machine_state in %s", typedDir)
	}
	return st
}

// unboundedTypedStream is machine_state without the bounds of temperature,
// so that it takes every finite number.
func unboundedTypedStream(tb testing.TB) *Stream {
	tb.Helper()
	st := *typedStream(tb)
	st.Fields = slices.Clone(st.Fields)
	for i := range st.Fields {
		st.Fields[i].Min, st.Fields[i].Max = nil, nil
	}
	if err := st.check(); err != nil {
		tb.Fatal(err)
	}
	return &st
}
