package workers

import (
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

// put offers what a lane fetched from offset from. Only what extends the
// window is kept: a lane behind it read from Kafka what the window no
// longer holds, and keeping that would drop what the lanes ahead need.
func (s *fetchShare) put(from int64, msgs []Message) {
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
			clear(s.chunks)
			s.chunks, s.bytes = s.chunks[:0], 0
		}
	}
	s.chunks = append(s.chunks, sharedChunk{from: from, msgs: msgs, bytes: size})
	s.bytes += size
	for s.bytes > s.max {
		s.bytes -= s.chunks[0].bytes
		s.chunks[0] = sharedChunk{}
		s.chunks = s.chunks[1:]
	}
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
// hold next.
func (s *fetchShare) take(next int64, limit int) []Message {
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
		return c.msgs[j:min(len(c.msgs), j+limit):min(len(c.msgs), j+limit)]
	}
	return nil
}
