package workers

import (
	"slices"
	"sync"
	"unsafe"
)

// fetchShare keeps the messages the lanes of one partition fetched last,
// so that a lane behind another takes them from memory instead of asking
// Kafka for them again.
//
// Why: every sink reads every partition on a lane of its own, so that one
// sink that is down or slow holds back no other. Each lane read the same
// messages off Kafka, and reading them (kafka-go decodes a message at a
// time, with two allocations each) was a sixth of the work role's CPU at
// saturation, half of it repeated. The lanes of a partition are seldom
// far apart (a few hundred messages, as the store's INSERTs and the
// output's publishing take turns), so a small window of the newest
// messages serves most reads of the lane behind.
//
// It holds chunks, each the messages one fetch returned from the offset it
// asked for, that follow each other without a hole: a chunk that does not
// start where the last one ended (a lane that is far behind, or a seek)
// replaces them all. It holds at most max bytes (values, keys and
// Message structs), dropping the oldest chunks first. Lanes share the
// Messages read-only.
//
// It also keeps lanes from asking Kafka for the same offset at once. Lanes
// that have caught up wait at the end of the log together, each in a fetch
// of its own that the broker answers with the same messages: that was why
// seven reads in ten still went to Kafka with two lanes a partition. A
// lane about to fetch from the offset another lane's fetch is already
// asking for waits for that fetch instead, and takes its answer from the
// window (begin and end).
//
// A fetchShare is safe for concurrent use by the lanes of its partition.
type fetchShare struct {
	max int64

	mu     sync.Mutex
	chunks []sharedChunk
	bytes  int64
	// inflight is the fetches from Kafka running now, by the offset each
	// asked for, each with a channel closed when it has ended.
	inflight map[int64]chan struct{}
	// held is the first offsets of the batches the store's lane holds
	// (being cut, or in flight), oldest first, and reached the offset
	// after the last message it has read: see hold.
	held    []int64
	reached int64
}

// DefaultFetchShareBytes is Config.FetchShareBytes's default: about a
// thousand events of a few hundred bytes.
const DefaultFetchShareBytes = 512 << 10

// sharedChunk is the answer of one fetch: msgs, the messages from offset
// from on (the first may come later: Kafka holds nothing in between).
type sharedChunk struct {
	from  int64
	msgs  []Message
	bytes int64
	// lead is set when the store's lane put the chunk or took messages
	// from it: its batches then point to the same keys and values.
	lead bool
}

// messageOverhead is what a fetched Message weighs besides its key and
// value.
const messageOverhead = int64(unsafe.Sizeof(Message{}))

// newFetchShare returns a fetchShare of at most max bytes, or nil (which
// shares nothing) when max is not positive.
func newFetchShare(max int64) *fetchShare {
	if max <= 0 {
		return nil
	}
	return &fetchShare{max: max}
}

// put offers what a lane fetched from offset from; lead says the lane is
// the store's. Only what extends the window is kept: a lane behind it read
// from Kafka what the window no longer holds, and keeping that would drop
// what the lanes ahead need.
func (s *fetchShare) put(from int64, msgs []Message, lead bool) {
	if s == nil || len(msgs) == 0 {
		return
	}
	size := weigh(msgs)
	if size > s.max {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.chunks); n > 0 {
		end := s.chunks[n-1].end()
		if msgs[len(msgs)-1].Offset < end {
			return // nothing after the window
		}
		if from < end && from >= s.chunks[0].from {
			// Two lanes fetched at once: keep only what is new.
			i := 0
			for msgs[i].Offset < end {
				i++
			}
			size -= weigh(msgs[:i])
			from, msgs = end, msgs[i:]
		}
		if from != end {
			if s.keepsAny() {
				// What the store's lane holds stays: a lane that read
				// elsewhere reads on its own.
				return
			}
			clear(s.chunks)
			s.chunks, s.bytes = s.chunks[:0], 0
		}
	}
	s.chunks = append(s.chunks, sharedChunk{from: from, msgs: msgs, bytes: size, lead: lead})
	s.bytes += size
	s.evict()
}

// evict drops chunks while what the window costs is more than max:
// first the oldest, then, if that is not enough (an output's lane ahead
// of the store's), the newest, and the chunks the store's lane holds
// messages of (see hold) last, oldest first.
//
// A chunk the store's lane holds messages of costs its Message structs
// only: the lane's batches keep its keys and values in memory anyway.
func (s *fetchShare) evict() {
	cost := int64(0)
	for i := range s.chunks {
		cost += s.cost(&s.chunks[i])
	}
	for len(s.chunks) > 0 && cost > s.max && !s.keeps(&s.chunks[0]) {
		cost -= s.chunks[0].bytes
		s.dropOldest()
	}
	for n := len(s.chunks); n > 0 && cost > s.max && !s.keeps(&s.chunks[n-1]); n-- {
		cost -= s.chunks[n-1].bytes
		s.dropNewest()
	}
	for len(s.chunks) > 0 && cost > s.max {
		cost -= s.cost(&s.chunks[0])
		s.dropOldest()
	}
}

// keeps reports whether the store's lane holds messages of c in a batch,
// with c's own keys and values.
func (s *fetchShare) keeps(c *sharedChunk) bool {
	return c.lead && len(s.held) > 0 && c.end() > s.held[0] && c.from < s.reached
}

// cost is what c adds to memory: its Message structs while the store's
// lane holds its messages, all of it otherwise.
func (s *fetchShare) cost(c *sharedChunk) int64 {
	if s.keeps(c) {
		return int64(len(c.msgs)) * messageOverhead
	}
	return c.bytes
}

// keepsAny reports whether any chunk holds messages of a batch the
// store's lane holds.
func (s *fetchShare) keepsAny() bool {
	return slices.ContainsFunc(s.chunks, func(c sharedChunk) bool { return s.keeps(&c) })
}

func (s *fetchShare) dropOldest() {
	s.bytes -= s.chunks[0].bytes
	s.chunks[0] = sharedChunk{}
	s.chunks = s.chunks[1:]
}

func (s *fetchShare) dropNewest() {
	n := len(s.chunks) - 1
	s.bytes -= s.chunks[n].bytes
	s.chunks[n] = sharedChunk{}
	s.chunks = s.chunks[:n]
}

// hold records that the store's lane holds, from offset first on, a batch
// it is cutting or has in flight, until release(first): while it does,
// the chunks it read that hold the batch's messages cost the window only
// their Message structs (88 B a message), so that it keeps more of them.
//
// Why: the output's lane follows the store's, waiting for its verdicts on
// each batch before it publishes (awaitLead), so it reads what the store's
// lane read about one batch before. At saturation a batch is larger than
// the window, and the output's lane read Kafka again for four messages in
// five. The store's lane keeps those messages' keys and values in memory
// until its INSERT returns anyway: keeping the chunks that point to them
// costs the window their Message structs only.
func (s *fetchShare) hold(first int64) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held = append(s.held, first)
}

// reach records that the store's lane has read up to offset next.
func (s *fetchShare) reach(next int64) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reached = next
}

// release ends a hold of the store's lane (the oldest, as batches end in
// order) and drops what the window no longer needs to keep.
func (s *fetchShare) release(first int64) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.Index(s.held, first); i >= 0 {
		s.held = slices.Delete(s.held, i, i+1)
	}
	s.evict()
}

// begin records a lane's fetch from Kafka at offset from, unless another
// lane's is asking for the same offset: then it returns that fetch's
// channel, closed once it has ended, and the lane waits for it and looks in
// the window again. Otherwise it returns nil, and the lane calls end(from)
// once its fetch has returned and its answer has been put.
func (s *fetchShare) begin(from int64) (wait <-chan struct{}) {
	if s == nil || from < 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch, ok := s.inflight[from]; ok {
		return ch
	}
	if s.inflight == nil {
		s.inflight = make(map[int64]chan struct{})
	}
	s.inflight[from] = make(chan struct{})
	return nil
}

// end records that the fetch begun at from has ended, with its answer, if
// any, in the window: lanes waiting for it look there again.
func (s *fetchShare) end(from int64) {
	if s == nil || from < 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch, ok := s.inflight[from]; ok {
		close(ch)
		delete(s.inflight, from)
	}
}

// weigh is what msgs hold in memory.
func weigh(msgs []Message) int64 {
	var n int64
	for i := range msgs {
		n += int64(len(msgs[i].Key)+len(msgs[i].Value)) + messageOverhead
	}
	return n
}

// end is the offset after the chunk's last message.
func (c *sharedChunk) end() int64 { return c.msgs[len(c.msgs)-1].Offset + 1 }

// take returns the messages from offset next on, at most limit, as a fetch
// from next would have returned them, or nil when the window does not
// hold next; lead says the lane taking them is the store's.
func (s *fetchShare) take(next int64, limit int, lead bool) []Message {
	if s == nil || next < 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.chunks {
		c := &s.chunks[i]
		if next < c.from || next >= c.end() {
			continue
		}
		j := 0
		for j < len(c.msgs) && c.msgs[j].Offset < next {
			j++
		}
		c.lead = c.lead || lead
		return c.msgs[j:min(len(c.msgs), j+limit):min(len(c.msgs), j+limit)]
	}
	return nil
}
