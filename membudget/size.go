package membudget

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// sizeUnits are the suffixes ParseSize knows, longest first so that "MiB"
// is not read as "B". Binary and decimal prefixes mean what they say
// (1MiB = 1,048,576 bytes, 1MB = 1,000,000), as in Kubernetes quantities;
// a bare K, M or G is binary, as in GOMEMLIMIT and most tools' flags.
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
	{"B", 1},
}

// ParseSize reads a byte size: a plain number of bytes ("268435456"), or
// a number with a unit ("256MiB", "1GiB", "1.5G", "512MB"). Units are
// case sensitive: a lower-case b would be bits.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	num, mult := t, int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			num, mult = strings.TrimSpace(t[:len(t)-len(u.suffix)]), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("size %q: want bytes, or a number with KiB, MiB, GiB (or KB, MB, GB)", s)
	}
	bytes := v * float64(mult)
	if bytes >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return int64(bytes), nil
}

// FormatSize writes n bytes with the largest binary unit that keeps one
// decimal honest ("256MiB", "1.5GiB", "900B").
func FormatSize(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	v, i := float64(n), 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if v == math.Trunc(v) {
		return fmt.Sprintf("%d%s", int64(v), units[i])
	}
	return fmt.Sprintf("%.1f%s", v, units[i])
}

// Size is a pflag.Value (and flag.Value) for byte sizes, such as
// --memory-limit: it parses with ParseSize and prints with FormatSize.
type Size int64

// Set parses s.
func (z *Size) Set(s string) error {
	v, err := ParseSize(s)
	if err != nil {
		return err
	}
	*z = Size(v)
	return nil
}

// String prints the size with its unit.
func (z *Size) String() string { return FormatSize(int64(*z)) }

// Type names the value in --help.
func (z *Size) Type() string { return "size" }
