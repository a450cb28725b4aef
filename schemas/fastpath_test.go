package schemas

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// TestStringRun compares stringRun with a byte-by-byte scan, on bytes
// drawn mostly from those it must stop at or tell apart.
func TestStringRun(t *testing.T) {
	alphabet := []byte{'"', '\\', 0, 0x1f, 0x20, 0x21, 'a', 0x7f, 0x80, 0xc3, 0xff, 0x22 ^ 0x80, 0x5c ^ 0x80}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		b := make([]byte, r.IntN(40))
		for i := range b {
			if r.IntN(4) == 0 {
				b[i] = alphabet[r.IntN(len(alphabet))]
			} else {
				b[i] = byte(0x20 + r.IntN(0x5f))
			}
		}
		want, wantHigh := 0, false
		for want < len(b) && b[want] != '"' && b[want] != '\\' && b[want] >= 0x20 {
			wantHigh = wantHigh || b[want] >= utf8.RuneSelf
			want++
		}
		if n, high := stringRun(b); n != want || high != wantHigh {
			t.Fatalf("stringRun(%q) = %d, %v; want %d, %v", b, n, high, want, wantHigh)
		}
		if n, high := stringRun(string(b)); n != want || high != wantHigh {
			t.Fatalf("stringRun of string %q = %d, %v; want %d, %v", b, n, high, want, wantHigh)
		}
	}
}

// TestParseLayout checks that every timestamp parseLayout takes is what
// time.Parse makes of it, and that it leaves the rest to time.Parse.
func TestParseLayout(t *testing.T) {
	check := func(s string) {
		t.Helper()
		got, ok := parseLayout(s)
		want, err := time.Parse(time.RFC3339Nano, s)
		if ok && (err != nil || got != want) {
			t.Fatalf("parseLayout(%q) = %v; time.Parse: %v, %v", s, got, want, err)
		}
		if gotB, okB := parseLayout([]byte(s)); okB != ok || gotB != got {
			t.Fatalf("parseLayout of bytes differs for %q", s)
		}
		if !ok && err == nil && len(s) == 24 && s[23] == 'Z' && s[10] == 'T' && s[19] == '.' {
			t.Fatalf("parseLayout(%q) refused what time.Parse takes", s)
		}
	}
	for _, year := range []int{0, 1, 1900, 1969, 1970, 2000, 2023, 2024, 2100, 2105, 2106, 9999} {
		for month := 0; month <= 13; month++ {
			for day := 0; day <= 32; day++ {
				check(fmtStamp(year, month, day, 23, 59, 59, 999))
			}
		}
	}
	for _, s := range []string{
		"2026-11-24T10:00:00.123Z", "2026-11-24T24:00:00.000Z", "2026-11-24T10:60:00.000Z",
		"2026-11-24T10:00:60.000Z", "2026-11-24t10:00:00.123Z", "2026-11-24T10:00:00.123z",
		"2026-11-24T10:00:00,123Z", "2026-11-24T10:00:00.12Z", "2026-11-24T10:00:00.1234Z",
		"2026-11-24T10:00:00.1a3Z", "+026-11-24T10:00:00.123Z", "2026-11-24T10:00:00.123+00:00",
		"2026-1-024T10:00:00.123Z", "2026-11-24T10:00:-1.123Z",
	} {
		check(s)
	}
}

func fmtStamp(year, month, day, hour, minute, sec, ms int) string {
	b := []byte("0000-00-00T00:00:00.000Z")
	put := func(at, width, n int) {
		for i := at + width - 1; i >= at; i-- {
			b[i] = byte('0' + n%10)
			n /= 10
		}
	}
	put(0, 4, year)
	put(5, 2, month)
	put(8, 2, day)
	put(11, 2, hour)
	put(14, 2, minute)
	put(17, 2, sec)
	put(20, 3, ms)
	return string(b)
}

// TestParseFloat compares parseFloat with strconv.ParseFloat, bit for bit,
// on JSON number literals around its fast path's limits.
func TestParseFloat(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	lits := []string{"0", "-0", "0.0", "-0.0", "1", "-1", "21.5", "1013.25", "0.87", "0.1", "0.3",
		"123456789012345", "1234567890123456", "12345678901234567890", "999999999999999.9",
		"0.000000000000001", "0.0000000000000001", "9007199254740993", "1e5", "1E-7", "-2.5e+3",
		"1e400", "-1e400", "1e-400", "4.9e-324", "1.7976931348623157e308", "1795946400123"}
	for range 200000 {
		var b []byte
		if r.IntN(2) == 0 {
			b = append(b, '-')
		}
		intDigits := 1 + r.IntN(17)
		b = append(b, byte('1'+r.IntN(9)))
		for range intDigits - 1 {
			b = append(b, byte('0'+r.IntN(10)))
		}
		if r.IntN(4) == 0 {
			b = append(b[:len(b)-intDigits], '0')
		}
		if r.IntN(3) > 0 {
			b = append(b, '.')
			for range 1 + r.IntN(17) {
				b = append(b, byte('0'+r.IntN(10)))
			}
		}
		lits = append(lits, string(b))
	}
	for _, lit := range lits {
		want, err := strconv.ParseFloat(lit, 64)
		got, ok := parseFloat([]byte(lit))
		if ok != (err == nil) || math.Float64bits(got) != math.Float64bits(want) && ok {
			t.Fatalf("parseFloat(%s) = %v, %v; ParseFloat: %v, %v", lit, got, ok, want, err)
		}
	}
}

// TestInternConcurrent decodes events from several goroutines at once,
// with more distinct strings than the intern table holds, so that slots
// are replaced while others read them: every event must still decode to
// what decodeGeneric makes of it (and the race detector stay quiet).
func TestInternConcurrent(t *testing.T) {
	st := builtinStream(t, "iot_telemetry")
	msgs := make([][]byte, 3*internSlots)
	for i := range msgs {
		msgs[i] = []byte(fmt.Sprintf(`{"event_id":"e%d","device_id":"d-%d","ts":"2026-11-24T10:00:00.123Z",`+
			`"metrics":{"m%d":1,"t":2},"tags":{"site":"s%d"},"received_at":"2026-11-24T10:00:01.456Z"}`, i, i%700, i%900, i%500))
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range msgs {
				b := msgs[(i*(g+1))%len(msgs)]
				got, err := st.Decode(b)
				want, werr := st.decodeGeneric(b)
				if err != nil || werr != nil || !reflect.DeepEqual(got, want) {
					t.Errorf("Decode(%s) = %v, %v; want %v, %v", b, got, err, want, werr)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// An input's probe stops interning a field whose values do not repeat, and
// keeps interning one whose values do; either way the values are right.
func TestInternProbe(t *testing.T) {
	tab := newInternTable()
	var unique, repeated internProbe
	for i := range 100 {
		want := fmt.Sprintf("trace-%032d", i)
		if s, v := unique.value(tab, []byte(want)); s != want || v != want {
			t.Fatalf("value %d: %q, %v", i, s, v)
		}
		if s, _ := repeated.value(tab, []byte("checkout")); s != "checkout" {
			t.Fatalf("value %d: %q", i, s)
		}
	}
	if !unique.off || repeated.off {
		t.Errorf("after 100 values: unique off=%v (want true), repeated off=%v (want false)", unique.off, repeated.off)
	}
}
