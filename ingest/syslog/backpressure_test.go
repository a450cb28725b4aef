package syslog

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/internal/testkit"
)

// blockedProducer is a gate option: the gate's producer holds every
// produce until the returned channel is closed (a Kafka that does not
// answer). The tests that show lines reach Kafka use the embedded broker.
func blockedProducer(fp *testkit.FakeProducer) testkit.GateOption {
	fp.Block = make(chan struct{})
	return func(c *ingest.GateConfig) { c.Producer = fp }
}

// TestTCPPausesWhileKafkaBlocks: while commits cannot finish, the collector
// stops reading, so the sender blocks in TCP; once Kafka answers, every
// line arrives.
func TestTCPPausesWhileKafkaBlocks(t *testing.T) {
	fp := &testkit.FakeProducer{}
	r := startRig(t, Config{MaxBatchLines: 100}, blockedProducer(fp))
	conn := r.dial(t)
	line := []byte(octet("<14>1 - h app - - - a line of some length to fill buffers faster, ..........................................................................."))
	sent := 0
	var partial []byte
	blockedAt := time.Time{}
	for sent < 1_000_000 {
		_ = conn.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := conn.Write(line)
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal(err)
			}
			partial = line[n:]
			blockedAt = time.Now()
			break
		}
		sent++
	}
	if blockedAt.IsZero() {
		t.Fatalf("sent %d lines without blocking while Kafka did not answer", sent)
	}
	read := counter(r.c.metrics.lines, "tcp")
	// Two batches (one committing, one read) and what fits in the socket
	// buffers is all that may be taken; the rest waits in the sender.
	if read > 2*100+1 {
		t.Fatalf("the collector read %v lines while Kafka blocked (sent %d)", read, sent)
	}
	time.Sleep(300 * time.Millisecond)
	if again := counter(r.c.metrics.lines, "tcp"); again != read {
		t.Fatalf("reading went on while blocked: %v then %v lines", read, again)
	}
	close(fp.Block)
	_ = conn.SetWriteDeadline(time.Time{})
	if _, err := conn.Write(partial); err != nil {
		t.Fatal(err)
	}
	sent++
	testkit.Eventually(t, 30*time.Second, fmt.Sprintf("%d lines produced", sent), func() bool {
		return len(fp.Produced()) == sent
	})
	t.Logf("sender blocked after %d lines; the collector had read %v", sent-1, read)
}

// TestUDPDropsWhenQueueFull: UDP cannot be slowed, so what does not fit in
// the queue while Kafka blocks is dropped and counted, and the rest
// arrives once it answers.
func TestUDPDropsWhenQueueFull(t *testing.T) {
	fp := &testkit.FakeProducer{}
	r := startRig(t, Config{UDPQueueLines: 50, MaxBatchLines: 10}, blockedProducer(fp))
	conn, err := net.Dial("udp", r.c.UDPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const n = 1000
	for i := range n {
		if _, err := fmt.Fprintf(conn, "<14>1 - h app - - - datagram %d", i); err != nil {
			t.Fatal(err)
		}
		if i%20 == 19 {
			// Paced so that the kernel's receive buffer (rmem_max caps
			// it near 200 KiB) does not overflow: the kernel's drops are
			// not Sluice's to count.
			time.Sleep(2 * time.Millisecond)
		}
	}
	dropped := func() float64 { return counter(r.c.metrics.dropped, "udp", "queue_full") }
	testkit.Eventually(t, 10*time.Second, "every datagram queued or dropped", func() bool {
		return dropped()+value(r.c.metrics.udpQueueSize) >= n-10 // the one batch being committed
	})
	if d := dropped(); d < n-100 {
		t.Fatalf("dropped %v of %d with a queue of 50", d, n)
	}
	close(fp.Block)
	testkit.Eventually(t, 10*time.Second, "the queued datagrams produced", func() bool {
		return float64(len(fp.Produced()))+dropped() == n
	})
}

// TestShutdownCommitsWhatWasRead: lines read before the context ends are
// committed within the grace, and Run returns with connections open.
func TestShutdownCommitsWhatWasRead(t *testing.T) {
	k := testkit.StartKafka(t)
	gate := testkit.NewGate(t, k, nil)
	c, err := New(gate, Config{TCPAddr: "127.0.0.1:0", BatchLinger: time.Hour, Logger: testkit.FileLogger(t, "syslog.log")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	conn, err := net.Dial("tcp", c.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range 10 {
		fmt.Fprintf(conn, "<14>1 - h app - - - before shutdown %d\n", i)
	}
	testkit.Eventually(t, 5*time.Second, "10 lines read", func() bool {
		return counter(c.metrics.lines, "tcp") == 10
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if got := len(k.ReadTopic(t, testkit.StreamTopic(Stream))); got != 10 {
		t.Fatalf("%d lines in Kafka after shutdown, want 10", got)
	}
	if _, err := net.Dial("tcp", c.TCPAddr().String()); err == nil {
		t.Fatal("still accepting after Run returned")
	}
}

// TestTCPBufferBudget: however many connections are busy, the batches
// held at once stay within MaxBufferBytes while Kafka does not answer.
func TestTCPBufferBudget(t *testing.T) {
	fp := &testkit.FakeProducer{}
	// Batches of at most 10 lines, 4 of them at once.
	r := startRig(t, Config{MaxBatchLines: 10, MaxBatchBytes: 1000, MaxBufferBytes: 4000}, blockedProducer(fp))
	const conns, perConn = 20, 50
	for c := range conns {
		conn := r.dial(t)
		go func() {
			for i := range perConn {
				if _, err := fmt.Fprintf(conn, "<14>1 - h app - - - conn %d line %d\n", c, i); err != nil {
					return
				}
			}
		}()
	}
	// Every connection reads its first line, then waits for a slot; the
	// four that got one fill their batch and hand it on.
	time.Sleep(time.Second)
	if read := counter(r.c.metrics.lines, "tcp"); read > 4*10+conns {
		t.Fatalf("%v lines read while Kafka blocked, with room for 4 batches of 10", read)
	}
	close(fp.Block)
	testkit.Eventually(t, 30*time.Second, "every line produced", func() bool {
		return len(fp.Produced()) == conns*perConn
	})
}
