package workers

import (
	"sync"
	"time"
	"unsafe"

	"github.com/sluicehq/sluice/schemas"
)

// leadEnvelopes keeps where the store's lane found the envelope (event_id,
// partition key, received_at) of each event of its last two batches, so
// that an output's lane that follows it (awaitLead) builds the envelope of
// an event the store kept without reading the event again.
//
// Why: an output needs only the envelope, to name the subject and the
// message, and reading it (schemas.Stream.Envelope) still meant scanning
// the whole event for the partition key and received_at: 8% of the work
// role's CPU at saturation once the output followed the store. The store
// has decoded every event already.
//
// What it keeps are byte ranges in the message's value, which is the same
// for every lane that reads the offset from Kafka, so an output's Event
// points into its own message, as one read by Envelope does. About 32
// bytes an event, for at most two batches of a partition.
//
// A leadEnvelopes is safe for concurrent use; the zero value is empty.
type leadEnvelopes struct {
	mu     sync.Mutex
	chunks [2]envelopeChunk // the newest last
}

// envelopeChunk is the envelopes of one batch of the store's lane: envs[i]
// is offset first+i's.
type envelopeChunk struct {
	first int64
	envs  []envelopeAt
}

// envelopeAt is where one event's envelope is in its message's value:
// event_id at id, the partition key at key. size is the value's length,
// to check that a lane reads the same message; 0 means none known (the
// store skipped the event, or a string was unescaped into a copy).
type envelopeAt struct {
	sec                          int64 // received_at
	nsec                         int32
	idFrom, idTo, keyFrom, keyTo uint32
	size                         uint32
}

// envelopeOf returns where ev's ID and Key are in value, or the zero
// envelopeAt when either is not a view of value.
func envelopeOf(ev schemas.Event, value []byte) envelopeAt {
	idFrom, idTo, ok := viewIn(ev.ID, value)
	if !ok {
		return envelopeAt{}
	}
	keyFrom, keyTo, ok := viewIn(ev.Key, value)
	if !ok {
		return envelopeAt{}
	}
	return envelopeAt{sec: ev.ReceivedAt.Unix(), nsec: int32(ev.ReceivedAt.Nanosecond()),
		idFrom: idFrom, idTo: idTo, keyFrom: keyFrom, keyTo: keyTo, size: uint32(len(value))}
}

// viewIn returns the byte range of value that s is, if s points into it.
func viewIn(s string, value []byte) (from, to uint32, ok bool) {
	if len(s) == 0 || len(value) == 0 || len(value) > 1<<31 {
		return 0, 0, false
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(value)))
	at := uintptr(unsafe.Pointer(unsafe.StringData(s)))
	if at < start || at+uintptr(len(s)) > start+uintptr(len(value)) {
		return 0, 0, false
	}
	return uint32(at - start), uint32(at-start) + uint32(len(s)), true
}

// event returns the envelope as an Event whose ID and Key point into value,
// and false when e knows no envelope for value.
func (e envelopeAt) event(value []byte) (schemas.Event, bool) {
	if e.size == 0 || int(e.size) != len(value) {
		return schemas.Event{}, false
	}
	return schemas.Event{
		ID:         unsafe.String(&value[e.idFrom], int(e.idTo-e.idFrom)),
		Key:        unsafe.String(&value[e.keyFrom], int(e.keyTo-e.keyFrom)),
		ReceivedAt: time.Unix(e.sec, int64(e.nsec)).UTC(),
	}, true
}

// put keeps the envelopes of the store's batch from offset first on, and
// drops the oldest batch's.
func (l *leadEnvelopes) put(first int64, envs []envelopeAt) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.chunks[0] = l.chunks[1]
	l.chunks[1] = envelopeChunk{first: first, envs: envs}
}

// chunk returns the kept batch that holds off, or an empty chunk.
func (l *leadEnvelopes) chunk(off int64) envelopeChunk {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.chunks {
		if c.holds(off) {
			return c
		}
	}
	return envelopeChunk{}
}

func (c envelopeChunk) holds(off int64) bool {
	return off >= c.first && off-c.first < int64(len(c.envs))
}

// at returns the envelope of off, or the zero envelopeAt.
func (c envelopeChunk) at(off int64) envelopeAt {
	if !c.holds(off) {
		return envelopeAt{}
	}
	return c.envs[off-c.first]
}
