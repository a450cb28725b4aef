package schemas

import "testing"

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
