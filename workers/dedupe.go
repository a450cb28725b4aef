package workers

import (
	"slices"
	"sync"
	"time"

	"github.com/sluicehq/sluice/eventkey"
)

// idHasher turns event_ids into the keys the dedupe windows hold. One hasher
// per process: the windows are rebuilt from the store after a restart, never
// carried over.
var idHasher = eventkey.NewHasher()

type windowEntry struct {
	key eventkey.Key
	at  int64 // received_at, unix ms
}

// dedupeWindow remembers the event_ids of one partition received within span
// of the newest one, each with the offset it was first seen at: an event is
// a duplicate when its id was first seen at a lower offset.
//
// Time in the window is receive time (received_at, stamped by the collector),
// not the time of processing. The window moves with a watermark, the newest
// received_at added, so a sink outage of any length does not age ids out:
// a producer's retry that waited out the outage in Kafka still finds its
// original. Memory is bounded by max ids; past it the oldest are forgotten
// early and counted in evictedYoung.
//
// Recording the first offset lets every lane of the partition (the store's
// and each output's) share one window whatever their positions: a lane that
// is behind sees an id added by one ahead with a higher offset than its own
// event, so it does not mistake the original for a duplicate.
//
// A dedupeWindow is safe for concurrent use by the lanes of its partition.
type dedupeWindow struct {
	span, max int64 // span in ms

	mu        sync.Mutex
	first     idTable // offset the id was first seen at
	queue     idQueue // the same ids, in insertion order
	watermark int64
	// evictedYoung counts ids dropped for room before span elapsed.
	evictedYoung int64
	// verdicts are the leading lane's answers, for the lanes behind it.
	verdicts leadVerdicts
	// warmed keeps the sum of what Warm read, so that the reads stay.
	warmed int64
	// moved is closed, and replaced, each time the leading lane has
	// recorded its answers for a batch: lanes behind wait on it.
	moved chan struct{}
}

// leadVerdicts records what the leading lane (the store's) made of each
// offset, so that a lane behind it skips the same events without deciding
// again: the duplicates Duplicate found, and the invalid events the store
// dead-letters. The window holds up to millions of ids, and each lookup
// was a cache miss or two: a tenth of the work role's CPU went to the two
// lanes' lookups of every event, half of it to the output's, which only
// repeats the store's answer; and an output that knows an event valid
// reads only its envelope (schemas.Stream.Envelope), where validating it
// again was another tenth. Answers by offset hold whatever the window has
// forgotten since, so an output publishes exactly the events the store
// kept.
//
// It holds the offsets from lo to hi (exclusive) that the leading lane
// went through, as a range and the few it skipped. An offset in the range
// that the leading lane never saw is no message at all, so no lane asks
// about it.
type leadVerdicts struct {
	lo, hi int64   // the range answered; empty when lo == hi
	skips  []int64 // the duplicates and invalid events in it, ascending
}

// maxVerdictSkips bounds leadVerdicts.skips (8 KiB): past it the range
// starts after its oldest, and lanes behind that decide for themselves.
const maxVerdictSkips = 1024

// record adds the leading lane's answer for off: skip for a duplicate or
// an invalid event. An offset it went through already (a batch retried)
// keeps the answer it got first.
func (v *leadVerdicts) record(off int64, skip bool) {
	switch {
	case v.lo == v.hi:
		v.lo = off
	case off < v.hi:
		return
	}
	v.hi = off + 1
	if !skip {
		return
	}
	v.skips = append(v.skips, off)
	if len(v.skips) > maxVerdictSkips {
		v.lo = v.skips[0] + 1
		v.skips = append(v.skips[:0], v.skips[1:]...)
	}
}

// lookup returns the leading lane's answer for off, if it has one.
func (v *leadVerdicts) lookup(off int64) (skip, known bool) {
	if off < v.lo || off >= v.hi {
		return false, false
	}
	_, skip = slices.BinarySearch(v.skips, off)
	return skip, true
}

// newDedupeWindow returns a window of span that remembers up to limit ids.
// Its queue grows to limit ids, and the one that add holds beyond it
// until it evicts.
func newDedupeWindow(span time.Duration, limit int) *dedupeWindow {
	limit = max(limit, 1)
	return &dedupeWindow{
		span: span.Milliseconds(), max: int64(limit),
		queue: newIDQueue(limit + 1),
		first: idTable{maxSlots: slotsFor(limit)},
		moved: make(chan struct{}),
	}
}

// Decided wakes the lanes waiting for the leading lane's answers: it has
// recorded them for a batch.
func (w *dedupeWindow) Decided() {
	w.mu.Lock()
	defer w.mu.Unlock()
	close(w.moved)
	w.moved = make(chan struct{})
}

// DecidedTo returns the offset after the last one the leading lane has
// answered for (0 before its first), and a channel closed once it has
// answered for more.
func (w *dedupeWindow) DecidedTo() (int64, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.verdicts.hi, w.moved
}

// Warm reads, ahead of the leading lane's decisions on a batch whose ids
// have keys, the parts of the table those decisions will read: each key's
// slots, and, when adding the batch fills the window, the slots of the
// oldest ids, which it evicts. keys is scratch space: Warm appends the
// evicted ids' keys to it and returns it.
//
// Why: the table is far larger than the caches, so each decision waits on
// a miss or two, a tenth of the work role's CPU at 20,000 events/s, and
// one at a time they wait one after another (idTable.touch).
func (w *dedupeWindow) Warm(keys []eventkey.Key) []eventkey.Key {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(keys)
	if over := w.first.n + n - int(w.max); over > 0 {
		keys = w.queue.keys(keys, min(over, n))
	}
	w.warmed += w.first.touch(keys)
	return keys
}

// Invalid records that the leading lane dead-letters the event at off.
func (w *dedupeWindow) Invalid(off int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.verdicts.record(off, true)
}

// LeadVerdict returns whether the leading lane skipped the event at off (a
// duplicate, or invalid), and known=false when it has not gone through off
// or no longer remembers.
func (w *dedupeWindow) LeadVerdict(off int64) (skip, known bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.verdicts.lookup(off)
}

// Duplicate reports whether the event with id at offset off is a
// duplicate, and otherwise remembers it as received at receivedAt. Only the
// store's lane leads (moves the watermark, and so ages ids out): an output
// that runs ahead while the store is down must not age out ids the store
// still needs when it catches up.
//
// A lane behind the leading one gets the answer the leading lane got for
// the same offset, without hashing id: see leadVerdicts.
func (w *dedupeWindow) Duplicate(id string, off int64, receivedAt time.Time, lead bool) bool {
	return w.decide(func() eventkey.Key { return idHasher.Sum(id) }, off, receivedAt, lead)
}

// DuplicateKey is Duplicate for an id whose key the caller has: the
// store's lane hashes each id as it decodes the event (Decoded.Key).
func (w *dedupeWindow) DuplicateKey(k eventkey.Key, off int64, receivedAt time.Time, lead bool) bool {
	return w.decide(func() eventkey.Key { return k }, off, receivedAt, lead)
}

// decide is Duplicate's answer, with the id's key made by key only when
// the leading lane's verdicts do not hold it.
func (w *dedupeWindow) decide(key func() eventkey.Key, off int64, receivedAt time.Time, lead bool) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !lead {
		if dup, known := w.verdicts.lookup(off); known {
			return dup
		}
	}
	dup := w.duplicate(key(), off, receivedAt, lead)
	if lead {
		w.verdicts.record(off, dup)
	}
	return dup
}

// duplicate is Duplicate's answer from the window itself.
func (w *dedupeWindow) duplicate(k eventkey.Key, off int64, receivedAt time.Time, lead bool) bool {
	if first, ok := w.first.get(k); ok {
		if first > off {
			// Seen first by a lane ahead of this one, at a later offset:
			// this is the original.
			w.first.set(k, off)
		}
		if lead {
			// An output ahead added it: the store's lane moves the
			// window on all the same, or ids would leave it only when
			// it is full. After the set above, so that an id the move
			// forgets leaves the table with its queue entry.
			w.advance(receivedAt.UnixMilli())
		}
		return first < off
	}
	w.add(k, off, receivedAt.UnixMilli(), lead)
	return false
}

// Remember adds an id known to be stored, at its offset (rebuilding the
// window from the store).
func (w *dedupeWindow) Remember(k eventkey.Key, off int64, receivedAt time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if first, ok := w.first.get(k); !ok || off < first {
		if !ok {
			w.add(k, off, receivedAt.UnixMilli(), true)
			return
		}
		w.first.set(k, off)
	}
}

// Len returns how many ids are remembered.
func (w *dedupeWindow) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.first.n
}

// takeEvicted returns and resets the count of ids forgotten early.
func (w *dedupeWindow) takeEvicted() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := w.evictedYoung
	w.evictedYoung = 0
	return n
}

func (w *dedupeWindow) add(k eventkey.Key, off, at int64, lead bool) {
	w.first.set(k, off)
	w.queue.push(windowEntry{k, at})
	if lead {
		w.advance(at)
	}
	for int64(w.first.n) > w.max {
		w.popOldest(true)
	}
}

// advance moves the watermark to at, if that is later, and forgets the ids
// received more than span before it. Ids past the span go before any is
// forgotten for room (add), so that only the ones still within it count
// as forgotten early.
func (w *dedupeWindow) advance(at int64) {
	w.watermark = max(w.watermark, at)
	limit := w.watermark - w.span
	// Entries are in insertion order, which is receive order up to the
	// skew between collectors; an entry behind a younger one waits for it.
	for w.queue.Len() > 0 && w.queue.oldest().at < limit {
		w.popOldest(false)
	}
}

func (w *dedupeWindow) popOldest(forRoom bool) {
	e := w.queue.pop()
	w.first.delete(e.key)
	if forRoom {
		w.evictedYoung++
	}
}
