package ingest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// topicPartition names one partition of one topic.
type topicPartition struct {
	topic     string
	partition int32
}

// produceBatch is the messages gathered for one round of produce requests,
// by partition. The accumulator fills it under its lock; once sealed, the
// sender owns it, sets failed and closes done. It points into the callers'
// messages, which Produce keeps until done.
type produceBatch struct {
	parts map[topicPartition][]*Message
	// order is the partitions in the order they were first added, so that
	// requests are built the same way every time.
	order []topicPartition
	msgs  int
	bytes int64
	done  chan struct{}
	// failed holds the error of each partition that was not acknowledged;
	// read only after done is closed.
	failed map[topicPartition]error
}

func newProduceBatch(partitions int) *produceBatch {
	return &produceBatch{parts: make(map[topicPartition][]*Message, partitions), done: make(chan struct{})}
}

func (b *produceBatch) add(tp topicPartition, m *Message, size int64) {
	ms, ok := b.parts[tp]
	if !ok {
		b.order = append(b.order, tp)
	}
	b.parts[tp] = append(ms, m)
	b.msgs++
	b.bytes += size
}

// failure returns the error of the first of parts that was not
// acknowledged, or nil.
func (b *produceBatch) failure(parts []topicPartition) error {
	for _, tp := range parts {
		if err := b.failed[tp]; err != nil {
			return fmt.Errorf("%s partition %d: %w", tp.topic, tp.partition, err)
		}
	}
	return nil
}

// batchWait is what one Produce call waits for: a batch, and the
// partitions of it that hold the call's messages.
type batchWait struct {
	batch *produceBatch
	parts []topicPartition
}

// messageSize is what a message weighs against a request's BatchBytes.
func messageSize(m *Message) int64 {
	n := len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return int64(n)
}

// accumulator gathers the messages of concurrent Produce calls into
// batches and hands each sealed batch to send, one batch at a time, from
// a goroutine of its own that close stops. A batch is sealed when it is
// full (maxMsgs or maxBytes) or linger after it was opened.
type accumulator struct {
	linger   time.Duration
	maxMsgs  int
	maxBytes int64
	send     func(*produceBatch)

	mu     sync.Mutex
	open   *produceBatch
	timer  *time.Timer
	sealed []*produceBatch
	closed bool
	// lastParts is how many partitions the last batch sealed had: the
	// next is sized for as many.
	lastParts int

	// wake tells the sender that a batch was sealed; stopped is closed
	// when it has sent the last one after close.
	wake    chan struct{}
	stopped chan struct{}
}

func newAccumulator(linger time.Duration, maxMsgs int, maxBytes int64, send func(*produceBatch)) *accumulator {
	a := &accumulator{linger: linger, maxMsgs: maxMsgs, maxBytes: maxBytes, send: send,
		wake: make(chan struct{}, 1), stopped: make(chan struct{})}
	go a.run()
	return a
}

var errProducerClosed = errors.New("producer closed")

// add gathers msgs, the ith for partition parts[i], and returns what the
// caller waits for: usually one batch, more when msgs fill one.
func (a *accumulator) add(msgs []Message, parts []int32) ([]batchWait, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, errProducerClosed
	}
	var waits []batchWait
	for i := range msgs {
		m := &msgs[i]
		size := messageSize(m)
		if b := a.open; b != nil && b.bytes+size > a.maxBytes {
			a.seal()
		}
		if a.open == nil {
			b := newProduceBatch(a.lastParts)
			a.open = b
			a.timer = time.AfterFunc(a.linger, func() { a.sealIfOpen(b) })
		}
		b, tp := a.open, topicPartition{m.Topic, parts[i]}
		b.add(tp, m, size)
		if len(waits) == 0 || waits[len(waits)-1].batch != b {
			waits = append(waits, batchWait{batch: b})
		}
		if w := &waits[len(waits)-1]; !slices.Contains(w.parts, tp) {
			w.parts = append(w.parts, tp)
		}
		if b.msgs >= a.maxMsgs || b.bytes >= a.maxBytes {
			a.seal()
		}
	}
	return waits, nil
}

// sealIfOpen seals b when its linger ends, unless it was sealed already.
func (a *accumulator) sealIfOpen(b *produceBatch) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.open == b {
		a.seal()
	}
}

// seal hands the open batch to the sender. Called with a.mu held.
func (a *accumulator) seal() {
	a.timer.Stop()
	a.lastParts = len(a.open.order)
	a.sealed = append(a.sealed, a.open)
	a.open = nil
	select {
	case a.wake <- struct{}{}:
	default: // the sender has a wake-up pending already
	}
}

// run sends sealed batches in order until close.
func (a *accumulator) run() {
	defer close(a.stopped)
	for range a.wake {
		for {
			a.mu.Lock()
			if len(a.sealed) == 0 {
				closed := a.closed
				a.mu.Unlock()
				if closed {
					return
				}
				break
			}
			b := a.sealed[0]
			a.sealed[0] = nil
			a.sealed = a.sealed[1:]
			a.mu.Unlock()
			a.send(b)
			close(b.done)
		}
	}
}

// close seals what is open, waits until everything sealed was sent, and
// stops the sender.
func (a *accumulator) close() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		<-a.stopped
		return
	}
	a.closed = true
	if a.open != nil {
		a.seal()
	} else {
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}
	a.mu.Unlock()
	<-a.stopped
}
