package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/schemas"
)

// DropExpired applies the TTL of the Sink's TableOptions where the table
// has no TTL of its own (servers before 22.8, and tables created on them):
// it drops each time partition whose newest row was stored longer ago than
// the TTL, with ALTER TABLE ... DROP PARTITION, and logs it. Without a TTL
// it does nothing. Tables of the previous layout (partitioned by
// kafka_partition) are left alone: they have no time partitions.
//
// Only whole partitions go, the oldest first, and stored_at never goes
// back within a Kafka partition, so what remains of each Kafka partition
// is the newest part of it: its highest offset stays where Progress finds
// it, until all its rows have expired (then Progress reports none, and the
// worker resumes from Kafka's committed offset). The pipeline runs it
// periodically (hourly is plenty; a partition expires at most a day or a
// month late), from any number of processes: dropping a partition already
// gone does nothing. A stream's rollup table keeps twice the TTL, dropped
// the same way. ClickHouse refuses to drop a partition larger than the
// server's max_partition_size_to_drop (50 GB by default); the error says so.
func (s *Sink) DropExpired(ctx context.Context, streams []*schemas.Stream) error {
	if s.opts.TTL <= 0 {
		return nil
	}
	horizon := s.now().Add(-time.Duration(s.opts.ttlDays()) * 24 * time.Hour)
	var errs []error
	for _, st := range streams {
		if err := s.dropExpired(ctx, st, horizon); err != nil {
			errs = append(errs, fmt.Errorf("clickhouse: retention of %s.%s: %w", s.db, st.Table, err))
		}
		if err := s.dropExpiredRollup(ctx, st); err != nil {
			errs = append(errs, fmt.Errorf("clickhouse: retention of the rollup of %s.%s: %w", s.db, st.Table, err))
		}
	}
	return errors.Join(errs...)
}

func (s *Sink) dropExpired(ctx context.Context, st *schemas.Stream, horizon time.Time) error {
	lay, err := s.reloadLayout(ctx, st)
	if err != nil {
		return err
	}
	if !lay.byTime || lay.ownTTL {
		return nil
	}
	return s.dropPartitionsBefore(ctx, st.Table, horizon, s.opts.ttlDays())
}

// dropPartitionsBefore drops each time partition of the table whose newest
// row was stored before horizon, and logs it with the retention in days.
func (s *Sink) dropPartitionsBefore(ctx context.Context, table string, horizon time.Time, days int) error {
	parts, err := s.activeParts(ctx, table)
	if err != nil {
		return err
	}
	for _, p := range timeParts(parts) {
		if !p.max.Before(horizon) {
			continue
		}
		q := fmt.Sprintf("ALTER TABLE %s DROP PARTITION ID '%s'", TableName(s.db, table), p.id)
		if err := s.conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("drop partition %s: %w", p.id, err)
		}
		s.log.Info("dropped an expired partition", "table", s.db+"."+table, "partition", p.id,
			"newest_stored_at", p.max.UTC(), "ttl_days", days)
	}
	return nil
}
