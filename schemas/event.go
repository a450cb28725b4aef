package schemas

import (
	"encoding/json"
	"errors"
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
// precision), map(number) as map[string]float64, map(string) as
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
	Field   string
	Problem string
}

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

func (s *Stream) validate(obj map[string]any, envelope bool) (Event, []FieldError) {
	var errs []FieldError
	bad := func(field, problem string) { errs = append(errs, FieldError{field, problem}) }
	ev := Event{Fields: make(map[string]any, len(s.Fields))}

	if v, ok := obj[FieldEventID]; ok && v != nil {
		switch id, isStr := v.(string); {
		case !isStr:
			bad(FieldEventID, "must be a string")
		case id == "":
			bad(FieldEventID, "must not be empty")
		case len(id) > MaxEventIDLength:
			bad(FieldEventID, fmt.Sprintf("longer than %d bytes", MaxEventIDLength))
		default:
			ev.ID = id
		}
	} else if envelope {
		bad(FieldEventID, "required")
	}

	for i := range s.Fields {
		f := &s.Fields[i]
		v, ok := obj[f.Name]
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

	var unknown []string
	for k := range obj {
		if k != FieldEventID && k != FieldReceivedAt && s.byName[k] == nil {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		bad(k, "unknown field")
	}

	if len(errs) > 0 {
		return Event{}, errs
	}
	ev.Key = ev.Fields[s.PartitionKey].(string)
	return ev, nil
}

// normalize checks one present, non-null value and returns its normal form,
// or a problem.
func (f *Field) normalize(v any) (any, string) {
	switch f.Type {
	case TypeString:
		s, ok := v.(string)
		if !ok {
			return nil, "must be a string, got " + jsonKind(v)
		}
		if s == "" && f.Required {
			return nil, "must not be empty"
		}
		if f.MaxLength > 0 && len(s) > f.MaxLength {
			return nil, fmt.Sprintf("longer than %d bytes", f.MaxLength)
		}
		return s, ""
	case TypeEnum:
		s, ok := v.(string)
		if !ok {
			return nil, "must be a string, got " + jsonKind(v)
		}
		if !slices.Contains(f.Values, s) {
			return nil, fmt.Sprintf("%q is not one of %s", truncate(s, 32), strings.Join(f.Values, ", "))
		}
		return s, ""
	case TypeTimestamp:
		t, problem := parseTime(v)
		if problem != "" {
			return nil, problem
		}
		return t, ""
	case TypeNumberMap:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, "must be an object of name -> number, got " + jsonKind(v)
		}
		if problem := f.checkMapSize(len(m)); problem != "" {
			return nil, problem
		}
		out := make(map[string]float64, len(m))
		for _, k := range sortedKeys(m) {
			if problem := f.checkKey(k); problem != "" {
				return nil, problem
			}
			n, ok := m[k].(float64)
			if !ok {
				return nil, fmt.Sprintf("%s: must be a number, got %s", truncate(k, 64), jsonKind(m[k]))
			}
			out[k] = n
		}
		return out, ""
	case TypeStringMap:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, "must be an object of name -> string, got " + jsonKind(v)
		}
		if problem := f.checkMapSize(len(m)); problem != "" {
			return nil, problem
		}
		out := make(map[string]string, len(m))
		for _, k := range sortedKeys(m) {
			if problem := f.checkKey(k); problem != "" {
				return nil, problem
			}
			s, ok := m[k].(string)
			if !ok {
				return nil, fmt.Sprintf("%s: must be a string, got %s", truncate(k, 64), jsonKind(m[k]))
			}
			if f.MaxLength > 0 && len(s) > f.MaxLength {
				return nil, fmt.Sprintf("%s: longer than %d bytes", truncate(k, 64), f.MaxLength)
			}
			out[k] = s
		}
		return out, ""
	}
	return nil, "unsupported field type " + string(f.Type)
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
	limit := f.MaxLength
	if limit <= 0 || limit > 256 {
		limit = 256
	}
	if len(k) > limit {
		return fmt.Sprintf("name %q longer than %d bytes", truncate(k, 32), limit)
	}
	return ""
}

// parseTime accepts RFC 3339 (as a string) or Unix epoch milliseconds (as a
// number or a string of digits).
func parseTime(v any) (time.Time, string) {
	const notTime = "not RFC 3339 or epoch ms"
	var t time.Time
	switch x := v.(type) {
	case string:
		if ms, err := strconv.ParseInt(x, 10, 64); err == nil {
			t = time.UnixMilli(ms)
			break
		}
		var err error
		if t, err = time.Parse(time.RFC3339Nano, x); err != nil {
			return time.Time{}, notTime
		}
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			return time.Time{}, notTime
		}
		t = time.UnixMilli(int64(x))
	default:
		return time.Time{}, notTime
	}
	t = t.UTC().Truncate(time.Millisecond)
	if t.Before(minTime) || t.After(maxTime) {
		return time.Time{}, "out of range (1970 to 2105)"
	}
	return t, ""
}

// Encode renders an event as Sluice writes it to Kafka and publishes it to
// NATS: one JSON object with the stream's fields at the top level, event_id,
// and received_at.
func (s *Stream) Encode(ev Event) ([]byte, error) {
	obj := make(map[string]any, len(ev.Fields)+2)
	for k, v := range ev.Fields {
		if t, ok := v.(time.Time); ok {
			v = t.UTC().Format(TimeLayout)
		}
		obj[k] = v
	}
	obj[FieldEventID] = ev.ID
	obj[FieldReceivedAt] = ev.ReceivedAt.UTC().Format(TimeLayout)
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode %s event %s: %w", s.Name, ev.ID, err)
	}
	return b, nil
}

// Decode parses and re-validates an event as Encode wrote it. Anything that
// fails here did not come from Sluice's collectors, or the schema changed
// incompatibly since.
func (s *Stream) Decode(b []byte) (Event, error) {
	var obj map[string]any
	if err := json.Unmarshal(b, &obj); err != nil {
		return Event{}, fmt.Errorf("not a JSON object: %w", err)
	}
	ev, errs := s.validate(obj, true)
	if len(errs) > 0 {
		all := make([]error, len(errs))
		for i, e := range errs {
			all[i] = e
		}
		return Event{}, errors.Join(all...)
	}
	return ev, nil
}

func jsonKind(v any) string {
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

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
