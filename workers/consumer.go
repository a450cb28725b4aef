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
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

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
	// (default 4); it keeps one busy partition from filling the queue.
	MaxInFlight int

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
	def(&c.MaxInFlight, 4)
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
	return &Consumer{cfg: cfg, handler: h, log: cfg.Logger.With("component", "workers"), metrics: newConsumerMetrics(cfg.Registerer)}, nil
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
		ErrorLogger:       kafka.LoggerFunc(func(f string, a ...any) { c.log.Debug(fmt.Sprintf(f, a...), "source", "kafka-go") }),
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
	var inflight sync.WaitGroup
	var lanes sync.WaitGroup
	opened := make([]func(), 0)
	opener, _ := c.handler.(PartitionOpener)

	for topic, assigned := range gen.Assignments {
		st := c.cfg.Topics[topic]
		tr := NewTracker()
		trackers[topic] = tr
		for _, a := range assigned {
			part := int32(a.ID)
			if opener != nil {
				if err := opener.OpenPartition(genCtx, st, part); err != nil {
					if genCtx.Err() == nil {
						c.log.Error("open partition", "topic", topic, "partition", part, "err", err)
					}
					continue
				}
				opened = append(opened, func() { opener.ClosePartition(st, part) })
			}
			tr.Start(part, a.Offset)
			l := &lane{c: c, pool: pool, topic: topic, stream: st, partition: part, start: a.Offset,
				tracker: tr, inflight: &inflight, stop: genCtx, deliverCtx: deliverCtx}
			lanes.Go(l.run)
		}
	}

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

	lanes.Wait()
	drained := make(chan struct{})
	go func() { inflight.Wait(); close(drained) }()
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

// lane reads one partition, cuts batches, and submits them to the pool in
// offset order, chaining each to its predecessor so the pool delivers them in
// that order.
type lane struct {
	c          *Consumer
	pool       *Pool
	topic      string
	stream     *schemas.Stream
	partition  int32
	start      int64
	tracker    *Tracker
	inflight   *sync.WaitGroup
	stop       context.Context
	deliverCtx context.Context
}

func (l *lane) run() {
	cfg := l.c.cfg
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:         cfg.Brokers,
		Topic:           l.topic,
		Partition:       int(l.partition),
		MinBytes:        1,
		MaxBytes:        16 << 20,
		MaxWait:         200 * time.Millisecond,
		QueueCapacity:   1000,
		ReadLagInterval: -1,
		ErrorLogger:     kafka.LoggerFunc(func(f string, a ...any) { l.c.log.Debug(fmt.Sprintf(f, a...), "source", "kafka-go") }),
	})
	defer r.Close()
	if err := r.SetOffset(l.start); err != nil {
		l.c.log.Error("set offset", "topic", l.topic, "partition", l.partition, "offset", l.start, "err", err)
		return
	}

	// The fetch goroutine owns msgs and closes it when it stops.
	msgs := make(chan kafka.Message, 1024)
	go func() {
		defer close(msgs)
		for {
			m, err := r.FetchMessage(l.stop)
			if err != nil {
				if l.stop.Err() == nil {
					l.c.log.Error("fetch", "topic", l.topic, "partition", l.partition, "err", err)
				}
				return
			}
			select {
			case msgs <- m:
			case <-l.stop.Done():
				return
			}
		}
	}()

	slots := make(chan struct{}, cfg.MaxInFlight)
	var prev *job
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
		select {
		case slots <- struct{}{}:
		case <-l.stop.Done():
			return false
		}
		l.inflight.Add(1)
		j := &job{batch: b, stop: l.stop, deliverCtx: l.deliverCtx, prev: prev, done: make(chan struct{})}
		j.finish = func(ok bool) {
			if ok {
				l.tracker.Done(b.Partition, b.First(), b.Last())
				l.c.metrics.delivered.WithLabelValues(b.Stream.Name).Add(float64(len(b.Messages)))
			}
			<-slots
			l.inflight.Done()
		}
		if err := l.pool.submit(j); err != nil {
			l.pool.complete(j, false)
			return false
		}
		prev = j
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

type consumerMetrics struct {
	queued         prometheus.Gauge
	delivered      *prometheus.CounterVec
	deliverSeconds *prometheus.HistogramVec
	commits        prometheus.Counter
}

func newConsumerMetrics(reg prometheus.Registerer) *consumerMetrics {
	m := &consumerMetrics{
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_worker_queue_batches", Help: "Batches waiting for a worker.",
		}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_worker_messages_done_total", Help: "Kafka messages fully handled (written, deduplicated or dead-lettered).",
		}, []string{"stream"}),
		deliverSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_worker_batch_seconds", Help: "Time from a worker taking a batch to its delivery.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}, []string{"stream"}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_worker_offset_commits_total", Help: "Successful offset commits.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.queued, m.delivered, m.deliverSeconds, m.commits)
	}
	return m
}
