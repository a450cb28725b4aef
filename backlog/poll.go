package backlog

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
)

// round takes one set of readings, bounded in time, and records how it
// went.
func (w *Watcher) round(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, w.roundTimeout())
	defer cancel()
	fresh, err := w.poll(rctx)
	if ctx.Err() != nil {
		return // stopping: the error says nothing of Kafka
	}
	w.record(fresh, err)
}

// poll reads every watched partition, judges it and publishes the view. A
// failure for one topic or partition leaves that one's state as it was and
// the others are judged; fresh reports whether any partition was.
func (w *Watcher) poll(ctx context.Context) (fresh bool, err error) {
	var errs []error
	if time.Since(w.retentionAt) >= w.opts.RetentionEvery {
		if err := w.readRetention(ctx); err != nil {
			errs = append(errs, err)
		} else {
			w.retentionAt = time.Now()
		}
	}
	layout, err := w.layout(ctx)
	errs = append(errs, err)
	if len(layout) == 0 {
		return false, errors.Join(errs...)
	}
	bounds, err := w.bounds(ctx, layout)
	errs = append(errs, err)
	committed, err := w.committed(ctx, layout)
	errs = append(errs, err)
	now := time.Now()
	judged := 0
	for _, k := range slices.SortedFunc(maps.Keys(bounds), comparePart) {
		c, ok := committed[k]
		if !ok {
			continue
		}
		p := w.parts[k]
		if p == nil {
			p = newPartition(k.topic, w.opts.Topics[k.topic], k.id)
			w.parts[k] = p
		}
		was := *p
		stamp := func(offset int64) (time.Time, error) { return w.stamp(ctx, k, offset) }
		b := bounds[k]
		lost, err := p.step(reading{committed: c, logStart: b[0], end: b[1]}, now, w.retention[k.topic], w.opts.Fraction, stamp)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s[%d]: %w", k.topic, k.id, err))
			continue
		}
		judged++
		w.metrics.show(p, lost)
		w.logChange(&was, p)
	}
	if judged > 0 {
		w.publish()
	}
	return judged > 0, errors.Join(errs...)
}

func comparePart(a, b partKey) int {
	return cmp.Or(cmp.Compare(a.topic, b.topic), cmp.Compare(a.id, b.id))
}

// layout returns the partitions of each watched topic that exists.
// Partitions are read anew every round, so added ones are watched.
func (w *Watcher) layout(ctx context.Context) (map[string][]int, error) {
	res, err := w.client.Metadata(ctx, &kafka.MetadataRequest{Topics: w.topics})
	if err != nil {
		return nil, fmt.Errorf("topic metadata: %w", err)
	}
	out := make(map[string][]int, len(res.Topics))
	var errs []error
	for _, t := range res.Topics {
		if _, ok := w.opts.Topics[t.Name]; !ok {
			continue
		}
		if t.Error != nil {
			errs = append(errs, fmt.Errorf("topic %s: %w", t.Name, t.Error))
			continue
		}
		for _, p := range t.Partitions {
			out[t.Name] = append(out[t.Name], p.ID)
		}
	}
	return out, errors.Join(errs...)
}

// bounds returns each partition's log start offset and high watermark.
func (w *Watcher) bounds(ctx context.Context, layout map[string][]int) (map[partKey][2]int64, error) {
	req := make(map[string][]kafka.OffsetRequest, len(layout))
	for t, ids := range layout {
		for _, id := range ids {
			req[t] = append(req[t], kafka.FirstOffsetOf(id), kafka.LastOffsetOf(id))
		}
	}
	res, err := w.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: req})
	if err != nil {
		return nil, fmt.Errorf("list offsets: %w", err)
	}
	out := make(map[partKey][2]int64)
	var errs []error
	for t, ps := range res.Topics {
		for _, p := range ps {
			if p.Error != nil {
				errs = append(errs, fmt.Errorf("offsets of %s[%d]: %w", t, p.Partition, p.Error))
				continue
			}
			out[partKey{t, p.Partition}] = [2]int64{p.FirstOffset, p.LastOffset}
		}
	}
	return out, errors.Join(errs...)
}

// committed returns the group's committed offset of each partition, -1
// where it has none.
func (w *Watcher) committed(ctx context.Context, layout map[string][]int) (map[partKey]int64, error) {
	res, err := w.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: w.opts.GroupID, Topics: layout})
	if err == nil {
		err = res.Error
	}
	out := make(map[partKey]int64)
	if err != nil && !errors.Is(err, kafka.GroupIdNotFound) {
		return nil, fmt.Errorf("committed offsets of group %s: %w", w.opts.GroupID, err)
	}
	// A partition left out of the answer has no commit, and so has every
	// partition of a group that does not exist yet: some brokers (kfake,
	// and Kafka's new group coordinator) say so with GROUP_ID_NOT_FOUND
	// where others answer -1.
	for t, ids := range layout {
		for _, id := range ids {
			out[partKey{t, id}] = -1
		}
	}
	if err != nil {
		return out, nil
	}
	var errs []error
	for t, ps := range res.Topics {
		for _, p := range ps {
			k := partKey{t, p.Partition}
			if p.Error != nil {
				delete(out, k)
				errs = append(errs, fmt.Errorf("committed offset of %s[%d]: %w", t, p.Partition, p.Error))
				continue
			}
			if _, ok := out[k]; ok {
				out[k] = p.CommittedOffset
			}
		}
	}
	return out, errors.Join(errs...)
}

// stampBytes bounds a timestamp fetch. Kafka returns the first batch at
// the offset whole even when it is larger, so this only trims the rest.
const stampBytes = 64 << 10

// stamp returns the timestamp of the message at offset of partition k,
// or of the first one after it.
func (w *Watcher) stamp(ctx context.Context, k partKey, offset int64) (time.Time, error) {
	res, err := w.client.Fetch(ctx, &kafka.FetchRequest{
		Topic: k.topic, Partition: k.id, Offset: offset,
		MinBytes: 1, MaxBytes: stampBytes, MaxWait: 100 * time.Millisecond,
	})
	if err == nil {
		err = res.Error
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("fetch offset %d: %w", offset, err)
	}
	for {
		rec, err := res.Records.ReadRecord()
		if errors.Is(err, io.EOF) {
			// Nothing readable at or after offset in what came back (a
			// batch of transaction markers): the next round tries again.
			return time.Time{}, fmt.Errorf("fetch offset %d: no message", offset)
		}
		if err != nil {
			return time.Time{}, fmt.Errorf("fetch offset %d: %w", offset, err)
		}
		// A fetch may start with a batch that begins before offset.
		if rec.Offset < offset {
			continue
		}
		if rec.Time.UnixMilli() <= 0 {
			return time.Time{}, fmt.Errorf("message at offset %d has no timestamp", rec.Offset)
		}
		return rec.Time, nil
	}
}

// readRetention reads every watched topic's retention.ms and exports it.
// A topic that does not answer keeps the retention last read.
func (w *Watcher) readRetention(ctx context.Context) error {
	req := &kafka.DescribeConfigsRequest{}
	for _, t := range w.topics {
		req.Resources = append(req.Resources, kafka.DescribeConfigRequestResource{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: t, ConfigNames: []string{"retention.ms"},
		})
	}
	res, err := w.client.DescribeConfigs(ctx, req)
	if err != nil {
		return fmt.Errorf("describe topic configs: %w", err)
	}
	var errs []error
	for _, r := range res.Resources {
		if _, ok := w.opts.Topics[r.ResourceName]; !ok {
			continue
		}
		if r.Error != nil {
			errs = append(errs, fmt.Errorf("retention of %s: %w", r.ResourceName, r.Error))
			continue
		}
		w.setRetention(r.ResourceName, retentionOf(r.ConfigEntries))
	}
	return errors.Join(errs...)
}

// retentionOf finds retention.ms among entries; 0 (unlimited) when it is
// absent, negative or not a number.
func retentionOf(entries []kafka.DescribeConfigResponseConfigEntry) time.Duration {
	for _, e := range entries {
		if e.ConfigName != "retention.ms" {
			continue
		}
		ms, err := strconv.ParseInt(e.ConfigValue, 10, 64)
		if err != nil || ms < 0 {
			return 0
		}
		return time.Duration(ms) * time.Millisecond
	}
	return 0
}

func (w *Watcher) setRetention(topic string, d time.Duration) {
	if old, ok := w.retention[topic]; !ok || old != d {
		w.log.Info("topic retention", "topic", topic, "stream", w.opts.Topics[topic], "retention", limit(d))
	}
	w.retention[topic] = d
	stream := w.opts.Topics[topic]
	if d <= 0 {
		w.metrics.retention.DeleteLabelValues(stream)
		return
	}
	w.metrics.retention.WithLabelValues(stream).Set(d.Seconds())
}
