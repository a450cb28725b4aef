package workers

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/internal/testkit"
)

// A partitionReader against the embedded broker: it starts where it is
// told, resolves FirstOffset, hands out every message in order across
// fetches, waits for messages produced later, and gives up waiting when its
// context ends, within about maxWait.
func TestPartitionReader(t *testing.T) {
	k := testkit.StartKafka(t)
	topic := testkit.StreamTopic(testStream)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	produce := producer(ctx, t, k, 2)
	produce(0, 10)
	produce(10, 20)

	newReader := func(at int64) *partitionReader {
		r := &partitionReader{dialer: &kafka.Dialer{Timeout: 5 * time.Second}, brokers: k.Brokers, topic: topic, partition: 2,
			minBytes: 1, maxBytes: 1 << 20, maxWait: 50 * time.Millisecond}
		if err := r.SetOffset(at); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		return r
	}
	expect := func(r *partitionReader, from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			if m.Offset != int64(i) || string(m.Value) != fmt.Sprintf("m%d", i) || m.HighWaterMark < m.Offset+1 {
				t.Fatalf("message %d: got offset %d value %q high water mark %d", i, m.Offset, m.Value, m.HighWaterMark)
			}
		}
	}

	r := newReader(3)
	expect(r, 3, 20)
	go func() {
		time.Sleep(200 * time.Millisecond)
		produce(20, 25)
	}()
	expect(r, 20, 25)

	short, stop := context.WithTimeout(ctx, 300*time.Millisecond)
	defer stop()
	start := time.Now()
	if _, err := r.FetchMessage(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting past the context: got %v, want context.DeadlineExceeded", err)
	}
	if waited := time.Since(start); waited > 2*time.Second {
		t.Errorf("the reader gave up %v after its context ended; want within about maxWait", waited)
	}
	// It reads on after a wait that ended.
	produce(25, 26)
	expect(r, 25, 26)

	expect(newReader(kafka.FirstOffset), 0, 3)

	// FetchMessages hands out what one fetch holds, in order, up to its
	// limit, and the next call goes on from there.
	r = newReader(0)
	var got []int64
	for len(got) < 26 {
		ms, err := r.FetchMessages(ctx, 8)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 || len(ms) > 8 {
			t.Fatalf("FetchMessages(8) returned %d messages", len(ms))
		}
		for _, m := range ms {
			got = append(got, m.Offset)
		}
	}
	for i, off := range got {
		if off != int64(i) {
			t.Fatalf("offsets read in chunks: %v", got)
		}
	}

	// SkipTo moves on, within the fetch in hand, past it, and before the
	// first fetch.
	r = newReader(0)
	if ms, err := r.FetchMessages(ctx, 2); err != nil || len(ms) != 2 {
		t.Fatalf("FetchMessages(2) = %d messages, %v", len(ms), err)
	}
	for _, to := range []int{5, 21, 12} {
		if err := r.SkipTo(int64(to)); err != nil {
			t.Fatal(err)
		}
		expect(r, to, to+2)
	}
	r = newReader(0)
	if err := r.SkipTo(24); err != nil {
		t.Fatal(err)
	}
	expect(r, 24, 26)
}

// producer returns a function that writes the messages "m<from>" to
// "m<to-1>" to partition of the test stream's topic, in one request.
func producer(ctx context.Context, t *testing.T, k *testkit.Kafka, partition int) func(from, to int) {
	w := &kafka.Writer{Addr: kafka.TCP(k.Brokers...), Topic: testkit.StreamTopic(testStream), BatchTimeout: time.Millisecond,
		Balancer: kafka.BalancerFunc(func(kafka.Message, ...int) int { return partition })}
	t.Cleanup(func() { _ = w.Close() })
	return func(from, to int) {
		t.Helper()
		var msgs []kafka.Message
		for i := from; i < to; i++ {
			msgs = append(msgs, kafka.Message{Value: fmt.Appendf(nil, "m%d", i)})
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
	}
}

// A connection that kafka-go finds out of step (an answer with another
// request's id ahead of the one it waits for: bytes an earlier answer left
// on the wire) is replaced, and the fetch asked again at the same offset,
// without the caller seeing an error.
func TestPartitionReaderReplacesAConnectionOutOfStep(t *testing.T) {
	k := testkit.StartKafka(t)
	topic := testkit.StreamTopic(testStream)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	produce := producer(ctx, t, k, 1)
	var dials atomic.Int32
	stale := &staleAnswer{}
	d := &kafka.Dialer{Timeout: 5 * time.Second, DialFunc: func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		dials.Add(1)
		return &staleConn{Conn: conn, stale: stale}, nil
	}}
	r := &partitionReader{dialer: d, brokers: k.Brokers, topic: topic, partition: 1,
		minBytes: 1, maxBytes: 1 << 20, maxWait: 50 * time.Millisecond}
	t.Cleanup(func() { _ = r.Close() })
	produce(0, 3)
	for i := range 3 {
		if m, err := r.FetchMessage(ctx); err != nil || m.Offset != int64(i) {
			t.Fatalf("message %d: offset %d, %v", i, m.Offset, err)
		}
	}
	before := dials.Load()
	stale.arm()
	produce(3, 5)
	for i := 3; i < 5; i++ {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("message %d after an answer out of step: %v", i, err)
		}
		if m.Offset != int64(i) || string(m.Value) != fmt.Sprintf("m%d", i) {
			t.Fatalf("message %d: got offset %d value %q", i, m.Offset, m.Value)
		}
	}
	if stale.armed.Load() {
		t.Fatal("the stale answer was never read: the test did not put the connection out of step")
	}
	if dials.Load() == before {
		t.Error("the reader read on without a new connection")
	}
}

// staleAnswer is an answer left on the wire: once armed, the next read of
// any staleConn returns it, ahead of what the broker sent.
type staleAnswer struct{ armed atomic.Bool }

func (s *staleAnswer) arm() { s.armed.Store(true) }

// staleConn is a connection that returns a staleAnswer when one is armed.
type staleConn struct {
	net.Conn
	stale *staleAnswer
}

func (c *staleConn) Read(p []byte) (int, error) {
	if len(p) >= 8 && c.stale.armed.CompareAndSwap(true, false) {
		// An answer of four bytes: its size, and a correlation id no
		// request of this connection has.
		binary.BigEndian.PutUint32(p[0:4], 4)
		binary.BigEndian.PutUint32(p[4:8], 0x7fffffff)
		return 8, nil
	}
	return c.Conn.Read(p)
}
