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

	mu sync.Mutex
	// rejected holds the offsets the store dead-lettered for their
	// content, so that an output that is behind does not publish them.
	// Entries go once every output has passed them.
	rejected map[int64]struct{}
}

// markRejected records that the store refused the event at off.
func (p *Partition) markRejected(off int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
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

// forgetRejected drops the entries at or below off.
func (p *Partition) forgetRejected(off int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for o := range p.rejected {
		if o <= off {
			delete(p.rejected, o)
		}
	}
}
