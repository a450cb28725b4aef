package schemas

import (
	"errors"
	"strings"
	"time"
)

// Event returns the valid event: the same Event that Validate returns for
// the decoded object, with ReceivedAt zero, or the zero Event for a value
// that is not a valid event. It is built on the first call and kept: a
// caller that keeps the Decoded past the next Next calls Event before it.
func (v *Decoded) Event() Event {
	if v.d == nil {
		return v.event
	}
	e := &v.d.ev
	set := 0
	for _, st := range e.state {
		if st == fieldSet {
			set++
		}
	}
	v.ID = strings.Clone(v.ID)
	ev := Event{ID: v.ID, Key: string(v.d.partitionKey()), Fields: make(map[string]any, set)}
	for i, st := range e.state {
		if st == fieldSet {
			f := &v.s.Fields[i]
			ev.Fields[f.Name] = e.value(f, i)
		}
	}
	v.event, v.d = ev, nil
	return ev
}

// Key returns the valid event's partition key.
func (v *Decoded) Key() string {
	if v.d == nil {
		return v.event.Key
	}
	return string(v.d.partitionKey())
}

// Encode returns the valid event with event_id id and received_at
// receivedAt, encoded as Stream.Encode encodes it. Until Event is called
// it writes the Decoder's values directly, without building the Event.
func (v *Decoded) Encode(id string, receivedAt time.Time) ([]byte, error) {
	_, val, err := v.EncodeKeyed(id, receivedAt)
	return val, err
}

// EncodeKeyed is Encode, and returns the event's partition key too, both
// in one allocation: a Kafka message's key and value.
func (v *Decoded) EncodeKeyed(id string, receivedAt time.Time) (key, value []byte, err error) {
	var buf [encodeStack]byte
	b, n, err := v.AppendKeyed(buf[:0], id, receivedAt)
	if err != nil {
		return nil, nil, err
	}
	out := append([]byte(nil), b...)
	return out[n:len(out):len(out)], out[:n:n], nil
}

// AppendKeyed appends the valid event, encoded as Encode encodes it, and
// then its partition key to b, and returns the extended buffer and the
// length of the encoded event: a caller that gathers many events' keys and
// values in one buffer allocates once for all of them. Until Event is
// called it writes the Decoder's values directly, and takes the key from
// the Decoder's memory, where interning it and then copying it into a
// message of its own was a twentieth of the collector's CPU at saturation.
// On an error b is returned as it was.
func (v *Decoded) AppendKeyed(b []byte, id string, receivedAt time.Time) ([]byte, int, error) {
	if v.s == nil {
		return b, 0, errors.New("encode: not a valid event")
	}
	start := len(b)
	if v.d != nil {
		if out, ok := v.d.appendEvent(b, id, receivedAt); ok {
			n := len(out) - start
			return append(out, v.d.partitionKey()...), n, nil
		}
	}
	ev := v.Event()
	ev.ID, ev.ReceivedAt = id, receivedAt
	return v.s.AppendKeyed(b, ev)
}

// appendEvent appends the JSON of the valid event just read, with id and
// receivedAt, as Stream.appendEvent appends the Event it would build.
func (d *Decoder) appendEvent(b []byte, id string, receivedAt time.Time) ([]byte, bool) {
	b = appendHead(b, id)
	for i, st := range d.ev.state {
		if st != fieldSet {
			continue
		}
		var ok bool
		if b, ok = d.appendSlot(b, i); !ok {
			return nil, false
		}
	}
	return appendTail(b, receivedAt), true
}
