package workers

import (
	"sync"

	"github.com/sluicehq/sluice/schemas"
)

// Partition is one assigned partition of a stream's topic, as every lane of
// it sees it: the store's lane and each output's. It lives from assignment
// to revocation; the next owner builds its own from the sinks.
type Partition struct {
	Topic  string
	Stream *schemas.Stream
	ID     int32
	// Committed is the consumer group's committed offset at assignment, or
	// kafka.FirstOffset when there is none: where a sink without progress
	// of its own starts.
	Committed int64
	// Assigned is how many partitions this worker owns in the generation:
	// bounds shared by all partitions are divided by it.
	Assigned int

	// window is the partition's dedupe window, shared by its lanes. The
	// store's Open fills it.
	window *dedupeWindow

	// Outputs is how many outputs have a lane of the partition.
	Outputs int

	// envelopes keeps where the store's lane found the envelopes of its
	// last batches, for the outputs' lanes.
	envelopes leadEnvelopes

	// fetched keeps the lanes' latest fetches for the lanes behind; nil
	// when only the store reads the partition.
	fetched *fetchShare

	mu sync.Mutex
	// rejected holds the offsets the store dead-lettered for their
	// content, so that an output that is behind does not publish them.
	// Entries go once every output has passed them.
	rejected map[int64]struct{}
	// past is how far each output's lane got (by Deliverer).
	past map[any]int64
}

// markRejected records that the store refused the event at off, for the
// outputs that have not passed it yet.
func (p *Partition) markRejected(off int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.Outputs == 0 {
		return
	}
	if len(p.past) == p.Outputs {
		low := p.lowestPast()
		if off <= low {
			return // every output is past it already
		}
	}
	if p.rejected == nil {
		p.rejected = make(map[int64]struct{})
	}
	p.rejected[off] = struct{}{}
}

// wasRejected reports whether the store refused the event at off.
func (p *Partition) wasRejected(off int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.rejected[off]
	return ok
}

// passed records that output's lane is done up to off, and drops the
// refusals every output has passed.
func (p *Partition) passed(output any, off int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.past == nil {
		p.past = make(map[any]int64)
	}
	p.past[output] = off
	if len(p.past) < p.Outputs || len(p.rejected) == 0 {
		return
	}
	low := p.lowestPast()
	for o := range p.rejected {
		if o <= low {
			delete(p.rejected, o)
		}
	}
}

func (p *Partition) lowestPast() int64 {
	first, low := true, int64(0)
	for _, off := range p.past {
		if first || off < low {
			first, low = false, off
		}
	}
	return low
}
