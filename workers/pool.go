package workers

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/sluicehq/sluice/schemas"
)

// Message is one Kafka record as the workers see it.
type Message struct {
	Offset int64
	Key    []byte
	Value  []byte
	Time   time.Time
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
	// Decoded holds what Handler.Prepare made of each message, by index.
	Decoded []Decoded
}

// Decoded is one message after decoding and validation.
type Decoded struct {
	Event schemas.Event
	// Err says why the message is not a valid event of its stream; such a
	// message goes to the dead-letter topic.
	Err error
}

// First returns the batch's first offset.
func (b *Batch) First() int64 { return b.Messages[0].Offset }

// Last returns the batch's last offset.
func (b *Batch) Last() int64 { return b.Messages[len(b.Messages)-1].Offset }

// Handler does the work on batches. The pool calls Prepare for many batches
// at once, including several of one partition, and Deliver for one
// partition's batches one at a time, in offset order: work that needs no
// order (decoding) goes in Prepare, writes to sinks in Deliver.
type Handler interface {
	// Prepare fills b.Decoded.
	Prepare(b *Batch)
	// Deliver writes the batch to the sinks. It returns nil when every
	// message is done (written, skipped as a duplicate, or dead-lettered),
	// and an error only when ctx ended first; the batch is then abandoned
	// and will be read again by whoever owns the partition next.
	Deliver(ctx context.Context, b *Batch) error
}

// job is a batch in the pool with what orders it after its predecessor.
type job struct {
	batch *Batch
	// stop ends the job before it starts delivering (the partition was
	// revoked); deliverCtx bounds delivery once started.
	stop       context.Context
	deliverCtx context.Context
	prev       *job // the same partition's previous job, or nil
	done       chan struct{}
	ok         bool // written before done is closed
	finish     func(ok bool)
}

// Pool runs a fixed number of workers fed through one bounded queue. A full
// queue blocks Submit, which blocks the partition reader that called it:
// that is how a slow sink slows down consumption instead of piling up memory.
type Pool struct {
	handler Handler
	jobs    chan *job
	workers int
	metrics *consumerMetrics
}

// NewPool returns a pool of n workers with a queue of depth batches.
func NewPool(n, depth int, h Handler, m *consumerMetrics) *Pool {
	if n <= 0 {
		n = 1
	}
	if depth < 0 {
		depth = 0
	}
	return &Pool{handler: h, jobs: make(chan *job, depth), workers: n, metrics: m}
}

// Run starts the workers and returns when ctx ends and every worker has
// returned. Jobs still queued then are abandoned.
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
	// Nobody sends once Run's caller stops the lanes, but jobs may remain.
	for {
		select {
		case j := <-p.jobs:
			p.complete(j, false)
		default:
			return
		}
	}
}

// submit queues a job, waiting for room until stop ends.
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
	if j.stop.Err() != nil {
		p.complete(j, false)
		return
	}
	start := time.Now()
	p.prepare(j.batch)
	if j.prev != nil {
		select {
		case <-j.prev.done:
			if !j.prev.ok {
				p.complete(j, false)
				return
			}
		case <-j.stop.Done():
			p.complete(j, false)
			return
		}
	}
	// A revocation after this point lets the delivery finish (bounded by
	// deliverCtx), because abandoning an INSERT half way leaves it unknown
	// whether ClickHouse stored it while the next owner already reads.
	if j.stop.Err() != nil {
		p.complete(j, false)
		return
	}
	err := p.handler.Deliver(j.deliverCtx, j.batch)
	if p.metrics != nil {
		p.metrics.deliverSeconds.WithLabelValues(j.batch.Stream.Name).Observe(time.Since(start).Seconds())
	}
	p.complete(j, err == nil)
}

// prepare runs Handler.Prepare, turning a panic into a per-batch decode
// failure of every message, so one bad batch cannot take the process down.
func (p *Pool) prepare(b *Batch) {
	defer func() {
		if r := recover(); r != nil {
			err := fmt.Errorf("panic while decoding: %v\n%s", r, debug.Stack())
			b.Decoded = make([]Decoded, len(b.Messages))
			for i := range b.Decoded {
				b.Decoded[i].Err = err
			}
		}
	}()
	p.handler.Prepare(b)
}

func (p *Pool) complete(j *job, ok bool) {
	j.ok = ok
	close(j.done)
	if j.finish != nil {
		j.finish(ok)
	}
}
