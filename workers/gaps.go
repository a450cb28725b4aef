package workers

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Gap is a range of a partition that Kafka no longer holds although the
// store never had it: retention deleted it first. The store's lane stops at
// a gap, and only an operator's AcceptGap moves it past.
type Gap struct {
	Stream    string
	Topic     string
	Partition int32
	// First and Last are the lost offsets, inclusive.
	First, Last int64
}

func (g Gap) String() string {
	return fmt.Sprintf("%s/%d: offsets %d-%d (%d events) expired from Kafka before they were stored", g.Stream, g.Partition, g.First, g.Last, g.Last-g.First+1)
}

// ErrNoGap is AcceptGap's answer when the partition is not stopped at a gap
// on this worker.
var ErrNoGap = errors.New("no gap is stopping that partition on this worker")

// gaps holds the gaps that stop lanes of this worker, until accepted.
type gaps struct {
	mu      sync.Mutex
	open    map[string]*openGap // by stream/partition
	metrics *consumerMetrics
}

type openGap struct {
	gap    Gap
	accept chan struct{}
}

func newGaps(m *consumerMetrics) *gaps { return &gaps{open: make(map[string]*openGap), metrics: m} }

func gapKey(stream string, partition int32) string {
	return stream + "/" + strconv.Itoa(int(partition))
}

// wait reports g and blocks until an operator accepts it (nil) or ctx ends.
func (gs *gaps) wait(ctx context.Context, g Gap) error {
	if err := ctx.Err(); err != nil {
		return err // a revoked lane reports nothing
	}
	og := &openGap{gap: g, accept: make(chan struct{})}
	key := gapKey(g.Stream, g.Partition)
	// The gauge first: whoever sees the gap listed sees its size too.
	gauge := gs.metrics.gap.WithLabelValues(g.Stream, strconv.Itoa(int(g.Partition)))
	gauge.Set(float64(g.Last - g.First + 1))
	defer gauge.Set(0)
	gs.mu.Lock()
	gs.open[key] = og
	gs.mu.Unlock()
	defer func() {
		gs.mu.Lock()
		if gs.open[key] == og {
			delete(gs.open, key)
		}
		gs.mu.Unlock()
	}()
	select {
	case <-og.accept:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// accept lets the lane stopped at the partition's gap go on past it.
func (gs *gaps) accept(stream string, partition int32) (Gap, error) {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	key := gapKey(stream, partition)
	og := gs.open[key]
	if og == nil {
		return Gap{}, fmt.Errorf("%s: %w", key, ErrNoGap)
	}
	delete(gs.open, key)
	close(og.accept)
	return og.gap, nil
}

func (gs *gaps) list() []Gap {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	out := make([]Gap, 0, len(gs.open))
	for _, og := range gs.open {
		out = append(out, og.gap)
	}
	sort.Slice(out, func(i, j int) bool {
		return gapKey(out[i].Stream, out[i].Partition) < gapKey(out[j].Stream, out[j].Partition)
	})
	return out
}

// Gaps returns the gaps that stop partitions of this worker.
func (c *Consumer) Gaps() []Gap { return c.gaps.list() }

// AcceptGap is the operator's decision that a partition stopped at a gap may
// go on past it: the lost range is recorded in the dead-letter topic and the
// partition is read again from the first offset Kafka still holds.
func (c *Consumer) AcceptGap(stream string, partition int32) (Gap, error) {
	return c.gaps.accept(stream, partition)
}

// CheckGaps fails while a gap stops a partition, naming each exactly and the
// operator action that resumes it: a readiness check.
func (c *Consumer) CheckGaps(context.Context) error {
	gs := c.gaps.list()
	if len(gs) == 0 {
		return nil
	}
	msgs := make([]string, len(gs))
	for i, g := range gs {
		msgs[i] = g.String()
	}
	return fmt.Errorf("stopped at data lost to Kafka retention: %s; after reading docs/delivery.md, resume past a gap with POST /gaps/accept?stream=STREAM&partition=N",
		strings.Join(msgs, "; "))
}
