// Package workers consumes the stream topics and delivers their events to
// the sinks: a consumer group assigns partitions, one lane per partition reads
// and batches, a bounded pool of workers decodes and delivers, and offsets are
// committed only for the contiguous prefix of what the sinks acknowledged.
package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/semaphore"

	"github.com/sluicehq/sluice/backpressure"
	"github.com/sluicehq/sluice/schemas"
)

// Config configures a Consumer. Zero values take the defaults noted.
type Config struct {
	Brokers []string
	// GroupID names the consumer group (default "sluice-workers").
	GroupID string
	// Topics maps each topic to consume to its stream.
	Topics map[string]*schemas.Stream

	// Workers is the number of pool workers (default 8).
	Workers int
	// QueueDepth bounds the batches waiting for a worker (default 2*Workers).
	QueueDepth int
	// MaxInFlight bounds the batches of one partition queued or in work
	// (default 2: one delivering while the next is decoded); it keeps one
	// busy partition from filling the queue.
	MaxInFlight int
	// MaxInFlightBytes bounds the message bytes of all batches queued or in
	// work, across partitions (default 64 MiB). Decoded events take a few
	// times their encoded size, so this is what bounds the workers' memory
	// whatever the number of partitions.
	MaxInFlightBytes int64

	// BatchMaxEvents, BatchMaxBytes and BatchLinger close a batch at this
	// many events (default 10,000), this many value bytes (default 8 MiB), or
	// this long after its first message (default 250 ms).
	BatchMaxEvents int
	BatchMaxBytes  int
	BatchLinger    time.Duration

	// CommitInterval is how often done offsets are committed (default 1 s).
	CommitInterval time.Duration
	// SessionTimeout is how long the group waits for a silent member before
	// giving its partitions away (default 10 s).
	SessionTimeout time.Duration
	// RebalanceTimeout bounds how long members may take to rejoin (default 30 s).
	RebalanceTimeout time.Duration
	// DrainTimeout bounds how long a revoked partition's in-flight delivery
	// may still run (default 20 s); it must stay below RebalanceTimeout.
	DrainTimeout time.Duration

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.GroupID == "" {
		c.GroupID = "sluice-workers"
	}
	def(&c.Workers, 8)
	def(&c.QueueDepth, 2*c.Workers)
	def(&c.MaxInFlight, 2)
	if c.MaxInFlightBytes <= 0 {
		c.MaxInFlightBytes = 64 << 20
	}
	def(&c.BatchMaxEvents, 10_000)
	def(&c.BatchMaxBytes, 8<<20)
	defDur(&c.BatchLinger, 250*time.Millisecond)
	defDur(&c.CommitInterval, time.Second)
	defDur(&c.SessionTimeout, 10*time.Second)
	defDur(&c.RebalanceTimeout, 30*time.Second)
	defDur(&c.DrainTimeout, 20*time.Second)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// PartitionOpener is implemented by handlers that keep per-partition state.
// The consumer calls OpenPartition before the first batch of a newly
// assigned partition and ClosePartition after its last.
type PartitionOpener interface {
	OpenPartition(ctx context.Context, st *schemas.Stream, partition int32) error
	ClosePartition(st *schemas.Stream, partition int32)
}

// Consumer is a member of the worker consumer group.
type Consumer struct {
	cfg     Config
	handler Handler
	log     *slog.Logger
	metrics *consumerMetrics
	// budget holds MaxInFlightBytes; a batch takes its bytes from it.
	budget *semaphore.Weighted
	// newFetcher, when set (by tests), replaces the lanes' kafka-go readers.
	newFetcher func(topic string, partition int32) fetcher
}

// NewConsumer returns a consumer that hands batches to h.
func NewConsumer(cfg Config, h Handler) (*Consumer, error) {
	cfg.setDefaults()
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("workers: no Kafka brokers")
	}
	if len(cfg.Topics) == 0 {
		return nil, errors.New("workers: no topics")
	}
	if cfg.DrainTimeout >= cfg.RebalanceTimeout {
		return nil, fmt.Errorf("workers: drain timeout %s must be below the rebalance timeout %s", cfg.DrainTimeout, cfg.RebalanceTimeout)
	}
	return &Consumer{cfg: cfg, handler: h, log: cfg.Logger.With("component", "workers"),
		metrics: newConsumerMetrics(cfg.Registerer), budget: semaphore.NewWeighted(cfg.MaxInFlightBytes)}, nil
}

// Run consumes until ctx ends, then lets in-flight deliveries finish (up to
// DrainTimeout), commits, and leaves the group.
func (c *Consumer) Run(ctx context.Context) error {
	topics := make([]string, 0, len(c.cfg.Topics))
	for t := range c.cfg.Topics {
		topics = append(topics, t)
	}
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                c.cfg.GroupID,
		Brokers:           c.cfg.Brokers,
		Topics:            topics,
		SessionTimeout:    c.cfg.SessionTimeout,
		RebalanceTimeout:  c.cfg.RebalanceTimeout,
		HeartbeatInterval: c.cfg.SessionTimeout / 4,
		StartOffset:       kafka.FirstOffset,
		JoinGroupBackoff:  time.Second,
		// Partitions added to a stream's topic are read too: the group
		// rebalances when a topic's partition count changes, instead of
		// leaving the new partitions unassigned until the next rebalance.
		WatchPartitionChanges:  true,
		PartitionWatchInterval: 10 * time.Second,
		ErrorLogger:            kafka.LoggerFunc(func(f string, a ...any) { c.log.Debug(fmt.Sprintf(f, a...), "source", "kafka-go") }),
	})
	if err != nil {
		return fmt.Errorf("workers: join group %s: %w", c.cfg.GroupID, err)
	}

	poolCtx, stopPool := context.WithCancel(context.Background())
	pool := NewPool(c.cfg.Workers, c.cfg.QueueDepth, c.handler, c.metrics)
	poolDone := make(chan struct{})
	go func() { defer close(poolDone); pool.Run(poolCtx) }()

	// Closing the group ends the current generation and waits for its
	// function, which drains; so it must happen when ctx ends, not later.
	stopWatch := context.AfterFunc(ctx, func() { group.Close() })
	defer stopWatch()

	for {
		gen, err := group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				break
			}
			c.log.Warn("consumer group: waiting for a generation", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		c.log.Info("consumer group: new generation", "generation", gen.ID, "member", gen.MemberID, "assignments", describe(gen.Assignments))
		// One function per generation: kafka-go ends the generation when
		// any function returns and waits for all before rejoining.
		gen.Start(func(genCtx context.Context) { c.runGeneration(genCtx, gen, pool) })
	}
	group.Close()
	stopPool()
	<-poolDone
	c.log.Info("consumer stopped")
	return nil
}

func describe(a map[string][]kafka.PartitionAssignment) map[string][]int {
	out := make(map[string][]int, len(a))
	for t, ps := range a {
		for _, p := range ps {
			out[t] = append(out[t], p.ID)
		}
	}
	return out
}

// runGeneration owns the partitions assigned in one generation: it opens
// them, runs a lane for each, commits periodically, and on the generation's
// end waits for in-flight deliveries before it returns.
func (c *Consumer) runGeneration(genCtx context.Context, gen *kafka.Generation, pool *Pool) {
	// Deliveries already running when the generation ends may finish, for at
	// most DrainTimeout; then they are cancelled.
	deliverCtx, cancelDeliver := context.WithCancel(context.Background())
	defer cancelDeliver()

	trackers := make(map[string]*Tracker)
	var lanes sync.WaitGroup
	var opened []func()
	opener, _ := c.handler.(PartitionOpener)

	for topic, assigned := range gen.Assignments {
		st := c.cfg.Topics[topic]
		tr := NewTracker()
		trackers[topic] = tr
		for _, a := range assigned {
			part := int32(a.ID)
			if opener != nil {
				if err := c.open(genCtx, opener, st, topic, part); err != nil {
					continue // the generation ended
				}
				opened = append(opened, func() { opener.ClosePartition(st, part) })
			}
			tr.Start(part, a.Offset)
			l := &lane{c: c, pool: pool, topic: topic, stream: st, partition: part, start: a.Offset,
				tracker: tr, stop: genCtx, deliverCtx: deliverCtx}
			lanes.Go(l.run)
		}
	}

	nassigned := 0
	for _, a := range gen.Assignments {
		nassigned += len(a)
	}
	c.metrics.generations.Inc()
	c.metrics.assigned.Set(float64(nassigned))
	defer c.metrics.assigned.Set(0)

	ticker := time.NewTicker(c.cfg.CommitInterval)
	defer ticker.Stop()
	for done := false; !done; {
		select {
		case <-genCtx.Done():
			done = true
		case <-ticker.C:
			c.commit(gen, trackers)
		}
	}

	drained := make(chan struct{})
	go func() { lanes.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(c.cfg.DrainTimeout):
		c.log.Warn("drain timeout: cancelling in-flight deliveries", "timeout", c.cfg.DrainTimeout)
		cancelDeliver()
		<-drained
	}
	c.commit(gen, trackers)
	for _, close := range opened {
		close()
	}
	c.log.Info("generation ended", "generation", gen.ID)
}

// open opens an assigned partition, retrying with backoff until it works or
// the generation ends: a partition skipped would stay unread, assigned to
// this worker, until the next rebalance.
func (c *Consumer) open(genCtx context.Context, opener PartitionOpener, st *schemas.Stream, topic string, part int32) error {
	what := fmt.Sprintf("open partition %s/%d", topic, part)
	return backpressure.Retry(genCtx, c.log, what, backpressure.DefaultRetry, func(ctx context.Context) error {
		err := opener.OpenPartition(ctx, st, part)
		if err != nil && ctx.Err() == nil {
			c.metrics.openErrors.WithLabelValues(st.Name).Inc()
		}
		return err
	})
}

// commit sends the done prefix of every partition that moved. A failed
// commit costs only a replay, which the handler filters, so it is logged and
// retried at the next tick.
func (c *Consumer) commit(gen *kafka.Generation, trackers map[string]*Tracker) {
	offsets := make(map[string]map[int]int64)
	pending := make(map[string]map[int32]int64)
	for topic, tr := range trackers {
		ready := tr.Committable()
		if len(ready) == 0 {
			continue
		}
		pending[topic] = ready
		offsets[topic] = make(map[int]int64, len(ready))
		for p, off := range ready {
			offsets[topic][int(p)] = off
		}
	}
	if len(offsets) == 0 {
		return
	}
	if err := gen.CommitOffsets(offsets); err != nil {
		c.log.Warn("commit offsets", "err", err, "offsets", offsets)
		return
	}
	for topic, ready := range pending {
		trackers[topic].Committed(ready)
	}
	c.metrics.commits.Inc()
}

// lane reads one partition, cuts batches, has the pool decode them, and
// delivers them in offset order. Three goroutines work for a lane: the
// fetcher (owns msgs), the batcher (run itself; owns ordered), and the
// deliverer, the only one that calls Deliver for the partition.
type lane struct {
	c          *Consumer
	pool       *Pool
	topic      string
	stream     *schemas.Stream
	partition  int32
	start      int64
	tracker    *Tracker
	stop       context.Context
	deliverCtx context.Context
}

func (l *lane) run() {
	cfg := l.c.cfg
	msgs := make(chan kafka.Message, 256)
	go l.fetch(msgs)

	// ordered holds the lane's jobs in offset order; its capacity is what
	// bounds the partition's batches in flight.
	ordered := make(chan *job, cfg.MaxInFlight-1)
	delivered := make(chan struct{})
	go func() {
		defer close(delivered)
		l.deliver(ordered)
	}()
	l.batch(msgs, ordered)
	close(ordered)
	<-delivered
}

// fetcher is what a lane reads a partition with: a *kafka.Reader, or a fake
// in tests.
type fetcher interface {
	SetOffset(offset int64) error
	FetchMessage(ctx context.Context) (kafka.Message, error)
	Close() error
}

// newReader is a reader of the lane's partition.
func (l *lane) newReader() fetcher {
	if l.c.newFetcher != nil {
		return l.c.newFetcher(l.topic, l.partition)
	}
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers:   l.c.cfg.Brokers,
		Topic:     l.topic,
		Partition: int(l.partition),
		MinBytes:  1,
		// Small fetches keep a lane's read-ahead, which is outside the byte
		// budget, to a few MiB per partition.
		MaxBytes:        2 << 20,
		MaxWait:         200 * time.Millisecond,
		QueueCapacity:   256,
		ReadLagInterval: -1,
		ErrorLogger:     kafka.LoggerFunc(func(f string, a ...any) { l.c.log.Debug(fmt.Sprintf(f, a...), "source", "kafka-go") }),
	})
}

// fetchRetry is how long a lane waits before reading again after a failed
// read: it doubles from Initial up to Max while reads keep failing.
var fetchRetry = struct{ Initial, Max time.Duration }{100 * time.Millisecond, 5 * time.Second}

// fetch reads the partition into msgs, and closes msgs, when the lane
// stops. A failed read never ends it while the partition is assigned: a
// lane that ended would leave the partition unread until the next
// rebalance. The failure is logged and counted, and reading resumes at the
// next offset on a new reader after a backoff.
func (l *lane) fetch(msgs chan<- kafka.Message) {
	defer close(msgs)
	part := strconv.Itoa(int(l.partition))
	lag := l.c.metrics.lag.WithLabelValues(l.stream.Name, part)
	defer l.c.metrics.lag.DeleteLabelValues(l.stream.Name, part)
	next, wait := l.start, fetchRetry.Initial
	for {
		r := l.newReader()
		err := r.SetOffset(next)
		for err == nil {
			var m kafka.Message
			if m, err = r.FetchMessage(l.stop); err != nil {
				break
			}
			wait = fetchRetry.Initial
			lag.Set(float64(max(0, m.HighWaterMark-m.Offset-1)))
			next = m.Offset + 1
			select {
			case msgs <- m:
			case <-l.stop.Done():
				err = l.stop.Err()
			}
		}
		_ = r.Close()
		if l.stop.Err() != nil {
			return
		}
		l.c.metrics.fetchErrors.WithLabelValues(l.stream.Name).Inc()
		l.c.log.Error("fetch failed; reading the partition again after a pause", "topic", l.topic, "partition", l.partition,
			"offset", next, "retry_in", wait, "err", err)
		select {
		case <-time.After(wait):
		case <-l.stop.Done():
			return
		}
		wait = min(2*wait, fetchRetry.Max)
	}
}

// batch cuts msgs into batches by count, bytes and time, and hands each to
// the pool and, in order, to the deliverer.
func (l *lane) batch(msgs <-chan kafka.Message, ordered chan<- *job) {
	cfg := l.c.cfg
	var cur *Batch
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	defer linger.Stop()

	flush := func() bool {
		if cur == nil {
			return true
		}
		b := cur
		cur = nil
		linger.Stop()
		if err := l.c.budget.Acquire(l.stop, l.weight(b)); err != nil {
			return false
		}
		j := &job{batch: b, stop: l.stop, prepared: make(chan struct{})}
		select {
		case ordered <- j:
		case <-l.stop.Done():
			l.c.budget.Release(l.weight(b))
			return false
		}
		if err := l.pool.submit(j); err != nil {
			// The deliverer sees stop and abandons it.
			close(j.prepared)
			return false
		}
		return true
	}

	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				return
			}
			if cur == nil {
				cur = &Batch{Topic: l.topic, Stream: l.stream, Partition: l.partition}
				linger.Reset(cfg.BatchLinger)
			}
			cur.Messages = append(cur.Messages, Message{Offset: m.Offset, Key: m.Key, Value: m.Value, Time: m.Time})
			cur.Bytes += len(m.Value)
			if len(cur.Messages) >= cfg.BatchMaxEvents || cur.Bytes >= cfg.BatchMaxBytes {
				if !flush() {
					return
				}
			}
		case <-linger.C:
			if !flush() {
				return
			}
		case <-l.stop.Done():
			return
		}
	}
}

// weight is what a batch takes from the byte budget: its size, capped so
// that one batch larger than the whole budget still gets through alone.
func (l *lane) weight(b *Batch) int64 {
	return min(int64(b.Bytes)+1, l.c.cfg.MaxInFlightBytes)
}

// deliver delivers the lane's jobs one at a time, in order. Once the
// partition is revoked, jobs not yet started are abandoned; a delivery
// already running finishes (bounded by deliverCtx), because abandoning an
// INSERT half way would leave it unknown whether ClickHouse stored it while
// the next owner already reads.
func (l *lane) deliver(ordered <-chan *job) {
	abandoned := false
	for j := range ordered {
		b := j.batch
		if !abandoned {
			select {
			case <-j.prepared:
			case <-l.stop.Done():
			}
			abandoned = l.stop.Err() != nil
		}
		if !abandoned {
			start := time.Now()
			if err := l.c.handler.Deliver(l.deliverCtx, b); err != nil {
				abandoned = true
				l.c.log.Warn("delivery abandoned", "topic", l.topic, "partition", l.partition, "first", b.First(), "err", err)
			} else {
				l.tracker.Done(b.Partition, b.First(), b.Last())
				l.c.metrics.delivered.WithLabelValues(b.Stream.Name).Add(float64(len(b.Messages)))
				l.c.metrics.deliverSeconds.WithLabelValues(b.Stream.Name).Observe(time.Since(start).Seconds())
			}
		}
		l.c.budget.Release(l.weight(b))
	}
}

type consumerMetrics struct {
	lag            *prometheus.GaugeVec
	generations    prometheus.Counter
	assigned       prometheus.Gauge
	queued         prometheus.Gauge
	delivered      *prometheus.CounterVec
	deliverSeconds *prometheus.HistogramVec
	commits        prometheus.Counter
	fetchErrors    *prometheus.CounterVec
	openErrors     *prometheus.CounterVec
}

func newConsumerMetrics(reg prometheus.Registerer) *consumerMetrics {
	m := &consumerMetrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_worker_lag_messages", Help: "Messages of the partition not yet read by this worker, as of the last fetch.",
		}, []string{"stream", "partition"}),
		generations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_worker_generations_total", Help: "Consumer group generations this worker took part in (each rebalance starts one).",
		}),
		assigned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_worker_assigned_partitions", Help: "Partitions this worker owns in the current generation.",
		}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_worker_queue_batches", Help: "Batches waiting for a worker.",
		}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_worker_messages_done_total", Help: "Kafka messages fully handled (written, deduplicated or dead-lettered).",
		}, []string{"stream"}),
		deliverSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_worker_batch_seconds", Help: "Time to deliver one batch to the sinks.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}, []string{"stream"}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_worker_offset_commits_total", Help: "Successful offset commits.",
		}),
		fetchErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_worker_fetch_errors_total", Help: "Failed reads of an assigned partition, each retried after a backoff on a new reader.",
		}, []string{"stream"}),
		openErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_worker_open_partition_errors_total", Help: "Failed attempts to open an assigned partition (find where it resumes in the sinks), each retried after a backoff.",
		}, []string{"stream"}),
	}
	if reg != nil {
		reg.MustRegister(m.lag, m.generations, m.assigned, m.queued, m.delivered, m.deliverSeconds, m.commits, m.fetchErrors, m.openErrors)
	}
	return m
}
