package schemas

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Event is one validated event of a stream, with its values normalized:
// strings and enums as string, timestamps as time.Time (UTC, millisecond
// precision), numbers as float64 (finite, within the field's bounds),
// booleans as bool, map(number) as map[string]float64, map(string) as
// map[string]string. Absent optional fields are absent from Fields.
type Event struct {
	// ID is the idempotency key: the producer's event_id, or one Sluice assigned.
	ID string
	// Key is the partition key's value.
	Key string
	// ReceivedAt is when Sluice accepted the event; zero until then.
	ReceivedAt time.Time
	// Fields holds the stream's own fields.
	Fields map[string]any
}

// FieldError says what is wrong with one field of an event.
type FieldError struct {
	// Field names the field, or the unknown key.
	Field string
	// Problem says what is wrong, for the producer to read.
	Problem string
}

// Error reads "field: problem", as the collector reports it.
func (e FieldError) Error() string { return e.Field + ": " + e.Problem }

// Timestamps must fit ClickHouse's DateTime, which ends in February 2106.
var (
	minTime = time.Unix(0, 0).UTC()
	maxTime = time.Date(2105, 12, 31, 23, 59, 59, 999e6, time.UTC)
)

// TimeLayout is how Sluice writes timestamps: RFC 3339, milliseconds, UTC.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// Validate checks one event object as a producer sent it and normalizes it.
// It returns every problem it finds, one per field, in schema order. The
// event's ID is empty when the producer sent none; ReceivedAt is zero.
func (s *Stream) Validate(obj map[string]any) (Event, []FieldError) {
	return s.validate(obj, false)
}

// validate is Validate, or with envelope set, the check of what Encode wrote:
// then event_id and received_at are required instead of optional and
// forbidden.
func (s *Stream) validate(obj map[string]any, envelope bool) (Event, []FieldError) {
	var errs []FieldError
	bad := func(field, problem string) { errs = append(errs, FieldError{field, problem}) }
	ev := Event{Fields: make(map[string]any, len(s.Fields))}
	known := 0 // keys of obj that are not unknown fields

	v, ok := obj[FieldEventID]
	if ok {
		known++
	}
	switch id, isStr := v.(string); {
	case v == nil:
		if envelope {
			bad(FieldEventID, "required")
		}
	case !isStr:
		bad(FieldEventID, "must be a string, got "+JSONKind(v))
	default:
		if problem := checkEventID(id); problem != "" {
			bad(FieldEventID, problem)
		} else {
			ev.ID = id
		}
	}

	for i := range s.Fields {
		f := &s.Fields[i]
		v, ok := obj[f.Name]
		if ok {
			known++
		}
		if !ok || v == nil {
			if f.Required {
				bad(f.Name, "required")
			}
			continue
		}
		norm, problem := f.normalize(v)
		if problem != "" {
			bad(f.Name, problem)
			continue
		}
		ev.Fields[f.Name] = norm
	}

	if v, ok := obj[FieldReceivedAt]; ok {
		known++
		if !envelope {
			bad(FieldReceivedAt, "set by Sluice, not by producers")
		} else if t, problem := parseTime(v); problem != "" {
			bad(FieldReceivedAt, problem)
		} else {
			ev.ReceivedAt = t
		}
	} else if envelope {
		bad(FieldReceivedAt, "required")
	}

	// Looking for unknown keys costs a map lookup per key; counting the
	// known ones above makes the common case, none, free.
	if known < len(obj) {
		errs = s.appendUnknown(errs, obj)
	}

	if len(errs) > 0 {
		return Event{}, errs
	}
	ev.Key = ev.Fields[s.PartitionKey].(string)
	return ev, nil
}

// appendUnknown appends an error for each key of obj that is not a field
// of s, sorted by name.
func (s *Stream) appendUnknown(errs []FieldError, obj map[string]any) []FieldError {
	var unknown []string
	for k := range obj {
		if k != FieldEventID && k != FieldReceivedAt && s.byName[k] == nil {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		// The name is the producer's: bound what it adds to the answer,
		// and show an empty one rather than an error starting with ":".
		if k == "" {
			k = `""`
		}
		errs = append(errs, FieldError{Truncate(k, 64), "unknown field"})
	}
	return errs
}

// checkEventID says what is wrong with a producer's event_id, if anything.
func checkEventID(id string) string {
	if id == "" {
		return "must not be empty"
	}
	if len(id) > MaxEventIDLength {
		return fmt.Sprintf("longer than %d bytes", MaxEventIDLength)
	}
	return ""
}

// normalize checks one present, non-null value and returns its normal form,
// or a problem.
func (f *Field) normalize(v any) (any, string) {
	switch f.Type {
	case TypeString, TypeEnum:
		s, ok := v.(string)
		if !ok {
			return nil, "must be a string, got " + JSONKind(v)
		}
		if problem := f.checkString(s); problem != "" {
			return nil, problem
		}
		// v already holds s: returning it saves boxing s again.
		return v, ""
	case TypeTimestamp:
		t, problem := parseTime(v)
		if problem != "" {
			return nil, problem
		}
		return t, ""
	case TypeNumber:
		x, ok := v.(float64)
		if !ok {
			return nil, "must be a number, got " + JSONKind(v)
		}
		if problem := f.checkNumber(x); problem != "" {
			return nil, problem
		}
		return v, ""
	case TypeBoolean:
		// Only JSON's true and false: "1", 1 or "yes" could as well be a
		// producer's mistake as a way of saying true.
		if _, ok := v.(bool); !ok {
			return nil, "must be true or false, got " + JSONKind(v)
		}
		return v, ""
	case TypeNumberMap:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, "must be an object of name -> number, got " + JSONKind(v)
		}
		if problem := f.checkMapSize(len(m)); problem != "" {
			return nil, problem
		}
		out := make(map[string]float64, len(m))
		for k, x := range m {
			if problem := f.numberEntry(k, x); problem != "" {
				return nil, firstProblem(m, f.numberEntry)
			}
			out[k] = x.(float64)
		}
		return out, ""
	case TypeStringMap:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, "must be an object of name -> string, got " + JSONKind(v)
		}
		if problem := f.checkMapSize(len(m)); problem != "" {
			return nil, problem
		}
		out := make(map[string]string, len(m))
		for k, x := range m {
			if problem := f.stringEntry(k, x); problem != "" {
				return nil, firstProblem(m, f.stringEntry)
			}
			out[k] = x.(string)
		}
		return out, ""
	}
	return nil, "unsupported field type " + string(f.Type)
}

// firstProblem reports the problem of the first bad entry in key order.
// Map iteration order is random; sorting only once something is wrong keeps
// valid events free of the cost and still gives an event the same answer
// every time.
func firstProblem(m map[string]any, check func(string, any) string) string {
	for _, k := range sortedKeys(m) {
		if problem := check(k, m[k]); problem != "" {
			return problem
		}
	}
	return ""
}

// checkString says what is wrong with the value of a string or enum field.
func (f *Field) checkString(s string) string {
	switch {
	case stringOK(f, s):
		return ""
	case f.Type == TypeEnum:
		return fmt.Sprintf("%q is not one of %s", Truncate(s, 32), strings.Join(f.Values, ", "))
	case s == "":
		return "must not be empty"
	}
	return fmt.Sprintf("longer than %d bytes", f.MaxLength)
}

// stringOK reports whether checkString finds nothing wrong with s, without
// needing s as a string.
func stringOK[T string | []byte](f *Field, s T) bool {
	if f.Type == TypeEnum {
		return slices.ContainsFunc(f.Values, func(v string) bool { return v == string(s) })
	}
	return (len(s) > 0 || !f.Required) && (f.MaxLength <= 0 || len(s) <= f.MaxLength)
}

// checkNumber says what is wrong with the value of a number field. JSON
// has no NaN or infinities, but Go callers of Validate can pass them, and
// Encode could not write them. The value quoted is the parsed one, in
// JSON's shortest form: never the producer's literal, which may run to any
// length.
func (f *Field) checkNumber(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "must be a finite number"
	}
	if f.Min != nil && x < *f.Min {
		return fmt.Sprintf("%s is below the minimum %s", formatNumber(x), formatNumber(*f.Min))
	}
	if f.Max != nil && x > *f.Max {
		return fmt.Sprintf("%s is above the maximum %s", formatNumber(x), formatNumber(*f.Max))
	}
	return ""
}

// formatNumber writes a finite x as Encode does, in at most 25 bytes.
func formatNumber(x float64) string {
	b, ok := appendFloat(make([]byte, 0, 25), x)
	if !ok {
		return fmt.Sprint(x)
	}
	return string(b)
}

func (f *Field) numberEntry(k string, v any) string {
	if problem := f.checkKey(k); problem != "" {
		return problem
	}
	if _, ok := v.(float64); !ok {
		return fmt.Sprintf("%s: must be a number, got %s", Truncate(k, 64), JSONKind(v))
	}
	return ""
}

func (f *Field) stringEntry(k string, v any) string {
	if problem := f.checkKey(k); problem != "" {
		return problem
	}
	s, ok := v.(string)
	if !ok {
		return fmt.Sprintf("%s: must be a string, got %s", Truncate(k, 64), JSONKind(v))
	}
	return f.checkMapString(k, s)
}

// checkMapString says what is wrong with the string value of entry k.
func (f *Field) checkMapString(k, s string) string {
	if !mapStringOK(f, s) {
		return fmt.Sprintf("%s: longer than %d bytes", Truncate(k, 64), f.MaxLength)
	}
	return ""
}

// mapStringOK reports whether checkMapString finds nothing wrong with the
// value s, without needing s as a string.
func mapStringOK[T string | []byte](f *Field, s T) bool {
	return f.MaxLength <= 0 || len(s) <= f.MaxLength
}

func (f *Field) checkMapSize(n int) string {
	if n == 0 && f.Required {
		return "must have at least one entry"
	}
	if f.MaxEntries > 0 && n > f.MaxEntries {
		return fmt.Sprintf("more than %d entries", f.MaxEntries)
	}
	return ""
}

func (f *Field) checkKey(k string) string {
	if k == "" {
		return "empty name"
	}
	if limit := f.keyLimit(); len(k) > limit {
		return fmt.Sprintf("name %q longer than %d bytes", Truncate(k, 32), limit)
	}
	return ""
}

// keyLimit bounds the names of a map's entries, in bytes: max_length, up
// to 256.
func (f *Field) keyLimit() int {
	if f.MaxLength <= 0 || f.MaxLength > 256 {
		return 256
	}
	return f.MaxLength
}

const notTime = "not RFC 3339 or epoch ms"

// parseTime accepts RFC 3339 (as a string) or Unix epoch milliseconds (as a
// number or a string of digits).
func parseTime(v any) (time.Time, string) {
	switch x := v.(type) {
	case string:
		return parseTimeString(x)
	case float64:
		return parseTimeNumber(x)
	}
	return time.Time{}, notTime
}

func parseTimeString(x string) (time.Time, string) {
	if t, ok := parseLayout(x); ok {
		return inRange(t)
	}
	// The check first spares RFC 3339 strings ParseInt's error, which
	// allocates twice.
	if looksInteger(x) {
		if ms, err := strconv.ParseInt(x, 10, 64); err == nil {
			return inRange(time.UnixMilli(ms))
		}
	}
	t, err := time.Parse(time.RFC3339Nano, x)
	if err != nil {
		return time.Time{}, notTime
	}
	return inRange(t)
}

// parseTimeBytes is parseTimeString of b, which it converts only when b is
// not in the layout Encode writes.
func parseTimeBytes(b []byte) (time.Time, string) {
	if t, ok := parseLayout(b); ok {
		return inRange(t)
	}
	return parseTimeString(string(b))
}

// parseLayout parses x if it is exactly in the layout Encode writes,
// "2006-01-02T15:04:05.000Z", to what time.Parse(time.RFC3339Nano, x)
// returns; it reports false for anything else, valid or not, for
// time.Parse to decide. The workers decode every event's two timestamps,
// and time.Parse was a tenth of their decoding.
func parseLayout[T string | []byte](x T) (time.Time, bool) {
	if len(x) != 24 || x[4] != '-' || x[7] != '-' || x[10] != 'T' || x[13] != ':' ||
		x[16] != ':' || x[19] != '.' || x[23] != 'Z' {
		return time.Time{}, false
	}
	century, ok1 := digits2(x, 0)
	year, ok2 := digits2(x, 2)
	month, ok3 := digits2(x, 5)
	day, ok4 := digits2(x, 8)
	hour, ok5 := digits2(x, 11)
	minute, ok6 := digits2(x, 14)
	sec, ok7 := digits2(x, 17)
	ms, ok8 := digits2(x, 20)
	msLast := int(x[22]) - '0'
	year += century * 100
	ms = ms*10 + msLast
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7 && ok8) || msLast < 0 || msLast > 9 ||
		month < 1 || month > 12 || day < 1 || day > daysIn(time.Month(month), year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	// What time.Date(..., time.UTC) returns, without its normalizing.
	secs := (daysSinceEpoch(year, month, day)*24+int64(hour))*3600 + int64(minute)*60 + int64(sec)
	return time.Unix(secs, int64(ms)*1e6).UTC(), true
}

// daysSinceEpoch counts the days from 1970-01-01 to a valid date of the
// proleptic Gregorian calendar (Howard Hinnant's days_from_civil).
func daysSinceEpoch(year, month, day int) int64 {
	y := int64(year)
	if month <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400                                    // [0, 399]
	doy := (153*int64((month+9)%12)+2)/5 + int64(day) - 1 // [0, 365]
	doe := yoe*365 + yoe/4 - yoe/100 + doy                // [0, 146096]
	return era*146097 + doe - 719468
}

// digits2 parses the two decimal digits of x at i.
func digits2[T string | []byte](x T, i int) (int, bool) {
	a, b := x[i]-'0', x[i+1]-'0'
	return int(a)*10 + int(b), a <= 9 && b <= 9
}

// daysIn is the number of days of month in year.
func daysIn(month time.Month, year int) int {
	if month == time.February {
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	}
	return 31 - int(month-1)%7%2
}

func parseTimeNumber(x float64) (time.Time, string) {
	if x != math.Trunc(x) {
		return time.Time{}, notTime
	}
	// Beyond 2^53 a float64 holds no exact count of milliseconds, and the
	// conversion to int64 could overflow; it is far outside the range anyway.
	if math.Abs(x) > 1<<53 {
		return time.Time{}, outOfRange
	}
	return inRange(time.UnixMilli(int64(x)))
}

// looksInteger reports whether strconv.ParseInt(x, 10, 64) could succeed.
func looksInteger(x string) bool {
	if x != "" && (x[0] == '-' || x[0] == '+') {
		x = x[1:]
	}
	if x == "" {
		return false
	}
	for i := 0; i < len(x); i++ {
		if x[i] < '0' || x[i] > '9' {
			return false
		}
	}
	return true
}

const outOfRange = "out of range (1970 to 2105)"

// inRange normalizes t to UTC milliseconds and checks it against the range
// ClickHouse can store.
func inRange(t time.Time) (time.Time, string) {
	t = t.UTC().Truncate(time.Millisecond)
	if t.Before(minTime) || t.After(maxTime) {
		return time.Time{}, outOfRange
	}
	return t, ""
}

// JSONKind names the kind of a value decoded from JSON into an empty
// interface ("string", "number", "object", ...), for error messages.
func JSONKind(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// Truncate shortens s to at most n bytes, without splitting a UTF-8
// sequence, marking the cut with "…": input quoted in an error message must
// not make the message as large as the input.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return Cut(s, n) + "…"
}

// Cut returns s cut to at most n bytes, without splitting a UTF-8
// sequence, and unmarked: for values that are stored or sent cut.
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// pow10 holds the powers of ten that a float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseFloat is strconv.ParseFloat(string(lit), 64) for a literal that
// JSON's grammar allows, reporting false where ParseFloat fails. Readings
// are short decimals ("21.5", "1013.25"): with at most 15 digits and no
// exponent, the digits make an integer that a float64 holds exactly, and
// one division by an exact power of ten rounds as ParseFloat does, at a
// fraction of its cost.
func parseFloat(lit []byte) (float64, bool) {
	var (
		m      uint64
		digits int
		frac   = -1 // digits after the point, once there is one
	)
	neg := len(lit) > 0 && lit[0] == '-'
	i := 0
	if neg {
		i = 1
	}
	for ; i < len(lit); i++ {
		switch c := lit[i]; {
		case '0' <= c && c <= '9':
			m = m*10 + uint64(c-'0')
			digits++
			if frac >= 0 {
				frac++
			}
		case c == '.':
			frac = 0
		default:
			digits = 16 // an exponent: leave it to ParseFloat
		}
		if digits > 15 {
			x, err := strconv.ParseFloat(string(lit), 64)
			return x, err == nil
		}
	}
	x := float64(m)
	if frac > 0 {
		x /= pow10[frac]
	}
	if neg {
		x = -x
	}
	return x, true
}
