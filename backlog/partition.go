package backlog

import (
	"fmt"
	"time"
)

// clearRatio is the share of the alarm threshold below which an alarm
// clears, so that a backlog hovering at the threshold does not switch
// shedding on and off at every reading.
const clearRatio = 0.8

// reading is what one round learned about a partition from Kafka.
type reading struct {
	// committed is the group's committed offset, -1 when it has none.
	committed int64
	// logStart is the first offset Kafka still holds; end is the high
	// watermark, the offset the next message will get.
	logStart, end int64
}

// stamper returns the timestamp of the message at offset, or of the first
// one after it when offset itself is gone (compacted, a control record).
type stamper func(offset int64) (time.Time, error)

// partition is what the watcher knows of one topic partition. Only Run's
// goroutine touches it.
type partition struct {
	topic, stream string
	id            int

	seen bool
	// floor is the lowest offset known to be unread: the committed offset
	// or, while the group has none, the log start offset first seen. A group
	// without a commit reads from the earliest offset, so all Kafka held
	// then is unread, and whatever retention deletes later is lost.
	floor         int64
	logStart, end int64
	// at is the offset whose timestamp stamp gives the age (-1: none yet).
	// A message's timestamp never changes, so a stalled group costs one
	// fetch, not one per round.
	at    int64
	stamp time.Time

	age time.Duration
	// retention is the topic's retention.ms; 0 when unlimited or unknown.
	retention time.Duration
	alarm     bool
	expired   bool
	// counted is where the offsets counted as expired unread end.
	counted int64
}

func newPartition(topic, stream string, id int) *partition {
	return &partition{topic: topic, stream: stream, id: id, at: -1}
}

// step folds a reading taken at now into p, asking stamp for a timestamp
// only when the first unread offset moved. It returns how many offsets are
// newly known to have expired unread. On error p is left as it was.
func (p *partition) step(r reading, now time.Time, retention time.Duration, fraction float64, stamp stamper) (lost int64, err error) {
	floor := r.logStart
	switch {
	case r.committed >= 0:
		floor = r.committed
	case p.seen:
		floor = p.floor
	}
	// The oldest unread message that Kafka still has.
	first := max(floor, r.logStart)
	at, ts := p.at, p.stamp
	var age time.Duration
	if first < r.end {
		if first != at {
			if ts, err = stamp(first); err != nil {
				return 0, err
			}
			at = first
		}
		// A producer's clock ahead of ours must not make a negative age.
		age = max(0, now.Sub(ts))
	}
	wasAlarm := p.alarm
	p.seen, p.floor, p.logStart, p.end = true, floor, r.logStart, r.end
	p.at, p.stamp, p.age, p.retention = at, ts, age, retention
	p.expired = floor < r.logStart
	if p.expired {
		if from := max(floor, p.counted); r.logStart > from {
			lost = r.logStart - from
		}
		p.counted = max(p.counted, r.logStart)
	}
	bar := p.threshold(fraction)
	if wasAlarm {
		bar = time.Duration(clearRatio * float64(bar))
	}
	p.alarm = p.expired || p.retention > 0 && age >= bar
	return lost, nil
}

// threshold is the age at which the alarm goes on; 0 without a retention.
func (p *partition) threshold(fraction float64) time.Duration {
	return time.Duration(fraction * float64(p.retention))
}

// problem describes p for Check and Shed; "" when it is not in alarm.
func (p *partition) problem(fraction float64) string {
	switch {
	case p.expired:
		return fmt.Sprintf("%s[%d] (stream %s): offsets %d-%d expired from Kafka unread (retention %s)",
			p.topic, p.id, p.stream, p.floor, p.logStart-1, limit(p.retention))
	case p.alarm:
		return fmt.Sprintf("%s[%d] (stream %s): oldest unread event %s old, retention %s (alarm at %s)",
			p.topic, p.id, p.stream, span(p.age), limit(p.retention), span(p.threshold(fraction)))
	}
	return ""
}

// worse reports whether p is a better example than q of why a stream is
// shed: lost data first, then the older backlog.
func (p *partition) worse(q *partition) bool {
	if p.expired != q.expired {
		return p.expired
	}
	return p.age > q.age
}

// span writes a duration for people: to the second from a minute on.
func span(d time.Duration) string {
	if d >= time.Minute {
		return d.Round(time.Second).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// limit writes a retention, which 0 leaves unlimited.
func limit(d time.Duration) string {
	if d <= 0 {
		return "unlimited"
	}
	return span(d)
}
