package clickhouse

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks"
)

// slowTable creates st's table with one more column, whose DEFAULT sleeps
// perRow for every inserted row: an INSERT of n rows then runs on the server
// for n*perRow after the client has sent them (18.16 refuses more than 3 s
// of sleep per block).
func slowTable(t *testing.T, s *Sink, st *schemas.Stream, perRow time.Duration) {
	t.Helper()
	ensure(t, s, st)
	q := fmt.Sprintf("ALTER TABLE %s ADD COLUMN slow UInt8 DEFAULT sleepEachRow(%g)", s.table(st), perRow.Seconds())
	if err := s.conn.Exec(context.Background(), q); err != nil {
		t.Fatal(err)
	}
}

// fixedQueryIDs makes the Sink name its INSERTs q-0, q-1, ... (made unique
// to the test), so that the test can look for them on the server.
func fixedQueryIDs(s *Sink) func(i int) string {
	prefix := "sluice-test-" + rand.Text() + "-"
	n := 0
	s.newQueryID = func() string {
		id := fmt.Sprintf("%s%d", prefix, n)
		n++
		return id
	}
	return func(i int) string { return fmt.Sprintf("%s%d", prefix, i) }
}

// assertSettled checks that the query is not running and that the
// partition's progress is one of want and stays put for a while: nothing
// of the partition is left to land late.
func assertSettled(t *testing.T, s *Sink, st *schemas.Stream, partition int32, id string, want ...int64) int64 {
	t.Helper()
	ctx := context.Background()
	running, err := s.running(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if running {
		t.Fatalf("query %s still runs after Write returned", id)
	}
	first, _, err := s.Progress(ctx, st, partition)
	if err != nil {
		t.Fatal(err)
	}
	ok := false
	for _, w := range want {
		ok = ok || first == w
	}
	if !ok {
		t.Fatalf("Progress = %d, want one of %v", first, want)
	}
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		off, _, err := s.Progress(ctx, st, partition)
		if err != nil {
			t.Fatal(err)
		}
		if off != first {
			t.Fatalf("Progress moved from %d to %d after the INSERT was settled", first, off)
		}
	}
	return first
}

// TestWriteCancelledIsSettled cancels a Write while the server is still
// busy with the INSERT: Write must not return before the server is done
// with it, whatever the outcome.
func TestWriteCancelledIsSettled(t *testing.T) {
	s := openTest(t)
	st := builtin(t, "iot_telemetry")
	slowTable(t, s, st, time.Millisecond)
	ids := fixedQueryIDs(s)
	now := time.Now().UTC()
	if err := s.Write(context.Background(), st, 0, iotRows(0, 5, now)); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Write(ctx, st, 0, iotRows(5, 1000, now)) // 1 s on the server
	took := time.Since(start)
	if err == nil {
		t.Fatal("Write succeeded despite its context ending first")
	}
	if sinks.IsPermanent(err) {
		t.Errorf("sinks.IsPermanent(%v) = true", err)
	}
	// The first Write sent two INSERTs: the rows (q-0) and their rollup.
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), ids(2)) {
		t.Errorf("error %q: want the context's and the query id %s", err, ids(2))
	}
	got := assertSettled(t, s, st, 0, ids(2), 4, 1004)
	t.Logf("Write returned after %v: %v; progress %d", took.Round(time.Millisecond), err, got)
}

// TestWriteKillsARunawayInsert: an INSERT that goes on running after the
// client gave up is killed, or where the server cannot kill it (18.16),
// waited for; and one that outlasts the settling timeout is left unsettled
// for the partition's next call.
func TestWriteKillsARunawayInsert(t *testing.T) {
	s := openTest(t)
	st := builtin(t, "iot_telemetry")
	slowTable(t, s, st, time.Millisecond)
	var logs bytes.Buffer
	s.log = slog.New(slog.NewTextHandler(&logs, nil))
	s.killAfter = 100 * time.Millisecond
	ids := fixedQueryIDs(s)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Write(ctx, st, 0, iotRows(0, 1000, time.Now())) // 1 s on the server
	took := time.Since(start)
	if err == nil || sinks.IsPermanent(err) {
		t.Fatalf("Write = %v, want a transient error", err)
	}
	if !strings.Contains(logs.String(), "kill") || !strings.Contains(logs.String(), ids(0)) {
		t.Errorf("no attempt to kill %s logged:\n%s", ids(0), logs.String())
	}
	got := assertSettled(t, s, st, 0, ids(0), 0, 999)
	t.Logf("Write returned after %v; progress %d; log:\n%s", took.Round(time.Millisecond), got, logs.String())

	t.Run("outlasting the timeout", func(t *testing.T) {
		s.settleTimeout = 300 * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		err := s.Write(ctx, st, 0, iotRows(got+1, 1000, time.Now()))
		if err == nil || sinks.IsPermanent(err) || !strings.Contains(err.Error(), "may still be running") {
			t.Fatalf("Write = %v, want a transient error saying the INSERT may still run", err)
		}
		if _, _, err := s.Progress(context.Background(), st, 0); err == nil {
			t.Error("Progress answered while the INSERT still ran")
		}
		s.settleTimeout = defaultSettleTimeout
		if _, _, err := s.Progress(context.Background(), st, 0); err != nil {
			t.Fatal(err)
		}
		// When the first INSERT was stored, the Progress after it
		// repaired the rollup with an INSERT of its own (q-1).
		id := ids(1)
		if got == 999 {
			id = ids(2)
		}
		assertSettled(t, s, st, 0, id, got, got+1000)
	})
}

// TestUnsettledInsertBlocksProgress takes the server away in the middle of
// an INSERT, so that Write cannot learn whether it still runs: the next
// Progress of that partition must fail until it can, then wait for it.
func TestUnsettledInsertBlocksProgress(t *testing.T) {
	base := openTest(t) // for the database, its cleanup and direct looks
	st := builtin(t, "iot_telemetry")
	slowTable(t, base, st, time.Millisecond)
	p := startProxy(t, testAddr())
	ctx := context.Background()
	s, err := Open(ctx, Options{Addr: p.addr, Database: base.db, DialTimeout: time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ids := fixedQueryIDs(s)

	go func() {
		// Cut 300 ms into the INSERT on the server (its rows sent, two
		// seconds of it left). 300 ms from the start of Write cut the
		// queries before the INSERT instead when the machine was busy.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if running, err := base.running(ctx, ids(0)); err == nil && running {
				break
			}
		}
		time.Sleep(300 * time.Millisecond)
		p.cut()
	}()
	err = s.Write(ctx, st, 0, iotRows(0, 2000, time.Now())) // 2 s on the server
	if err == nil || sinks.IsPermanent(err) {
		t.Fatalf("Write = %v, want a transient error", err)
	}
	if !strings.Contains(err.Error(), "may still be running") {
		t.Errorf("Write = %v; want it to say the INSERT may still be running", err)
	}
	if _, _, err := s.Progress(ctx, st, 0); err == nil {
		t.Fatal("Progress answered while an INSERT of the partition may still run")
	}
	if _, _, err := s.Progress(ctx, st, 1); err == nil {
		t.Fatal("Progress of another partition answered with the server away")
	}
	running, err := base.running(ctx, ids(0))
	if err != nil {
		t.Fatal(err)
	}
	if !running {
		t.Log("the INSERT ended before the server came back; the test proves less")
	}

	p.restore()
	if _, _, err := s.Progress(ctx, st, 0); err != nil {
		t.Fatal(err)
	}
	got := assertSettled(t, base, st, 0, ids(0), 0, 1999)
	t.Logf("progress %d", got)
	if err := s.Write(ctx, st, 0, nil); err != nil {
		t.Errorf("Write after settling: %v", err)
	}
}
