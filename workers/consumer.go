// Package workers consumes the stream topics and delivers their events to
// the sinks: a consumer group assigns partitions; each sink (the store and
// every output) gets a lane per partition that reads from the sink's own
// progress, batches, and delivers in order; a bounded pool of workers
// decodes; and the group's offsets are committed only for the contiguous
// prefix that every sink is done with.
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
	"golang.org/x/sync/semaphore"

	"github.com/sluicehq/sluice/backpressure"
	"github.com/sluicehq/sluice/internal/defaults"
	"github.com/sluicehq/sluice/kafkaconn"
	"github.com/sluicehq/sluice/schemas"
)

// DefaultBatchLinger is how long a batch waits to fill by default. One
// INSERT a second per partition is what ClickHouse advises (many small
// INSERTs make many small parts for it to merge); at 20,000 events/s a
// quarter of a second cost the work role a tenth more CPU per event in
// INSERTs and rollup rows. Events are visible in ClickHouse about this
// long after they arrive when the rate is low.
const DefaultBatchLinger = time.Second

// Config configures a Consumer. Zero values take the defaults noted.
type Config struct {
	Brokers []string
	// Kafka is the TLS and SASL of every connection the consumer makes:
	// the group's, the lanes' readers' and its offset queries. Zero is
	// plaintext.
	Kafka kafkaconn.Security
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
	// whatever the number of partitions. It is split evenly between the
	// sinks, so that one sink down cannot take the others' room.
	MaxInFlightBytes int64

	// FetchMaxBytes is the most bytes one fetch of a lane's reader asks
	// for (kafka-go's MaxBytes; default 2 MiB). Every sink reads every
	// assigned partition on a reader of its own, so the fetches of all
	// readers together are outside MaxInFlightBytes: keep it small, but at
	// least Kafka's message.max.bytes, or a whole record batch may not fit.
	FetchMaxBytes int

	// FetchShareBytes is how much of what its lanes fetched each partition
	// keeps for its lanes that are behind (fetchShare; default 512 KiB),
	// when more than one sink reads it. Negative keeps nothing: each lane
	// reads everything from Kafka.
	FetchShareBytes int

	// BatchMaxEvents, BatchMaxBytes and BatchLinger close a batch at this
	// many events (default 10,000), this many value bytes (default 8 MiB), or
	// this long after its first message (default DefaultBatchLinger).
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

	// DeadLetters, when set, records the ranges lost to Kafka retention.
	DeadLetters DeadLetterWriter

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() {
	defaults.Set(&c.GroupID, "sluice-workers")
	defaults.Positive(&c.Workers, 8)
	defaults.Positive(&c.QueueDepth, 2*c.Workers)
	defaults.Positive(&c.MaxInFlight, 2)
	defaults.Positive(&c.MaxInFlightBytes, 64<<20)
	defaults.Positive(&c.FetchMaxBytes, 2<<20)
	defaults.Set(&c.FetchShareBytes, DefaultFetchShareBytes) // negative: none
	defaults.Positive(&c.BatchMaxEvents, 10_000)
	defaults.Positive(&c.BatchMaxBytes, 8<<20)
	defaults.Positive(&c.BatchLinger, DefaultBatchLinger)
	defaults.Positive(&c.CommitInterval, time.Second)
	defaults.Positive(&c.SessionTimeout, 10*time.Second)
	defaults.Positive(&c.RebalanceTimeout, 30*time.Second)
	defaults.Positive(&c.DrainTimeout, 20*time.Second)
	defaults.Set(&c.Logger, slog.Default())
}

// Consumer is a member of the worker consumer group.
type Consumer struct {
	cfg     Config
	sinks   []Deliverer // the store first, then the outputs
	log     *slog.Logger
	gaps    *gaps
	metrics *consumerMetrics
	// dialer connects the group, readerDialer the lanes' readers (with a
	// larger read buffer, see bufferedReads), with cfg.Kafka.
	dialer, readerDialer *kafka.Dialer
	// budgets hold MaxInFlightBytes, split evenly between the sinks, by
	// sink index; a batch takes its bytes from its sink's. Apart, so that
	// the batches of a sink that is down cannot take the room of the others.
	budgets    []*semaphore.Weighted
	budgetSize int64
	// newFetcher, when set (by tests), replaces the lanes' partitionReaders.
	newFetcher func(topic string, partition int32) fetcher
	// logStart returns the first offset Kafka holds of a partition; nil
	// (tests with fake readers) skips the lanes' checks of it.
	logStart func(ctx context.Context, topic string, partition int32) (int64, error)
}

// NewConsumer returns a consumer that delivers to store and outputs.
func NewConsumer(cfg Config, store Deliverer, outputs ...Deliverer) (*Consumer, error) {
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
	if store == nil {
		return nil, errors.New("workers: no store")
	}
	metrics := newConsumerMetrics(cfg.Registerer)
	c := &Consumer{cfg: cfg, sinks: append([]Deliverer{store}, outputs...), log: cfg.Logger.With("component", "workers"),
		gaps: newGaps(metrics), metrics: metrics}
	c.dialer = cfg.Kafka.Dialer("sluice-workers", 10*time.Second)
	c.readerDialer = bufferedReads(c.dialer, fetchReadBuffer)
	c.logStart = kafkaLogStart(cfg.Kafka.Client(cfg.Brokers, 10*time.Second))
	c.budgetSize = max(1, cfg.MaxInFlightBytes/int64(len(c.sinks)))
	for range c.sinks {
		c.budgets = append(c.budgets, semaphore.NewWeighted(c.budgetSize))
	}
	return c, nil
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
		Dialer:            c.dialer,
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
	pool := NewPool(c.cfg.Workers, c.cfg.QueueDepth, c.metrics)
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

// kafkaLogStart asks the brokers, through client, for a partition's first
// offset.
func kafkaLogStart(client *kafka.Client) func(ctx context.Context, topic string, partition int32) (int64, error) {
	return func(ctx context.Context, topic string, partition int32) (int64, error) {
		resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{
			Topics: map[string][]kafka.OffsetRequest{topic: {kafka.FirstOffsetOf(int(partition))}},
		})
		if err != nil {
			return 0, err
		}
		for _, p := range resp.Topics[topic] {
			if p.Partition == int(partition) {
				if p.Error != nil {
					return 0, p.Error
				}
				return p.FirstOffset, nil
			}
		}
		return 0, fmt.Errorf("no offsets of %s/%d in the answer", topic, partition)
	}
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
// them in every sink, runs a lane per partition and sink, commits
// periodically, and on the generation's end waits for in-flight deliveries
// before it returns.
func (c *Consumer) runGeneration(genCtx context.Context, gen *kafka.Generation, pool *Pool) {
	// Deliveries already running when the generation ends may finish, for at
	// most DrainTimeout; then they are cancelled.
	deliverCtx, cancelDeliver := context.WithCancel(context.Background())
	defer cancelDeliver()

	nassigned := 0
	for _, a := range gen.Assignments {
		nassigned += len(a)
	}
	c.metrics.generations.Inc()
	c.metrics.assigned.Set(float64(nassigned))
	defer c.metrics.assigned.Set(0)

	progress := newProgress(c.sinks)
	var lanes sync.WaitGroup
	for topic, assigned := range gen.Assignments {
		for _, a := range assigned {
			p := &Partition{Topic: topic, Stream: c.cfg.Topics[topic], ID: int32(a.ID), Committed: a.Offset, Assigned: nassigned,
				Outputs: len(c.sinks) - 1}
			if len(c.sinks) > 1 {
				p.fetched = newFetchShare(int64(c.cfg.FetchShareBytes))
			}
			if wm, ok := c.sinks[0].(windowMaker); ok {
				p.window = wm.newWindow(p)
			}
			for i, sink := range c.sinks {
				l := &lane{c: c, pool: pool, sink: sink, part: p, output: i > 0, budget: c.budgets[i],
					tracker: progress.tracker(i, topic), stop: genCtx, deliverCtx: deliverCtx}
				// Each lane opens on its own: a sink that is down (its
				// progress unknown) holds back no other sink, and no other
				// partition.
				lanes.Go(func() {
					start, err := c.open(genCtx, sink, p)
					if err != nil {
						return // the generation ended
					}
					l.start = start
					l.tracker.Start(p.ID, start)
					l.run()
				})
			}
		}
	}

	ticker := time.NewTicker(c.cfg.CommitInterval)
	defer ticker.Stop()
	for done := false; !done; {
		select {
		case <-genCtx.Done():
			done = true
		case <-ticker.C:
			c.commit(gen, progress)
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
	c.commit(gen, progress)
	c.log.Info("generation ended", "generation", gen.ID)
}

// open opens an assigned partition in a sink, retrying with backoff until
// it works or the generation ends: a partition skipped would stay unread,
// assigned to this worker, until the next rebalance.
func (c *Consumer) open(genCtx context.Context, sink Deliverer, p *Partition) (int64, error) {
	what := fmt.Sprintf("open partition %s/%d in %s", p.Topic, p.ID, sink.Name())
	var start int64
	err := backpressure.Retry(genCtx, c.log, what, backpressure.DefaultRetry, func(ctx context.Context) error {
		var err error
		start, err = sink.Open(ctx, p)
		if err != nil && ctx.Err() == nil {
			c.metrics.openErrors.WithLabelValues(p.Stream.Name).Inc()
		}
		return err
	})
	return start, err
}

// commit sends, for every partition that moved, the contiguous prefix that
// every sink is done with, and saves each output's own progress. A failed
// commit costs only a replay, which the sinks filter, so it is logged and
// retried at the next tick.
func (c *Consumer) commit(gen *kafka.Generation, p *progress) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, sink := range c.sinks {
		saver, ok := sink.(progressSaver)
		if !ok {
			continue
		}
		for topic, tr := range p.bySink[i] {
			for part, next := range tr.Committable() {
				if err := saver.SaveProgress(ctx, topic, part, next-1); err != nil {
					c.log.Warn("save output progress", "sink", sink.Name(), "topic", topic, "partition", part, "err", err)
					continue
				}
				tr.Committed(map[int32]int64{part: next})
			}
		}
	}
	offsets := p.committable()
	if len(offsets) == 0 {
		return
	}
	if err := gen.CommitOffsets(offsets); err != nil {
		c.log.Warn("commit offsets", "err", err, "offsets", offsets)
		return
	}
	p.committed(offsets)
	c.metrics.commits.Inc()
}

type consumerMetrics struct {
	lag            *prometheus.GaugeVec
	gap            *prometheus.GaugeVec
	generations    prometheus.Counter
	assigned       prometheus.Gauge
	queued         prometheus.Gauge
	delivered      *prometheus.CounterVec
	deliverSeconds *prometheus.HistogramVec
	commits        prometheus.Counter
	fetchErrors    *prometheus.CounterVec
	openErrors     *prometheus.CounterVec
	fetched        *prometheus.CounterVec
}

func newConsumerMetrics(reg prometheus.Registerer) *consumerMetrics {
	m := &consumerMetrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_worker_lag_messages", Help: "Messages of the partition not yet read by the sink's lane on this worker, as of its last fetch: each sink's progress lag.",
		}, []string{"sink", "stream", "partition"}),
		gap: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_worker_gap_messages", Help: "Offsets lost to Kafka retention before the store had them, at which the partition is stopped until an operator accepts the loss (0 when none).",
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
			Name: "sluice_worker_messages_done_total", Help: "Kafka messages a sink is done with (written, deduplicated, dead-lettered or skipped).",
		}, []string{"sink", "stream"}),
		deliverSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_worker_batch_seconds", Help: "Time to deliver one batch to a sink, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}, []string{"sink", "stream"}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_worker_offset_commits_total", Help: "Successful offset commits.",
		}),
		fetchErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_worker_fetch_errors_total", Help: "Failed reads of an assigned partition, each retried after a backoff on a new reader.",
		}, []string{"stream"}),
		openErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_worker_open_partition_errors_total", Help: "Failed attempts to open an assigned partition (find where it resumes in the sinks), each retried after a backoff.",
		}, []string{"stream"}),
		fetched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_worker_fetched_messages_total", Help: "Messages a sink's lanes read, from Kafka or (from=\"shared\") from what another sink's lane of the partition had just fetched.",
		}, []string{"sink", "stream", "from"}),
	}
	if reg != nil {
		reg.MustRegister(m.lag, m.gap, m.generations, m.assigned, m.queued, m.delivered, m.deliverSeconds, m.commits, m.fetchErrors, m.openErrors, m.fetched)
	}
	return m
}
