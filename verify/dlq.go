package verify

import (
	"context"
	"fmt"
	"io"

	"github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/deadletter"
	"github.com/sluicehq/sluice/eventkey"
)

// dlqOffset is where a dead-lettered message was in its stream's topic.
type dlqOffset struct {
	topic     string
	partition int32
	offset    int64
}

// dlqIndex holds what the dead-letter topic says was given up on, for the
// streams being verified. It reads the topic incrementally, so that letters
// the workers write while verify runs can still excuse an absent event.
type dlqIndex struct {
	reader   *kafkaReader
	topic    string
	streams  map[string]bool
	hash     eventkey.Hasher
	progress io.Writer

	next    map[int]int64 // next offset to read, per DLQ partition
	ids     map[string]map[key]struct{}
	offsets map[dlqOffset]struct{}

	// letters counts the records read, malformed those that are not a
	// dead letter of Sluice's format.
	letters, malformed int64
}

func newDLQIndex(r *kafkaReader, topic string, streams []string, h eventkey.Hasher, progress io.Writer) *dlqIndex {
	d := &dlqIndex{
		reader: r, topic: topic, streams: map[string]bool{}, hash: h, progress: progress,
		next: map[int]int64{}, ids: map[string]map[key]struct{}{}, offsets: map[dlqOffset]struct{}{},
	}
	for _, s := range streams {
		d.streams[s] = true
		d.ids[s] = map[key]struct{}{}
	}
	return d
}

// catchUp reads the letters written since the last call, up to the
// watermarks of now. A missing dead-letter topic holds no letters.
func (d *dlqIndex) catchUp(ctx context.Context) error {
	marks, err := d.reader.watermarks(ctx, []string{d.topic})
	if err != nil {
		return fmt.Errorf("dead-letter topic: %w", err)
	}
	for _, pm := range marks[d.topic] {
		from, ok := d.next[pm.partition]
		if !ok || from < pm.first {
			from = pm.first
		}
		if from >= pm.hw {
			continue
		}
		ph := startPhase(d.progress, fmt.Sprintf("%s/%d", d.topic, pm.partition), "letters", pm.hw-from)
		next, err := d.reader.read(ctx, d.topic, pm.partition, from, pm.hw, func(ms []kafka.Message) error {
			for _, m := range ms {
				d.add(m.Value)
			}
			ph.add(int64(len(ms)))
			return nil
		})
		ph.end()
		d.next[pm.partition] = next
		if err != nil {
			return fmt.Errorf("dead-letter topic: %w", err)
		}
	}
	return nil
}

func (d *dlqIndex) add(value []byte) {
	d.letters++
	rec, err := deadletter.Decode(value)
	if err != nil {
		d.malformed++
		return
	}
	if !rec.FromKafka() || rec.Skip() || !d.streams[rec.Stream] {
		// A collector's letter stands for input that never reached a
		// stream's topic, and an output's skip record for a range the
		// store still holds: neither excuses anything there.
		return
	}
	d.offsets[dlqOffset{rec.Topic, rec.Partition, rec.Offset}] = struct{}{}
	// A letter whose event is not JSON has no event_id; one whose event
	// was cut to fit carries the id beside it.
	if id := rec.ID(); id != "" {
		d.ids[rec.Stream][d.hash.Sum(id)] = struct{}{}
	}
}

// has reports whether the event k of stream, or the message at offset off
// of topic/partition, was dead-lettered. The offset matters for messages
// without a readable event_id; the event_id for an event whose retry sits at
// another offset than the one that failed.
func (d *dlqIndex) has(stream, topic string, partition int32, off int64, k key, hasKey bool) bool {
	if _, ok := d.offsets[dlqOffset{topic, partition, off}]; ok {
		return true
	}
	if !hasKey {
		return false
	}
	_, ok := d.ids[stream][k]
	return ok
}
