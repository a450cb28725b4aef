package ingest

import (
	"maps"
	"sync"
	"time"
)

// maxLeaderAge is the longest a producer keeps the leaders the Transport
// named (KafkaConfig.MetadataTTL when shorter): a partition added to a
// topic is written to at most this much later than the Transport knows
// of it.
const maxLeaderAge = time.Second

// leaderCache keeps the partition leaders of the topics the producer
// writes to, each for ttl after the Transport named them.
//
// Why: kafka-go's Transport answers a metadata request from its own cache,
// but copies the part of its cached answer that was asked for on every
// call, and each Produce asked twice (for its messages' partitions, then
// for their leaders), building a map each time: that was 2.7% of the
// ingest role's CPU at 20,000 events/s. The leaders change only when the
// cluster moves a partition. The Transport routes a request by its own
// metadata, and refuses one whose partitions it finds led by two brokers:
// the producer then forgets the leaders it keeps, and its retry asks the
// Transport again.
//
// A leaderCache is safe for concurrent use.
type leaderCache struct {
	ttl time.Duration

	mu sync.Mutex
	// snap is the leaders of every topic named so far. A map once
	// returned by get is never written again: put replaces it.
	snap map[string][]int32
	// at is when each topic of snap was last named; a topic missing here
	// is stale.
	at map[string]time.Time
}

// get returns the leaders of topics, by topic, when each was named less
// than ttl before now, or nil. The map may hold other topics too; the
// caller must not modify it.
func (c *leaderCache) get(topics []string, now time.Time) map[string][]int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range topics {
		at, ok := c.at[t]
		if !ok || now.Sub(at) >= c.ttl {
			return nil
		}
	}
	return c.snap
}

// put records the leaders md names, as of now.
func (c *leaderCache) put(md map[string][]int32, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	snap := make(map[string][]int32, len(c.snap)+len(md))
	maps.Copy(snap, c.snap)
	maps.Copy(snap, md)
	if c.at == nil {
		c.at = make(map[string]time.Time, len(md))
	}
	for t := range md {
		c.at[t] = now
	}
	c.snap = snap
}

// forget makes every topic stale, so that the next get misses.
func (c *leaderCache) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.at)
}
