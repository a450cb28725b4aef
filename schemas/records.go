package schemas

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"time"
)

// Why Records. The store's lane decoded every event into an Event: a map
// of its fields, each value boxed in an interface, a map for each map
// field. The ClickHouse sink then looked each value up again by name to
// build its columns, and sorted each map's names. That was a third of the
// work role's CPU and most of its heap, since a batch holds its events for
// the batch linger. Records keeps the values of a batch's events typed, in
// one slice of slots by field index, with the names and values of map
// fields in slices shared by the batch, sorted by name as Encode writes
// them: a column is a loop over slots, and a Nested column's rows are cut
// from those slices.

// Records holds the fields of decoded events of one stream for a store
// that writes them column by column. One Records holds one batch; its
// events live as long as it does. It is not safe for concurrent use.
type Records struct {
	st    *Stream
	vals  []recValue // len(st.Fields) per event
	names []string   // map names, sorted within each map
	nums  []float64  // map(number) values, by names
	strs  []string   // map(string) values, by names
}

// recValue is one field of one event: set says whether the event has it;
// then s holds a string or enum, b a boolean, n a number's bits or a
// timestamp's Unix seconds (with its nanoseconds in from), and from-to the
// range of a map's entries in names. It is 40 bytes, where fields of their
// own for each type took 72: a batch's Records holds one per field per
// event, and allocating them was a tenth of what a worker allocated.
type recValue struct {
	s        string
	n        int64
	from, to int32
	set, b   bool
}

func (v *recValue) num() float64        { return math.Float64frombits(uint64(v.n)) }
func (v *recValue) setNum(x float64)    { v.n = int64(math.Float64bits(x)) }
func (v *recValue) time() time.Time     { return time.Unix(v.n, int64(v.from)).UTC() }
func (v *recValue) setTime(t time.Time) { v.n, v.from = t.Unix(), int32(t.Nanosecond()) }

// setRange sets the range of a map's entries in names.
func (v *recValue) setRange(from, to int) { v.from, v.to = int32(from), int32(to) }

// Record is one event of a Records. The zero Record holds no event.
type Record struct {
	rs *Records
	at int // the index of its first value in rs.vals
}

// NewRecords returns a Records for events of st, with room for n, and for
// as many map entries as the stream's last Records held per event: their
// slices grew from nothing in every batch, a tenth of decoding.
//
// It reuses the slices of a Records released earlier (Release), so that
// the store's lane does not allocate and zero a batch's worth of them
// for every batch: they were a seventh of the bytes the work role
// allocated at saturation, each batch's one large allocation.
func NewRecords(st *Stream, n int) *Records {
	entries := 8
	if st.stats != nil {
		entries += int(st.stats.entriesPerEvent.Load() * int64(n) / 1000)
	}
	rs, _ := recordsPool.Get().(*Records)
	if rs == nil {
		rs = new(Records)
	}
	rs.reuse(st, n*len(st.Fields), entries)
	return rs
}

// reuse readies an empty, zeroed rs for events of st: room for vals
// values and entries map entries.
func (rs *Records) reuse(st *Stream, vals, entries int) {
	rs.st = st
	rs.vals = slices.Grow(rs.vals, vals)
	rs.names = slices.Grow(rs.names, entries)
	rs.nums = slices.Grow(rs.nums, entries)
	rs.strs = slices.Grow(rs.strs, entries)
}

// recordsPool holds released Records, empty and zeroed, for NewRecords.
var recordsPool sync.Pool

// Release gives rs's memory back for a later NewRecords. Neither rs nor a
// Record of it may be used afterwards: its slots will hold another
// batch's events. Releasing is optional; a Records never released is
// collected as any other value.
func (rs *Records) Release() {
	// Zero what was used: open takes the room past len(vals) as zero
	// values, and the strings must not keep the batch's messages alive.
	clear(rs.vals)
	clear(rs.names)
	clear(rs.strs)
	rs.st, rs.vals, rs.names, rs.nums, rs.strs = nil, rs.vals[:0], rs.names[:0], rs.nums[:0], rs.strs[:0]
	recordsPool.Put(rs)
}

// Done records, for the next NewRecords of the stream, how many map
// entries rs's events held on average. A Records works without it.
func (rs *Records) Done() {
	if events := len(rs.vals) / max(len(rs.st.Fields), 1); events > 0 && rs.st.stats != nil {
		rs.st.stats.entriesPerEvent.Store(int64(len(rs.names) * 1000 / events))
	}
}

// Valid reports whether r holds an event.
func (r Record) Valid() bool { return r.rs != nil }

func (r Record) value(i int) *recValue { return &r.rs.vals[r.at+i] }

// Str returns string or enum field i (the index in Stream.Fields), and
// whether the event has it.
func (r Record) Str(i int) (string, bool) { v := r.value(i); return v.s, v.set }

// Num returns number field i, and whether the event has it.
func (r Record) Num(i int) (float64, bool) { v := r.value(i); return v.num(), v.set }

// Bool returns boolean field i, and whether the event has it.
func (r Record) Bool(i int) (bool, bool) { v := r.value(i); return v.b, v.set }

// Time returns timestamp field i, and whether the event has it.
func (r Record) Time(i int) (time.Time, bool) {
	v := r.value(i)
	if !v.set {
		return time.Time{}, false
	}
	return v.time(), true
}

// NumberMap returns the names, sorted, and values of map(number) field i;
// both are empty when the event lacks it. They belong to the Records.
func (r Record) NumberMap(i int) ([]string, []float64) {
	v := r.value(i)
	return r.rs.names[v.from:v.to:v.to], r.rs.nums[v.from:v.to:v.to]
}

// StringMap returns the names, sorted, and values of map(string) field i;
// both are empty when the event lacks it. They belong to the Records.
func (r Record) StringMap(i int) ([]string, []string) {
	v := r.value(i)
	return r.rs.names[v.from:v.to:v.to], r.rs.strs[v.from:v.to:v.to]
}

// Decode is Stream.Decode, with the event's fields added to rs rather than
// built as Go values: it accepts and refuses what Decode does, with the
// same errors, and returns the Event's envelope (ID, Key, ReceivedAt;
// Fields nil) and its Record.
//
// Strings of the envelope and the Record may point into b rather than be
// copied: b must not change while they are in use (a worker's batch
// holds the Kafka messages it decodes, and nothing writes to them).
func (rs *Records) Decode(b []byte) (Event, Record, error) {
	mark := rs.mark()
	if ev, rec, ok := rs.st.decodeRecord(b, rs); ok {
		return ev, rec, nil
	}
	rs.reset(mark)
	ev, err := rs.st.decodeGeneric(b)
	if err != nil {
		return Event{}, Record{}, err
	}
	rec, err := rs.Add(ev)
	ev.Fields = nil
	return ev, rec, err
}

// Add adds the fields of ev, an event of rs's stream with its values as
// Validate gives them. A value of another Go type than its field's is an
// error that names the field; fields the stream does not define are
// ignored.
func (rs *Records) Add(ev Event) (Record, error) {
	mark := rs.mark()
	rec := rs.open()
	for i := range rs.st.Fields {
		f := &rs.st.Fields[i]
		v, ok := ev.Fields[f.Name]
		if !ok {
			continue
		}
		if !rs.addValue(f, rec.value(i), v) {
			rs.reset(mark)
			return Record{}, &FieldTypeError{Field: f.Name, Type: f.Type, Value: v}
		}
	}
	return rec, nil
}

// FieldTypeError is a field value of another Go type than Validate gives
// its field.
type FieldTypeError struct {
	Field string
	Type  FieldType
	Value any
}

func (e *FieldTypeError) Error() string {
	return fmt.Sprintf("field %s: %T for a %s", e.Field, e.Value, e.Type)
}

// addValue sets rv to v, the value of field f, reporting false for a value
// of another type than Validate gives f.
func (rs *Records) addValue(f *Field, rv *recValue, v any) bool {
	ok := false
	switch f.Type {
	case TypeString, TypeEnum:
		rv.s, ok = v.(string)
	case TypeNumber:
		var x float64
		x, ok = v.(float64)
		rv.setNum(x)
	case TypeBoolean:
		rv.b, ok = v.(bool)
	case TypeTimestamp:
		var t time.Time
		t, ok = v.(time.Time)
		rv.setTime(t)
	case TypeNumberMap:
		var m map[string]float64
		if m, ok = v.(map[string]float64); ok {
			rv.setRange(addMap(rs, m, func(k string, x float64) { rs.addEntry(k, x, "") }))
		}
	case TypeStringMap:
		var m map[string]string
		if m, ok = v.(map[string]string); ok {
			rv.setRange(addMap(rs, m, func(k, s string) { rs.addEntry(k, 0, s) }))
		}
	}
	rv.set = ok
	return ok
}

// addMap adds the entries of m to rs with add, sorted by name, and returns
// where they are in rs.names.
func addMap[V any](rs *Records, m map[string]V, add func(k string, v V)) (from, to int) {
	from = len(rs.names)
	for _, k := range sortedKeys(m) {
		add(k, m[k])
	}
	return from, len(rs.names)
}

// recMark is how far a Records was filled, to go back to.
type recMark struct{ vals, names int }

func (rs *Records) mark() recMark { return recMark{len(rs.vals), len(rs.names)} }

// reset goes back to m. What it drops is zeroed, so that open can take
// the room past len(vals) as zero values.
func (rs *Records) reset(m recMark) {
	clear(rs.vals[m.vals:])
	rs.vals = rs.vals[:m.vals]
	rs.names, rs.nums, rs.strs = rs.names[:m.names], rs.nums[:m.names], rs.strs[:m.names]
}

// open adds an event with no field set.
func (rs *Records) open() Record {
	at := len(rs.vals)
	// Past len(vals) it is all zero: fresh from make or Grow, or cleared
	// by reset.
	rs.vals = slices.Grow(rs.vals, len(rs.st.Fields))[:at+len(rs.st.Fields)]
	return Record{rs, at}
}

// addEntry adds a map entry with name k: the value goes in x or s, and the
// other slice gets a zero so that both stay aligned with names.
func (rs *Records) addEntry(k string, x float64, s string) {
	rs.names, rs.nums, rs.strs = append(rs.names, k), append(rs.nums, x), append(rs.strs, s)
}
