package backlog

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// publish replaces the view that Shed and Check read with the state of
// every partition.
func (w *Watcher) publish() {
	v := &view{at: time.Now(), read: true, shed: make(map[string]string)}
	worst := make(map[string]*partition)
	count := make(map[string]int)
	for _, k := range slices.SortedFunc(maps.Keys(w.parts), comparePart) {
		p := w.parts[k]
		if !p.alarm {
			continue
		}
		v.problems = append(v.problems, p.problem(w.opts.Fraction))
		count[p.stream]++
		if q := worst[p.stream]; q == nil || p.worse(q) {
			worst[p.stream] = p
		}
	}
	for stream, p := range worst {
		reason := p.problem(w.opts.Fraction)
		if n := count[stream] - 1; n > 0 {
			reason += fmt.Sprintf(", and %d more partitions", n)
		}
		v.shed[stream] = reason
	}
	w.view.Store(v)
}

// record counts and logs a failed round, at most once a minute while the
// failure lasts, and says when rounds work again. A round that judged no
// partition leaves the view as it was, with the error for Check.
func (w *Watcher) record(fresh bool, err error) {
	now := time.Now()
	if err == nil {
		if !w.failSince.IsZero() {
			w.log.Info("backlog readings work again", "failed_for", span(now.Sub(w.failSince)))
			w.failSince = time.Time{}
		}
		return
	}
	w.metrics.errors.Inc()
	if !fresh {
		v := *w.view.Load()
		v.err = err
		w.view.Store(&v)
	}
	if w.failSince.IsZero() {
		w.failSince, w.failLogged = now, time.Time{}
	}
	if now.Sub(w.failLogged) >= time.Minute {
		w.failLogged = now
		w.log.Warn("cannot read the whole backlog from Kafka; what was not read keeps its last state",
			"err", err, "failing_for", span(now.Sub(w.failSince)))
	}
}

// logChange logs p's transitions into and out of alarm. Losing data is an
// error in its own right even when the alarm was already on.
func (w *Watcher) logChange(was, p *partition) {
	attrs := []any{"stream", p.stream, "topic", p.topic, "partition", p.id, "retention", limit(p.retention)}
	switch {
	case p.expired && !was.expired:
		w.log.Error("unread events expired from Kafka: they are lost",
			append(attrs, "offsets", fmt.Sprintf("%d-%d", p.floor, p.logStart-1))...)
	case p.alarm && !was.alarm:
		w.log.Error("backlog nears Kafka's retention: the collectors shed this stream until the store catches up",
			append(attrs, "age", span(p.age), "alarm_at", span(p.threshold(w.opts.Fraction)))...)
	case !p.alarm && was.alarm:
		w.log.Info("backlog alarm cleared", append(attrs, "age", span(p.age))...)
	}
}
