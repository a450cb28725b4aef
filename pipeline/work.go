package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/kafkatopic"
	"github.com/sluicehq/sluice/ops"
	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks/clickhouse"
	natssink "github.com/sluicehq/sluice/sinks/nats"
	"github.com/sluicehq/sluice/workers"
)

// workPart is the workers' side of a process: the consumer and the sinks it
// delivers to.
type workPart struct {
	consumer *workers.Consumer
	// ready fails while a partition is stopped at a gap.
	ready ops.Check
	// closers close the sinks, in order, once the consumer has stopped.
	closers []func() error
	log     interface{ Warn(string, ...any) }
}

// startWork connects the sinks and builds the consumer: ClickHouse is the
// store, NATS (when configured) an output with its own lane and progress.
func startWork(ctx context.Context, cfg Config, streams *schemas.Registry, byTopic map[string]*schemas.Stream, reg prometheus.Registerer) (*workPart, error) {
	log := cfg.Logger
	w := &workPart{log: log}
	ch, err := openClickHouse(ctx, cfg, streams)
	if err != nil {
		return nil, err
	}
	w.closers = append(w.closers, ch.Close)
	dlq := workers.NewKafkaDLQ(cfg.KafkaBrokers, kafkatopic.DLQ(cfg.TopicPrefix))
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
		pub, err := natssink.Connect(natssink.Options{URL: cfg.NATSURL, Prefix: cfg.NATSPrefix, Logger: log, Registerer: reg})
		if err != nil {
			w.close()
			return nil, err
		}
		w.closers = append([]func() error{pub.Close}, w.closers...)
		out, err := workers.NewOutputDeliverer(workers.OutputConfig{
			Output: pub, Progress: workers.NewKafkaProgress(cfg.KafkaBrokers, cfg.GroupID+"."+pub.Name()), DLQ: dlq,
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
		GroupID:          cfg.GroupID,
		Topics:           byTopic,
		Workers:          cfg.Workers,
		BatchMaxEvents:   cfg.BatchMaxEvents,
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
	w.ready = ops.Check{Name: "partitions", Ready: w.consumer.CheckGaps}
	return w, nil
}

// openClickHouse connects to ClickHouse and creates or checks the tables,
// waiting for it to come up.
func openClickHouse(ctx context.Context, cfg Config, streams *schemas.Registry) (*clickhouse.Sink, error) {
	log := cfg.Logger
	var ch *clickhouse.Sink
	if err := waitFor(ctx, log, "connect to ClickHouse at "+cfg.ClickHouse.Addr, func(ctx context.Context) error {
		var err error
		ch, err = clickhouse.Open(ctx, cfg.ClickHouse)
		return err
	}); err != nil {
		return nil, err
	}
	log.Info("clickhouse connected", "addr", cfg.ClickHouse.Addr, "version", ch.ServerVersion(), "database", cfg.ClickHouse.Database)
	if err := waitFor(ctx, log, "create ClickHouse tables", func(ctx context.Context) error {
		return ch.EnsureTables(ctx, streams.Streams())
	}); err != nil {
		ch.Close()
		return nil, err
	}
	return ch, nil
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

// close closes the sinks.
func (w *workPart) close() {
	for _, c := range w.closers {
		if err := c(); err != nil {
			w.log.Warn("close sink", "err", fmt.Sprint(err))
		}
	}
}
