package testkit

import (
	"context"
	"sync"

	"github.com/sluicehq/sluice/ingest"
)

// FakeProducer is an ingest.Producer for unit tests of what feeds it: it
// records what it is given and fails with Err when set. The tests that
// prove a source reaches Kafka use StartKafka instead.
type FakeProducer struct {
	mu    sync.Mutex
	err   error
	calls int
	msgs  []ingest.Message
	// Block, when set before use, holds Produce until it is closed or ctx
	// ends.
	Block chan struct{}
}

// FailingProducer returns a FakeProducer whose every Produce fails with err.
func FailingProducer(err error) *FakeProducer {
	p := &FakeProducer{}
	p.SetErr(err)
	return p
}

// SetErr makes every later Produce fail with err (nil: succeed).
func (f *FakeProducer) SetErr(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

// Produce implements ingest.Producer.
func (f *FakeProducer) Produce(ctx context.Context, msgs []ingest.Message) error {
	f.mu.Lock()
	f.calls++
	block, err := f.Block, f.err
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.msgs = append(f.msgs, msgs...)
	f.mu.Unlock()
	return nil
}

// Produced returns every message produced so far.
func (f *FakeProducer) Produced() []ingest.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ingest.Message(nil), f.msgs...)
}

// Calls counts Produce calls, failed ones included.
func (f *FakeProducer) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}
