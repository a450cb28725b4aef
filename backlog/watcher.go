package backlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/kafkaconn"
)

// Defaults for Options.
const (
	DefaultInterval       = 5 * time.Second
	DefaultFraction       = 0.5
	DefaultRetentionEvery = time.Minute
)

// minRoundTimeout bounds one round of readings when Interval is shorter:
// a slow broker should make a round late, not fail it.
const minRoundTimeout = 10 * time.Second

// Options configure a Watcher. Brokers, GroupID and Topics are required;
// zero values of the rest take the defaults.
type Options struct {
	// Brokers are the bootstrap addresses, host:port.
	Brokers []string
	// GroupID is the consumer group whose committed offsets say what has
	// been read: the workers' group. There is no default, because a group
	// that never commits makes every message look unread, which would
	// shed the streams for good.
	GroupID string
	// Topics maps each watched topic to the stream it carries. The stream
	// labels the metrics and is what Shed is asked about.
	Topics map[string]string
	// Interval is the time between two rounds of readings (default 5s).
	// It is also the retry-after Shed gives, as no answer can change
	// sooner.
	Interval time.Duration
	// Fraction of a topic's retention that the oldest unread message may
	// reach before the alarm (default 0.5). What is left of the retention
	// is the time the store has to catch up while the collectors shed.
	// Between 0 and 1.
	Fraction float64
	// RetentionEvery is how often the topics' retention.ms is read again
	// (default a minute), so that a changed retention is taken up.
	RetentionEvery time.Duration
	// Kafka is the TLS and SASL of the watcher's own transport; zero is
	// plaintext.
	Kafka kafkaconn.Security
	// Transport carries the requests to the brokers; nil means one of the
	// watcher's own, built with Kafka. Tests pass a wrapper.
	Transport kafka.RoundTripper
	// Logger receives the alarm transitions; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics; nil means none are exported.
	Registerer prometheus.Registerer
}

// Watcher reads the backlog of a consumer group on a set of topics and
// says when its oldest unread messages near the topics' retention. Run
// does the reading, in the caller's goroutine; Shed and Check may be
// called from any goroutine, before Run too: nothing is shed before a
// reading.
type Watcher struct {
	opts    Options
	topics  []string // sorted keys of opts.Topics
	client  *kafka.Client
	own     *kafka.Transport // nil when the transport is the caller's
	log     *slog.Logger
	metrics *metrics
	running atomic.Bool

	// Owned by Run's goroutine.
	parts       map[partKey]*partition
	retention   map[string]time.Duration // topic -> retention.ms, 0 unlimited
	retentionAt time.Time
	failSince   time.Time // when rounds started failing; zero while they work
	failLogged  time.Time

	// view is what Shed and Check read. It is replaced whole after every
	// round so that the gate's hot path takes no lock.
	view atomic.Pointer[view]
}

type partKey struct {
	topic string
	id    int
}

// view is the outcome of the last round.
type view struct {
	// at is when the last successful round ended; New's time before one.
	at time.Time
	// read is set once a round succeeded.
	read bool
	// err is why the last round failed; nil when it did not.
	err error
	// shed maps each stream with a partition in alarm to the reason.
	shed map[string]string
	// problems describes every partition in alarm, sorted.
	problems []string
}

// New returns a Watcher and registers its metrics; Run starts it.
func New(opts Options) (*Watcher, error) {
	switch {
	case len(opts.Brokers) == 0:
		return nil, errors.New("backlog: no brokers")
	case opts.GroupID == "":
		return nil, errors.New("backlog: no consumer group")
	case len(opts.Topics) == 0:
		return nil, errors.New("backlog: no topics")
	case opts.Fraction < 0 || opts.Fraction > 1:
		return nil, fmt.Errorf("backlog: fraction %v is not between 0 and 1", opts.Fraction)
	}
	// The caller keeps its map; Run reads this one without a lock.
	opts.Topics = maps.Clone(opts.Topics)
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Fraction == 0 {
		opts.Fraction = DefaultFraction
	}
	if opts.RetentionEvery <= 0 {
		opts.RetentionEvery = DefaultRetentionEvery
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	w := &Watcher{
		opts:      opts,
		topics:    slices.Sorted(maps.Keys(opts.Topics)),
		log:       opts.Logger.With("component", "kafka-backlog", "group", opts.GroupID),
		metrics:   m,
		parts:     make(map[partKey]*partition),
		retention: make(map[string]time.Duration),
	}
	tr := opts.Transport
	if tr == nil {
		w.own = opts.Kafka.Transport("sluice-backlog", 5*time.Second)
		tr = w.own
	}
	w.client = &kafka.Client{Addr: kafka.TCP(opts.Brokers...), Transport: tr}
	w.view.Store(&view{at: time.Now()})
	return w, nil
}

// Run reads the backlog at once and then every Interval until ctx ends,
// and returns nil then. A round that fails is logged and counted, and the
// last known state holds until a round succeeds: a Kafka hiccup must not
// flip the alarm. Run may be called once.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("backlog: Run called twice")
	}
	if w.own != nil {
		defer w.own.CloseIdleConnections()
	}
	tick := time.NewTicker(w.opts.Interval)
	defer tick.Stop()
	for {
		w.round(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Shed reports whether the collectors should refuse stream's events now:
// ok while one of its partitions is in alarm, with the retry-after to give
// producers and the reason, which names the partition and its backlog.
// A reading gone stale (Kafka not answering the watcher) never sheds.
func (w *Watcher) Shed(stream string) (retryAfter time.Duration, reason string, ok bool) {
	v := w.view.Load()
	if w.stale(v) {
		return 0, "", false
	}
	if reason, ok = v.shed[stream]; !ok {
		return 0, "", false
	}
	return max(w.opts.Interval, time.Second), reason, true
}

// Check returns nil, or an error for readiness detail that names every
// partition in alarm with its backlog age and retention, or the offsets
// that expired from Kafka unread. It also fails while the readings are
// stale, since then nobody would know of an alarm.
func (w *Watcher) Check() error {
	v := w.view.Load()
	if w.stale(v) {
		why := "no answer"
		if v.err != nil {
			why = v.err.Error()
		}
		if !v.read {
			return fmt.Errorf("kafka backlog unknown, not read in the %s since the start: %s", span(time.Since(v.at)), why)
		}
		return fmt.Errorf("kafka backlog unknown, last read %s ago: %s", span(time.Since(v.at)), why)
	}
	if len(v.problems) == 0 {
		return nil
	}
	return errors.New("kafka backlog near or past retention: " + strings.Join(v.problems, "; "))
}

// stale reports whether v is too old to act on: several rounds missed.
func (w *Watcher) stale(v *view) bool {
	return time.Since(v.at) > 3*w.opts.Interval+w.roundTimeout()
}

func (w *Watcher) roundTimeout() time.Duration { return max(w.opts.Interval, minRoundTimeout) }
