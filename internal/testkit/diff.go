package testkit

import "strings"

// FirstDiff returns the first line, counted from 1, where texts a and b
// differ, and that line of each ("" past the end of one); 0 when they are
// the same. Golden-file tests quote it instead of two whole files.
func FirstDiff(a, b string) (line int, la, lb string) {
	as, bs := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < max(len(as), len(bs)); i++ {
		la, lb = "", ""
		if i < len(as) {
			la = as[i]
		}
		if i < len(bs) {
			lb = bs[i]
		}
		if la != lb {
			return i + 1, la, lb
		}
	}
	return 0, "", ""
}
