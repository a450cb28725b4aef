package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/kafkatopic"
	"github.com/sluicehq/sluice/ops"
	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks"
	"github.com/sluicehq/sluice/sinks/clickhouse"
	natssink "github.com/sluicehq/sluice/sinks/nats"
	"github.com/sluicehq/sluice/workers"
)

// workPart is the workers' side of a process: the consumer and the sinks it
// delivers to.
type workPart struct {
	consumer *workers.Consumer
	// ready fails while a partition is stopped at a gap, or ClickHouse
	// was never reached.
	ready []ops.Check
	// closers close the sinks, in order, once the consumer has stopped.
	closers []func() error
	// expire drops stored data past --clickhouse-ttl where the server
	// cannot (nil when no TTL is set).
	expire func(context.Context) error
	log    interface{ Warn(string, ...any) }
}

// startWork connects the sinks and builds the consumer: ClickHouse is the
// store, NATS (when configured) an output with its own lane and progress.
func startWork(ctx context.Context, cfg Config, streams *schemas.Registry, byTopic map[string]*schemas.Stream, reg prometheus.Registerer) (*workPart, error) {
	log := cfg.Logger
	w := &workPart{log: log}
	ch := &lazyStore{open: func(ctx context.Context) (*clickhouse.Sink, error) { return openClickHouse(ctx, cfg, streams) }}
	w.closers = append(w.closers, ch.Close)
	if err := ch.checkRefused(ctx); err != nil {
		w.close()
		return nil, err
	}
	if cfg.ClickHouse.Tables.TTL > 0 {
		w.expire = func(ctx context.Context) error {
			s, err := ch.get(ctx)
			if err != nil {
				return err
			}
			return s.DropExpired(ctx, streams.Streams())
		}
	}
	dlq := workers.NewKafkaDLQ(cfg.KafkaBrokers, cfg.Kafka, kafkatopic.DLQ(cfg.TopicPrefix))
	w.closers = append([]func() error{dlq.Close}, w.closers...)
	metrics := workers.NewSinkMetrics(reg)
	store, err := workers.NewStoreDeliverer(workers.StoreConfig{
		Store: ch, DLQ: dlq, DedupeWindow: cfg.DedupeWindow, DedupeMaxIDs: cfg.DedupeMaxIDs, Logger: log, Metrics: metrics,
	})
	if err != nil {
		w.close()
		return nil, err
	}
	var outputs []workers.Deliverer
	if cfg.NATSURL != "" {
		pub, err := natssink.Connect(natssink.Options{
			URL: cfg.NATSURL, TLS: cfg.NATSTLS, User: cfg.NATSUser, Password: cfg.NATSPassword, CredsFile: cfg.NATSCredsFile,
			Prefix: cfg.NATSPrefix, Logger: log, Registerer: reg,
		})
		if err != nil {
			w.close()
			return nil, err
		}
		w.closers = append([]func() error{pub.Close}, w.closers...)
		out, err := workers.NewOutputDeliverer(workers.OutputConfig{
			Output: pub, Progress: workers.NewKafkaProgress(cfg.KafkaBrokers, cfg.Kafka, cfg.GroupID+"."+pub.Name()), DLQ: dlq,
			MaxLag: cfg.NATSMaxLag, Logger: log, Metrics: metrics,
		})
		if err != nil {
			w.close()
			return nil, err
		}
		outputs = append(outputs, out)
	}
	w.consumer, err = workers.NewConsumer(workers.Config{
		Brokers:          cfg.KafkaBrokers,
		Kafka:            cfg.Kafka,
		GroupID:          cfg.GroupID,
		Topics:           byTopic,
		Workers:          cfg.Workers,
		BatchMaxEvents:   cfg.BatchMaxEvents,
		BatchMaxBytes:    cfg.BatchMaxBytes,
		FetchMaxBytes:    cfg.FetchMaxBytes,
		FetchShareBytes:  cfg.FetchShareBytes,
		MaxInFlightBytes: cfg.WorkInFlightBytes,
		BatchLinger:      cfg.BatchLinger,
		SessionTimeout:   cfg.SessionTimeout,
		RebalanceTimeout: cfg.RebalanceTimeout,
		DrainTimeout:     cfg.RebalanceTimeout * 2 / 3,
		DeadLetters:      dlq,
		Logger:           log,
		Registerer:       reg,
	}, store, outputs...)
	if err != nil {
		w.close()
		return nil, err
	}
	w.ready = []ops.Check{
		{Name: "partitions", Ready: w.consumer.CheckGaps},
		{Name: "clickhouse", Ready: ch.ready},
	}
	return w, nil
}

// openClickHouse connects to ClickHouse and creates or checks the tables.
func openClickHouse(ctx context.Context, cfg Config, streams *schemas.Registry) (*clickhouse.Sink, error) {
	ch, err := clickhouse.Open(ctx, cfg.ClickHouse)
	if err != nil {
		return nil, err
	}
	if err := ch.EnsureTables(ctx, streams.Streams()); err != nil {
		ch.Close()
		return nil, err
	}
	cfg.Logger.Info("clickhouse connected", "addr", cfg.ClickHouse.Addr, "version", ch.ServerVersion(), "database", cfg.ClickHouse.Database)
	return ch, nil
}

// lazyStore is the ClickHouse store, connected (and its tables checked) on
// first use rather than at start: a worker started while ClickHouse is down
// still publishes to NATS, and its ClickHouse lanes wait and retry like
// after any failure. /readyz says ClickHouse was never reached meanwhile.
type lazyStore struct {
	open func(context.Context) (*clickhouse.Sink, error)

	mu      sync.Mutex
	sink    *clickhouse.Sink
	lastErr error
}

func (l *lazyStore) get(ctx context.Context) (*clickhouse.Sink, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sink != nil {
		return l.sink, nil
	}
	s, err := l.open(ctx)
	if err != nil {
		l.lastErr = err
		return nil, err
	}
	l.sink, l.lastErr = s, nil
	return s, nil
}

// Write writes through the Sink, connecting first if it never has.
func (l *lazyStore) Write(ctx context.Context, st *schemas.Stream, partition int32, rows []sinks.Row) error {
	s, err := l.get(ctx)
	if err != nil {
		return err
	}
	return s.Write(ctx, st, partition, rows)
}

// Progress asks the Sink, connecting first if it never has.
func (l *lazyStore) Progress(ctx context.Context, st *schemas.Stream, partition int32) (int64, bool, error) {
	s, err := l.get(ctx)
	if err != nil {
		return 0, false, err
	}
	return s.Progress(ctx, st, partition)
}

// Resume asks the Sink, connecting first if it never has.
func (l *lazyStore) Resume(ctx context.Context, st *schemas.Stream, partition int32, window time.Duration, limit int) (sinks.Resumed, error) {
	s, err := l.get(ctx)
	if err != nil {
		return sinks.Resumed{}, err
	}
	return s.Resume(ctx, st, partition, window, limit)
}

// checkRefused connects once, at start-up, so that a refused login or
// certificate stops the process with the reason: the lanes would retry it
// for ever as if ClickHouse were down. Any other failure (ClickHouse not up
// yet) is left to the lanes' retries.
func (l *lazyStore) checkRefused(ctx context.Context) error {
	_, err := l.get(ctx)
	var r *sinks.RefusedError
	if errors.As(err, &r) {
		return r
	}
	return nil
}

// ready fails until ClickHouse was reached once.
func (l *lazyStore) ready(context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sink != nil {
		return nil
	}
	if l.lastErr != nil {
		return fmt.Errorf("not reached yet: %w", l.lastErr)
	}
	return errors.New("not reached yet")
}

// Close closes the connection, if one was made.
func (l *lazyStore) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sink == nil {
		return nil
	}
	return l.sink.Close()
}

// mount serves the operator's action on a partition stopped at a gap:
// POST /gaps/accept?stream=S&partition=N records the loss and reads on.
func (w *workPart) mount(mux *http.ServeMux) {
	mux.HandleFunc("POST /gaps/accept", func(rw http.ResponseWriter, r *http.Request) {
		stream := r.URL.Query().Get("stream")
		part, err := strconv.ParseInt(r.URL.Query().Get("partition"), 10, 32)
		if stream == "" || err != nil {
			ops.WriteJSON(rw, http.StatusBadRequest, map[string]string{"error": "want ?stream=NAME&partition=N"})
			return
		}
		g, err := w.consumer.AcceptGap(stream, int32(part))
		switch {
		case errors.Is(err, workers.ErrNoGap):
			ops.WriteJSON(rw, http.StatusNotFound, map[string]string{"error": err.Error()})
		case err != nil:
			ops.WriteJSON(rw, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		default:
			ops.WriteJSON(rw, http.StatusOK, map[string]string{"accepted": g.String()})
		}
	})
}

// expireEvery is how often stored data past its TTL is dropped: a whole
// day or month partition expires at once, so an hour late is nothing.
const expireEvery = time.Hour

// runExpiry drops stored data past its TTL every expireEvery until ctx
// ends, on servers without table TTLs (ClickHouse 18.16); elsewhere the
// tables' own TTL does it and DropExpired finds nothing to do.
func (w *workPart) runExpiry(ctx context.Context) error {
	if w.expire == nil {
		return nil
	}
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := w.expire(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("drop expired ClickHouse partitions", "err", err.Error())
		}
		t.Reset(expireEvery)
	}
}

// close closes the sinks.
func (w *workPart) close() {
	for _, c := range w.closers {
		if err := c(); err != nil {
			w.log.Warn("close sink", "err", fmt.Sprint(err))
		}
	}
}
