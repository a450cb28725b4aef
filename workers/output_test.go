package workers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
)

// TestOutputDeliverer delivers one batch, at offsets from 0, to an output
// whose partition it shares with the store's lane, which delivers the same
// batch before or after it.
func TestOutputDeliverer(t *testing.T) {
	tests := []struct {
		name string
		log  []string
		// storeFirst has the store's lane deliver the batch before the
		// output's; otherwise it does after.
		storeFirst bool
		reject     []string // event_ids the store refuses
		refuse     []string // event_ids the output refuses for good
		results    []int    // the output's script (see fakeOutput)

		wantPub   []string
		wantCalls [][]string // nil: one call with wantPub
		wantRows  []string   // what the store holds at the end
		// wantSet are the output's dead letters ("offset reason"
		// prefixes): events it set aside.
		wantSet []string
	}{
		{
			name:    "publishes the batch's events",
			log:     []string{"a", "b", "c"},
			wantPub: []string{"a", "b", "c"}, wantRows: []string{"a", "b", "c"},
		},
		{
			name:    "skips invalid events (the store's lane dead-letters them)",
			log:     []string{"a", "!", "b"},
			wantPub: []string{"a", "b"}, wantRows: []string{"a", "b"},
		},
		{
			name:    "skips duplicates by event_id, ahead of the store",
			log:     []string{"a", "b", "a"},
			wantPub: []string{"a", "b"}, wantRows: []string{"a", "b"},
		},
		{
			name: "skips duplicates by event_id, behind the store, and publishes the originals",
			log:  []string{"a", "b", "a"}, storeFirst: true,
			wantPub: []string{"a", "b"}, wantRows: []string{"a", "b"},
		},
		{
			name: "skips what the store refused when the store got there first",
			log:  []string{"a", "p", "b"}, storeFirst: true, reject: []string{"p"},
			wantPub: []string{"a", "b"}, wantRows: []string{"a", "b"},
		},
		{
			// The output cannot know yet; the store is not put off by the
			// ids the output put in the shared window.
			name: "ahead of the store, publishes what the store will refuse",
			log:  []string{"a", "p", "b"}, reject: []string{"p"},
			wantPub: []string{"a", "p", "b"}, wantRows: []string{"a", "b"},
		},
		{
			name: "resumes after a PartialError without publishing a confirmed row again, in order",
			log:  []string{"a", "b", "c", "d", "e"}, results: []int{2, 1},
			wantPub:   []string{"a", "b", "c", "d", "e"},
			wantCalls: [][]string{{"a", "b", "c", "d", "e"}, {"c", "d", "e"}, {"d", "e"}},
			wantRows:  []string{"a", "b", "c", "d", "e"},
		},
		{
			name: "a PartialError confirming nothing publishes it all again",
			log:  []string{"a", "b"}, results: []int{0},
			wantPub:   []string{"a", "b"},
			wantCalls: [][]string{{"a", "b"}, {"a", "b"}},
			wantRows:  []string{"a", "b"},
		},
		{
			name: "a PartialError confirming everything is done",
			log:  []string{"a", "b"}, results: []int{2},
			wantPub:   []string{"a", "b"},
			wantCalls: [][]string{{"a", "b"}},
			wantRows:  []string{"a", "b"},
		},
		{
			name: "any other error publishes it all again (at least once)",
			log:  []string{"a", "b"}, results: []int{-1, -1},
			wantPub:   []string{"a", "b"},
			wantCalls: [][]string{{"a", "b"}, {"a", "b"}, {"a", "b"}},
			wantRows:  []string{"a", "b"},
		},
		{
			name: "a permanent error that is no PartialError is retried: it does not say which row",
			log:  []string{"a", "b"}, results: []int{-2},
			wantPub:   []string{"a", "b"},
			wantCalls: [][]string{{"a", "b"}, {"a", "b"}},
			wantRows:  []string{"a", "b"},
		},
		{
			name: "an event the output refuses for good is set aside with a dead letter, the rest published in order",
			log:  []string{"a", "b", "x", "c", "d"}, refuse: []string{"x"},
			wantPub:   []string{"a", "b", "c", "d"},
			wantCalls: [][]string{{"a", "b", "x", "c", "d"}, {"c", "d"}},
			wantRows:  []string{"a", "b", "x", "c", "d"},
			wantSet:   []string{"2 refused by nats: "},
		},
		{
			name: "several refused events, the first one first",
			log:  []string{"x", "a", "y"}, refuse: []string{"x", "y"},
			wantPub:   []string{"a"},
			wantCalls: [][]string{{"x", "a", "y"}, {"a", "y"}},
			wantRows:  []string{"x", "a", "y"},
			wantSet:   []string{"0 refused by nats", "2 refused by nats"},
		},
		{
			name: "a refusal after a partial failure",
			log:  []string{"a", "b", "x", "c"}, refuse: []string{"x"}, results: []int{1},
			wantPub:   []string{"a", "b", "c"},
			wantCalls: [][]string{{"a", "b", "x", "c"}, {"b", "x", "c"}, {"c"}},
			wantRows:  []string{"a", "b", "x", "c"},
			wantSet:   []string{"2 refused by nats"},
		},
		{
			name: "nothing to publish",
			log:  []string{"!", "p"}, storeFirst: true, reject: []string{"p"},
			wantCalls: [][]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := iotStream(t)
			store, dlq := newFakeStore(t, nil), &fakeDLQ{}
			store.reject = make(map[string]bool)
			for _, id := range tt.reject {
				store.reject[id] = true
			}
			metrics := NewSinkMetrics(nil)
			sd := newTestStoreDeliverer(t, store, dlq)
			out := &fakeOutput{name: "nats", results: tt.results, refuse: make(map[string]bool)}
			for _, id := range tt.refuse {
				out.refuse[id] = true
			}
			od := newTestOutputDeliverer(t, out, &fakeProgress{}, dlq, func(c *OutputConfig) { c.Metrics = metrics })
			p := newTestPartition(st, 0)
			if _, err := sd.Open(context.Background(), p); err != nil {
				t.Fatal(err)
			}
			if tt.storeFirst {
				deliver(t, sd, p, makeBatch(t, st, 0, tt.log...))
			}
			deliver(t, od, p, makeBatch(t, st, 0, tt.log...))
			if !tt.storeFirst {
				deliver(t, sd, p, makeBatch(t, st, 0, tt.log...))
			}

			calls, pub := out.state()
			if !slices.Equal(pub, tt.wantPub) {
				t.Errorf("published %v, want %v", pub, tt.wantPub)
			}
			wantCalls := tt.wantCalls
			if wantCalls == nil {
				wantCalls = [][]string{tt.wantPub}
			}
			if fmt.Sprint(calls) != fmt.Sprint(wantCalls) {
				t.Errorf("publish calls %v, want %v", calls, wantCalls)
			}
			if got := store.ids(0); !slices.Equal(got, tt.wantRows) {
				t.Errorf("store holds %v, want %v", got, tt.wantRows)
			}
			if n := testutil.ToFloat64(metrics.written.WithLabelValues("nats", testStream)); n != float64(len(tt.wantPub)) {
				t.Errorf("%v rows counted published, want %d", n, len(tt.wantPub))
			}
			var set []DeadLetter
			for _, l := range dlq.list() {
				if l.SkippedBy != "" {
					set = append(set, l)
				}
			}
			if got := describeLetters(set); !matchPrefixes(got, tt.wantSet) {
				t.Errorf("the output's dead letters %q, want prefixes %q", got, tt.wantSet)
			}
			for _, l := range set {
				// The store holds the event: the record stands for it
				// without excusing its absence there.
				want := makeBatch(t, st, l.Offset, tt.log[l.Offset]).Messages[0].Value
				if l.SkippedBy != "nats" || l.SkippedThrough != l.Offset || l.Stream != testStream || l.Topic != testTopic ||
					string(l.Value) != string(want) || string(l.Key) != "dev-1" || !strings.Contains(l.Reason, "maximum payload exceeded") {
					t.Errorf("dead letter %+v; want event %d as a range of one skipped by nats", l, l.Offset)
				}
			}
		})
	}
}

// A batch older than MaxLag (by its last message's Kafka time) is skipped,
// with one dead letter that stands for its range.
func TestOutputDelivererSkipsWhenBehind(t *testing.T) {
	tests := []struct {
		name   string
		maxLag time.Duration
		// firstAge and lastAge are the ages of the batch's first and last
		// messages.
		firstAge, lastAge time.Duration
		down              bool // the output fails every publish
		dlqFails          int
		wantSkip          bool
	}{
		{name: "older than MaxLag: skipped", maxLag: time.Hour, firstAge: 3 * time.Hour, lastAge: 2 * time.Hour, wantSkip: true},
		{name: "within MaxLag: published", maxLag: time.Hour, firstAge: 40 * time.Minute, lastAge: 30 * time.Minute},
		{name: "judged by the batch's last message", maxLag: time.Hour, firstAge: 2 * time.Hour, lastAge: 30 * time.Minute},
		{name: "the default MaxLag is an hour", firstAge: 61 * time.Minute, lastAge: 61 * time.Minute, wantSkip: true},
		{name: "an output down skips once the batch ages past MaxLag", maxLag: 150 * time.Millisecond, firstAge: 100 * time.Millisecond, lastAge: 100 * time.Millisecond, down: true, wantSkip: true},
		{name: "the skip is recorded however long the dead-letter topic fails", maxLag: time.Hour, firstAge: 2 * time.Hour, lastAge: 2 * time.Hour, dlqFails: 3, wantSkip: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := iotStream(t)
			dlq := &fakeDLQ{failNext: tt.dlqFails}
			out := &fakeOutput{name: "nats", down: tt.down}
			metrics := NewSinkMetrics(nil)
			d := newTestOutputDeliverer(t, out, &fakeProgress{}, dlq, func(c *OutputConfig) {
				c.MaxLag = tt.maxLag
				c.Metrics = metrics
			})
			p := newTestPartition(st, 0)
			b := makeBatch(t, st, 5, "a", "b", "c")
			now := time.Now()
			for i := range b.Messages {
				b.Messages[i].Time = now.Add(-tt.firstAge)
			}
			b.Messages[len(b.Messages)-1].Time = now.Add(-tt.lastAge)
			deliver(t, d, p, b)

			calls, pub := out.state()
			letters := dlq.list()
			skipped := testutil.ToFloat64(metrics.skipped.WithLabelValues("nats", testStream))
			if !tt.wantSkip {
				if !slices.Equal(pub, []string{"a", "b", "c"}) || len(letters) != 0 || skipped != 0 {
					t.Errorf("published %v, letters %v, %v skipped; want a b c published, nothing skipped", pub, describeLetters(letters), skipped)
				}
				return
			}
			if len(pub) != 0 || (!tt.down && len(calls) != 0) {
				t.Errorf("published %v in %d calls; want the batch skipped", pub, len(calls))
			}
			if len(letters) != 1 {
				t.Fatalf("dead letters %q, want one for the range", describeLetters(letters))
			}
			l := letters[0]
			if l.SkippedBy != "nats" || l.Offset != 5 || l.SkippedThrough != 7 || l.Stream != testStream || l.Topic != testTopic ||
				l.Partition != 0 || l.Value != nil || !strings.Contains(l.Reason, "nats skipped offsets 5-7") {
				t.Errorf("dead letter %+v; want the range 5-7 skipped by nats", l)
			}
			if skipped != 3 {
				t.Errorf("%v events counted skipped, want 3", skipped)
			}
		})
	}
}

func TestOutputDelivererOpen(t *testing.T) {
	tests := []struct {
		name      string
		saved     map[string]int64
		failLoad  int
		committed int64
		want      int64
		wantLoads int
	}{
		{name: "after the saved progress", saved: map[string]int64{testTopic + "/0": 41}, committed: 7, want: 42, wantLoads: 1},
		{name: "saved progress behind the committed offset wins", saved: map[string]int64{testTopic + "/0": 3}, committed: 7, want: 4, wantLoads: 1},
		{name: "at the committed offset when nothing is saved", committed: 7, want: 7, wantLoads: 1},
		{name: "another partition's progress is not this one's", saved: map[string]int64{testTopic + "/1": 41}, committed: 7, want: 7, wantLoads: 1},
		{name: "at the first offset for a new group", committed: kafka.FirstOffset, want: kafka.FirstOffset, wantLoads: 1},
		{name: "failed loads are retried", saved: map[string]int64{testTopic + "/0": 41}, failLoad: 2, committed: 7, want: 42, wantLoads: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prog := &fakeProgress{saved: tt.saved, failLoad: tt.failLoad}
			d := newTestOutputDeliverer(t, &fakeOutput{name: "nats"}, prog, &fakeDLQ{})
			got, err := d.Open(context.Background(), newTestPartition(iotStream(t), tt.committed))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want || prog.loads != tt.wantLoads {
				t.Errorf("Open = %d after %d loads, want %d after %d", got, prog.loads, tt.want, tt.wantLoads)
			}
		})
	}
}

func TestOutputDelivererSavesProgress(t *testing.T) {
	prog := &fakeProgress{}
	d := newTestOutputDeliverer(t, &fakeOutput{name: "nats"}, prog, &fakeDLQ{})
	if err := d.SaveProgress(context.Background(), testTopic, 2, 99); err != nil {
		t.Fatal(err)
	}
	p := newTestPartition(iotStream(t), 0)
	p.ID = 2
	if start, err := d.Open(context.Background(), p); err != nil || start != 100 {
		t.Errorf("Open after saving 99 = %d, %v; want 100", start, err)
	}
}

func TestOutputDelivererAbandonsWhenContextEnds(t *testing.T) {
	st := iotStream(t)
	out := &fakeOutput{name: "nats", down: true}
	d := newTestOutputDeliverer(t, out, &fakeProgress{}, &fakeDLQ{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	b := makeBatch(t, st, 0, "a")
	d.Prepare(b)
	if err := d.Deliver(ctx, newTestPartition(st, 0), b); err == nil {
		t.Fatal("Deliver returned nil although the output never took the batch")
	}

	pd := newTestOutputDeliverer(t, out, &fakeProgress{failLoad: 1 << 30}, &fakeDLQ{})
	if _, err := pd.Open(ctx, newTestPartition(st, 0)); err == nil {
		t.Fatal("Open returned nil although the progress log never answered")
	}
}

func TestNewOutputDeliverer(t *testing.T) {
	out, prog, dlq := &fakeOutput{name: "nats"}, &fakeProgress{}, &fakeDLQ{}
	tests := []struct {
		name    string
		cfg     OutputConfig
		wantErr bool
	}{
		{name: "complete", cfg: OutputConfig{Output: out, Progress: prog, DLQ: dlq}},
		{name: "no output", cfg: OutputConfig{Progress: prog, DLQ: dlq}, wantErr: true},
		{name: "no progress log", cfg: OutputConfig{Output: out, DLQ: dlq}, wantErr: true},
		{name: "no dead-letter writer", cfg: OutputConfig{Output: out, Progress: prog}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := NewOutputDeliverer(tt.cfg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && (d.Name() != "nats" || d.cfg.MaxLag != DefaultMaxLag) {
				t.Errorf("Name = %q, MaxLag = %s; want nats, %s", d.Name(), d.cfg.MaxLag, DefaultMaxLag)
			}
		})
	}
}

// The partition forgets the store's refusals once the output has passed
// them.
func TestOutputForgetsRefusalsItPassed(t *testing.T) {
	st := iotStream(t)
	p := newTestPartition(st, 0)
	p.markRejected(1)
	p.markRejected(5)
	d := newTestOutputDeliverer(t, &fakeOutput{name: "nats"}, &fakeProgress{}, &fakeDLQ{})
	deliver(t, d, p, makeBatch(t, st, 0, "a", "p", "b"))
	if p.wasRejected(1) || !p.wasRejected(5) {
		t.Errorf("after offsets 0-2: rejected(1) = %v, rejected(5) = %v; want false, true", p.wasRejected(1), p.wasRejected(5))
	}
}

// With two outputs, the one ahead must not forget a refusal that the one
// behind has still to pass.
func TestOutputsBehindStillSkipRefusedRows(t *testing.T) {
	st := iotStream(t)
	store := newFakeStore(t, nil)
	store.reject = map[string]bool{"p": true}
	sd := newTestStoreDeliverer(t, store, &fakeDLQ{})
	fast, slow := &fakeOutput{name: "fast"}, &fakeOutput{name: "slow"}
	fd := newTestOutputDeliverer(t, fast, &fakeProgress{}, &fakeDLQ{})
	sl := newTestOutputDeliverer(t, slow, &fakeProgress{}, &fakeDLQ{})
	p := newTestPartition(st, 0)
	p.Outputs = 2
	if _, err := sd.Open(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	log := []string{"a", "p", "b"}
	deliver(t, sd, p, makeBatch(t, st, 0, log...))
	deliver(t, fd, p, makeBatch(t, st, 0, log...))
	deliver(t, sl, p, makeBatch(t, st, 0, log...))
	for _, o := range []*fakeOutput{fast, slow} {
		if _, pub := o.state(); !slices.Equal(pub, []string{"a", "b"}) {
			t.Errorf("%s published %v, want a b", o.name, pub)
		}
	}
}

// While the store is down, an output that goes on moves the partition's
// shared window on: once it is more than DedupeWindow ahead in receive time,
// the store's lane, resuming, has lost the ids of what it stored before the
// outage, and writes a producer's retry of them again. The receive-time
// window is meant to survive a store outage of any length.
func TestOutputAheadDoesNotAgeTheStoresWindow(t *testing.T) {
	st := iotStream(t)
	store := newFakeStore(t, nil)
	sd := newTestStoreDeliverer(t, store, &fakeDLQ{})
	od := newTestOutputDeliverer(t, &fakeOutput{name: "nats"}, &fakeProgress{}, &fakeDLQ{})
	p := newTestPartition(st, 0)
	if _, err := sd.Open(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	deliver(t, sd, p, makeBatch(t, st, 0, "a@0s"))
	deliver(t, od, p, makeBatch(t, st, 0, "a@0s"))
	// The store goes down; the output goes on for 20 minutes of events,
	// the first a producer's retry of a.
	deliver(t, od, p, makeBatch(t, st, 1, "a@1s", "b@20m"))
	// The store is back.
	deliver(t, sd, p, makeBatch(t, st, 1, "a@1s", "b@20m"))
	if got := store.ids(0); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("store holds %v, want a b", got)
	}
}

// Behind an output that added the ids already, the store's lane still
// moves the window on: ids leave it when they are older than the span,
// not only when it is full.
func TestStoreBehindTheOutputAgesTheWindow(t *testing.T) {
	st := iotStream(t)
	sd := newTestStoreDeliverer(t, newFakeStore(t, nil), &fakeDLQ{}, func(c *StoreConfig) { c.DedupeWindow = 10 * time.Minute })
	od := newTestOutputDeliverer(t, &fakeOutput{name: "nats"}, &fakeProgress{}, &fakeDLQ{})
	p := newTestPartition(st, 0)
	if _, err := sd.Open(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	b := makeBatch(t, st, 0, "a@0s", "b@5m", "c@20m", "d@21m")
	deliver(t, od, p, b)
	if n := p.window.Len(); n != 4 {
		t.Fatalf("%d ids in the window after the output, want 4", n)
	}
	deliver(t, sd, p, makeBatch(t, st, 0, "a@0s", "b@5m", "c@20m", "d@21m"))
	if n := p.window.Len(); n != 2 {
		t.Errorf("%d ids in the window after the store, want 2 (c and d: a and b are past the 10 minutes)", n)
	}
	if n := p.window.takeEvicted(); n != 0 {
		t.Errorf("%d ids counted as forgotten early, want 0", n)
	}
}
