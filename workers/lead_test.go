package workers

import (
	"context"
	"testing"
	"time"
)

// An output's lane waits for the store's lane to decide its batch, as long
// as the store's lane keeps deciding; a wait that runs out lets it decide
// for itself, and it waits no more until the store's lane has caught up
// with it.
func TestOutputWaitsForTheStoresVerdicts(t *testing.T) {
	defer func(d time.Duration) { leadWait = d }(leadWait)
	st := iotStream(t)
	p := &Partition{Stream: st, window: newDedupeWindow(time.Hour, 100)}
	l := &lane{part: p, output: true, stop: context.Background()}
	decide := func(ids ...string) {
		to, _ := p.window.DecidedTo()
		for i, id := range ids {
			p.window.Duplicate(id, to+int64(i), recv0, true)
		}
		p.window.Decided()
	}

	// The store's lane decides the batch while the output's lane waits.
	leadWait = time.Hour
	done := awaitInBackground(l, makeBatch(t, st, 0, "a", "b"))
	decide("a")
	stillWaiting(t, done, "the output's lane went on when the store had decided half its batch")
	decide("b")
	waitDone(t, done, "the store's lane decided the batch")

	// The store's lane decides slowly, but keeps deciding: the output's
	// lane keeps its pace however long the wait is in all.
	leadWait = time.Second
	ids := []string{"s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8"}
	b := makeBatch(t, st, 2, ids...)
	start := time.Now()
	done = awaitInBackground(l, b)
	for _, id := range ids {
		stillWaiting(t, done, "the output's lane went on before the store had decided its batch")
		time.Sleep(150 * time.Millisecond)
		decide(id)
	}
	waitDone(t, done, "the store's lane decided the batch")
	if l.leadLate {
		t.Fatalf("the store's lane decided a batch in %s, each event within 200ms, yet the output's lane went its own way", time.Since(start).Round(time.Millisecond))
	}

	// The store's lane decides nothing more: the wait runs out.
	leadWait = 20 * time.Millisecond
	l.awaitLead(makeBatch(t, st, 10, "c", "d"))
	if !l.leadLate {
		t.Fatal("the wait ran out, but the lane is not marked as deciding for itself")
	}
	// Late, the lane does not wait at all, however long the wait may be.
	leadWait = time.Hour
	waitDone(t, awaitInBackground(l, makeBatch(t, st, 12, "e")), "the lane decides for itself after a wait ran out")

	// Once the store's lane catches up with the output's, it waits again.
	decide("c", "d", "e")
	done = awaitInBackground(l, makeBatch(t, st, 13, "f"))
	stillWaiting(t, done, "the store's lane caught up, but the output's lane did not wait for it again")
	decide("f")
	waitDone(t, done, "the store's lane decided the batch")
	if l.leadLate {
		t.Error("the lane follows the store again, but is marked as deciding for itself")
	}
}

// A lane that stops ends its wait.
func TestOutputWaitEndsWithTheLane(t *testing.T) {
	defer func(d time.Duration) { leadWait = d }(leadWait)
	leadWait = time.Hour
	st := iotStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	l := &lane{part: &Partition{Stream: st, window: newDedupeWindow(time.Hour, 100)}, output: true, stop: ctx}
	done := awaitInBackground(l, makeBatch(t, st, 0, "a"))
	cancel()
	waitDone(t, done, "the lane stopped")
}

func awaitInBackground(l *lane, b *Batch) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.awaitLead(b)
	}()
	return done
}

// stillWaiting fails with msg when the lane's wait has ended (done)
// within a moment.
func stillWaiting(t *testing.T, done <-chan struct{}, msg string) {
	t.Helper()
	select {
	case <-done:
		t.Fatal(msg)
	case <-time.After(50 * time.Millisecond):
	}
}

func waitDone(t *testing.T, done <-chan struct{}, after string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("the output's lane still waits after %s", after)
	}
}
