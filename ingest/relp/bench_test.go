package relp_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/internal/testkit"
)

// BenchmarkRELPFrames measures syslog frames per second from RELP senders
// into Kafka (the embedded broker, acks=all), each sender pipelining up to
// omrelp's default window of 128 unanswered frames, with the producer's
// linger (--kafka-linger) at its default and at 1 ms: a sender waiting for
// its window is bound by the commit latency.
//
//	go test -run '^$' -bench RELPFrames -benchtime 200000x ./ingest/relp/
func BenchmarkRELPFrames(b *testing.B) {
	for _, run := range []struct {
		conns  int
		linger time.Duration
	}{{1, ingest.DefaultBatchTimeout}, {4, ingest.DefaultBatchTimeout}, {1, time.Millisecond}, {4, time.Millisecond}} {
		conns := run.conns
		b.Run(fmt.Sprintf("conns=%d/linger=%s", conns, run.linger), func(b *testing.B) {
			k := testkit.StartKafka(b)
			p, err := ingest.NewKafkaProducer(ingest.KafkaConfig{Brokers: k.Brokers, BatchTimeout: run.linger, Logger: testkit.QuietLogger()})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = p.Close() }) // after the server's own cleanup
			gate, err := ingest.NewGate(ingest.GateConfig{Registry: testkit.Registry(b), Producer: p, Logger: testkit.QuietLogger()})
			if err != nil {
				b.Fatal(err)
			}
			s := startServer(b, gate, nil)
			errs := make(chan error, conns)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for c := range conns {
				n := b.N / conns
				if c == 0 {
					n += b.N % conns
				}
				wg.Go(func() { errs <- sendPipelined(s.addr(), n, 128) })
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			close(errs)
			for err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "frames/s")
		})
	}
}

// sendPipelined sends n syslog frames on one session with at most window
// unanswered, as omrelp does, and returns once all are answered.
func sendPipelined(addr string, n, window int) error {
	c, err := testkit.DialRELP(addr)
	if err != nil {
		return err
	}
	defer c.Conn.Close()
	if err := c.Open(); err != nil {
		return err
	}
	first := c.Txnr() + 1
	slots := make(chan struct{}, window)
	answered := make(chan error, 1)
	go func() { // owned by sendPipelined, ends after n answers or an error
		for i := range n {
			f, err := c.ReadFrame()
			if err == nil && (f.Txnr != first+i || f.Data != "200 OK") {
				err = fmt.Errorf("answer %d: %+v", i, f)
			}
			if err != nil {
				answered <- err
				return
			}
			<-slots
		}
		answered <- nil
	}()
	for i := range n {
		select {
		case slots <- struct{}{}:
		default:
			if err := c.Flush(); err != nil {
				return err
			}
			slots <- struct{}{}
		}
		if err := c.Queue("syslog", []byte(line(i))); err != nil {
			return err
		}
	}
	err = c.Flush()
	return errors.Join(err, <-answered)
}
