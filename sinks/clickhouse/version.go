package clickhouse

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is a ClickHouse server's release, major.minor: what decides the
// column types Sluice can use.
type Version struct {
	Major, Minor int
}

// modernSince is the first release whose types the tables use when they
// can: 22.8, the oldest LTS with DateTime64, Map, LowCardinality without a
// setting, column codecs, skip indexes, table TTL and the Bool type.
// Anything older (Debian's 18.16) gets the types 18.16 has.
var modernSince = Version{22, 8}

// ParseVersion reads "18.16.1", "25.3.2.39", "25.3" or "v25.3.2": the
// parts after major.minor are ignored.
func ParseVersion(s string) (Version, error) {
	parts := strings.Split(strings.TrimPrefix(strings.TrimSpace(s), "v"), ".")
	if len(parts) < 2 {
		return Version{}, fmt.Errorf("clickhouse: version %q: want major.minor", s)
	}
	major, err := strconv.Atoi(parts[0])
	if err != nil || major < 0 {
		return Version{}, fmt.Errorf("clickhouse: version %q: major %q is not a number", s, parts[0])
	}
	minor, err := strconv.Atoi(parts[1])
	if err != nil || minor < 0 {
		return Version{}, fmt.Errorf("clickhouse: version %q: minor %q is not a number", s, parts[1])
	}
	return Version{major, minor}, nil
}

// String returns major.minor.
func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// AtLeast reports whether v is o or later.
func (v Version) AtLeast(o Version) bool {
	return v.Major > o.Major || v.Major == o.Major && v.Minor >= o.Minor
}

// Modern reports whether the server has the types of the modern tables
// (22.8 or later).
func (v Version) Modern() bool { return v.AtLeast(modernSince) }
