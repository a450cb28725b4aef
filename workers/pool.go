package workers

import (
	"cmp"
	"context"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/sluicehq/sluice/eventkey"
	"github.com/sluicehq/sluice/schemas"
)

// Message is one Kafka record as the workers see it: 88 bytes besides its
// key and value, where a kafka.Message is some 200, and a lane holds up to
// tens of thousands in its batches.
type Message struct {
	Offset int64
	Key    []byte
	Value  []byte
	Time   time.Time
	// HighWaterMark is the partition's high-water mark when the message
	// was fetched: the offset after the last one Kafka held.
	HighWaterMark int64
}

// Batch is a run of consecutive messages of one partition of one stream's
// topic. It is the unit of work of the pool and, in ClickHouse, of one
// INSERT.
type Batch struct {
	Topic     string
	Stream    *schemas.Stream
	Partition int32
	Messages  []Message
	// Bytes is the sum of the messages' value sizes.
	Bytes int
	// Decoded holds what Deliverer.Prepare made of each message, by index.
	Decoded []Decoded
	// records holds the store's Decoded Records, released once the batch
	// is stored (StoreDeliverer).
	records *schemas.Records
}

// Decoded is one message after decoding and validation.
type Decoded struct {
	// Event is the event, or for a store its envelope (Fields nil).
	Event schemas.Event
	// Record holds a store's event's fields.
	Record schemas.Record
	// Err says why the message is not a valid event of its stream; such a
	// message goes to the dead-letter topic.
	Err error
	// Key is Event.ID's key in the dedupe window, when a store prepared
	// the batch: hashed while the message was still in the cache, where
	// hashing it as the batch is delivered read every id from memory
	// again (a thirtieth of the work role's CPU at saturation).
	Key eventkey.Key
}

// First returns the batch's first offset.
func (b *Batch) First() int64 { return b.Messages[0].Offset }

// Last returns the batch's last offset.
func (b *Batch) Last() int64 { return b.Messages[len(b.Messages)-1].Offset }

// index returns the index of the message at offset off, which the batch
// holds: its messages are in increasing offset order.
func (b *Batch) index(off int64) int {
	i, _ := slices.BinarySearchFunc(b.Messages, off, func(m Message, off int64) int { return cmp.Compare(m.Offset, off) })
	return i
}

// Deliverer is one sink's side of delivery. The consumer runs a lane per
// assigned partition and Deliverer, so each sink reads at its own pace from
// its own position: one sink down holds back no other.
//
// Prepare runs in the pool, for many batches at once, including several of
// one partition; Deliver runs in the partition's lane, one batch at a time,
// in offset order. Work that needs no order (decoding) goes in Prepare,
// writes to the sink in Deliver.
type Deliverer interface {
	// Name names the sink in logs and metrics ("clickhouse", "nats").
	Name() string
	// Open readies a newly assigned partition and returns the offset its
	// lane starts reading at: where the sink's own progress says it got.
	Open(ctx context.Context, p *Partition) (start int64, err error)
	// Prepare fills b.Decoded.
	Prepare(b *Batch)
	// Deliver hands the batch to the sink. It returns nil when every
	// message is done (written, skipped as a duplicate or dead-lettered,
	// or skipped by an output that fell too far behind), and an error only
	// when ctx ended first; the batch is then abandoned and read again by
	// whoever owns the partition next.
	Deliver(ctx context.Context, p *Partition, b *Batch) error
}

// job is a batch on its way through the pool and its lane.
type job struct {
	batch *Batch
	// prepare is the Prepare of the lane's Deliverer.
	prepare func(*Batch)
	// stop ends the job before it is prepared (the partition was revoked).
	stop context.Context
	// prepared is closed by the pool once Prepare has run or was skipped.
	prepared chan struct{}
}

// Pool is a fixed number of workers fed through one bounded queue. They
// decode batches: the CPU-heavy part of delivery, which needs no order.
// A full queue blocks the lane that submits, which stops reading its
// partition: a slow pool slows consumption instead of piling up memory.
type Pool struct {
	jobs    chan *job
	workers int
	metrics *consumerMetrics
}

// NewPool returns a pool of n workers with a queue of depth batches.
func NewPool(n, depth int, m *consumerMetrics) *Pool {
	if n <= 0 {
		n = 1
	}
	if depth < 0 {
		depth = 0
	}
	return &Pool{jobs: make(chan *job, depth), workers: n, metrics: m}
}

// Run starts the workers and returns when ctx ends and every worker has
// returned. Jobs still queued then are marked prepared without work, so that
// no lane waits for them.
func (p *Pool) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range p.workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-p.jobs:
					p.run(j)
				}
			}
		})
	}
	wg.Wait()
	for {
		select {
		case j := <-p.jobs:
			close(j.prepared)
		default:
			return
		}
	}
}

// submit queues a job, waiting for room until its stop context ends.
func (p *Pool) submit(j *job) error {
	select {
	case p.jobs <- j:
		if p.metrics != nil {
			p.metrics.queued.Inc()
		}
		return nil
	case <-j.stop.Done():
		return j.stop.Err()
	}
}

func (p *Pool) run(j *job) {
	if p.metrics != nil {
		p.metrics.queued.Dec()
	}
	defer close(j.prepared)
	if j.stop.Err() != nil {
		return // the lane abandons it; decoding would be wasted
	}
	p.prepare(j)
}

// prepare runs the Deliverer's Prepare, turning a panic into a decode failure of
// every message of the batch, so one bad batch cannot take the process down.
func (p *Pool) prepare(j *job) {
	b := j.batch
	defer func() {
		if r := recover(); r != nil {
			err := fmt.Errorf("panic while decoding: %v\n%s", r, debug.Stack())
			b.Decoded = make([]Decoded, len(b.Messages))
			for i := range b.Decoded {
				b.Decoded[i].Err = err
			}
		}
	}()
	j.prepare(b)
}
