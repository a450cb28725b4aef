package clickhouse

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/sluicehq/sluice/schemas"
)

// Settling an INSERT whose outcome the client does not know.
//
// An INSERT can fail on the client's side (connection dropped, context
// cancelled by a drain timeout) while the server goes on and commits the
// part. If Write returned then and its caller asked Progress, the answer
// could be overtaken by that commit, and rows written again after it would
// be stored twice. So Write does not return such an error until the INSERT
// has ended on the server: its query id is gone from system.processes.
//
// Absence from system.processes does mean the end: the server lists the
// query before it answers PrepareBatch with the table's structure, and the
// driver sends no row before that answer; the server removes it only after
// the part is committed or abandoned. An INSERT that never got that far has
// sent no rows and cannot store any.
const (
	// defaultSettleTimeout bounds one settling: a server that still runs
	// the INSERT after that, killed or not, leaves it unsettled.
	defaultSettleTimeout = 30 * time.Second
	// defaultKillAfter is how long an INSERT may go on running on its own
	// before it is killed: long enough for one that was about to commit.
	defaultKillAfter = 3 * time.Second
	// settlePoll is how often system.processes is asked.
	settlePoll = 100 * time.Millisecond
)

// partitionKey names the rows of one Kafka partition in one table.
type partitionKey struct {
	table     string
	partition int32
}

// newQueryID returns a fresh query id for one INSERT. The prefix tells an
// operator reading system.processes that Sluice sent it.
func newQueryID() string {
	return "sluice-insert-" + rand.Text()
}

// neverSent reports whether an INSERT failed for want of a connection: no
// connection, no statement on the server, nothing to settle. It spares a
// Write to a server that is down the settling that would fail the same way.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" || errors.Is(err, ch.ErrAcquireConnTimeout)
}

// afterFailure settles the failed INSERT id of the partition, on a context
// of its own since ctx may be why the INSERT failed. What it cannot settle
// it leaves for the partition's next Write or Progress.
func (s *Sink) afterFailure(ctx context.Context, st *schemas.Stream, partition int32, id string) error {
	return s.afterFailureKey(ctx, partitionKey{st.Table, partition}, id)
}

// afterFailureKey is afterFailure for an INSERT into any table of the
// Sink's: a base table or a rollup.
func (s *Sink) afterFailureKey(ctx context.Context, key partitionKey, id string) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.settleTimeout)
	defer cancel()
	if err := s.settle(sctx, id); err != nil {
		s.mu.Lock()
		s.unsettled[key] = id
		s.mu.Unlock()
		return err
	}
	return nil
}

// settleUnsettled settles the partition's INSERTs that an earlier Write or
// Progress left unsettled, if any: into st's table, and into its rollup.
// Until it can, the partition's state is unknown and the error says so.
func (s *Sink) settleUnsettled(ctx context.Context, st *schemas.Stream, partition int32) error {
	if err := s.settleKey(ctx, partitionKey{st.Table, partition}); err != nil {
		return err
	}
	if r := rollupOf(st); r != nil {
		return s.settleKey(ctx, partitionKey{r.table, partition})
	}
	return nil
}

// settleKey settles the INSERT left unsettled for the table's partition.
func (s *Sink) settleKey(ctx context.Context, key partitionKey) error {
	s.mu.Lock()
	id, ok := s.unsettled[key]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, s.settleTimeout)
	defer cancel()
	if err := s.settle(sctx, id); err != nil {
		return fmt.Errorf("clickhouse: %s.%s partition %d: an earlier INSERT (query id %s) may still be running: %w",
			s.db, key.table, key.partition, id, err)
	}
	s.mu.Lock()
	if s.unsettled[key] == id {
		delete(s.unsettled, key)
	}
	s.mu.Unlock()
	return nil
}

// settle returns once the query id is no longer running on the server,
// killing it if it runs on for longer than s.killAfter, or an error when
// that cannot be confirmed before ctx ends.
func (s *Sink) settle(ctx context.Context, id string) error {
	killAt := time.Now().Add(s.killAfter)
	killed := false
	tick := time.NewTicker(settlePoll)
	defer tick.Stop()
	for {
		running, err := s.running(ctx, id)
		if err != nil {
			return fmt.Errorf("settle query %s: %w", id, err)
		}
		if !running {
			return nil
		}
		if !killed && !time.Now().Before(killAt) {
			killed = true
			// 18.16 refuses to kill an INSERT fed by a client ("unkillable
			// stages", code 380); later servers can. Either way the
			// polling goes on until the query has ended.
			if err := s.conn.Exec(ctx, "KILL QUERY WHERE query_id = ? SYNC", id); err != nil {
				s.log.Warn("could not kill an INSERT of unknown outcome; waiting for it to end", "query_id", id, "err", err)
			} else {
				s.log.Warn("killed an INSERT of unknown outcome", "query_id", id, "after", s.killAfter)
			}
			continue
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("settle query %s: still running: %w", id, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// running reports whether the query id is in system.processes.
func (s *Sink) running(ctx context.Context, id string) (bool, error) {
	var n uint64
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM system.processes WHERE query_id = ?", id).Scan(&n); err != nil {
		return false, err
	}
	return n > 0, nil
}
