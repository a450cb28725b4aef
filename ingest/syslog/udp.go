package syslog

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/ingest"
)

// udpReadBuffer is the socket receive buffer asked for: bursts wait in the
// kernel while the committer is busy rather than being dropped there,
// uncounted.
const udpReadBuffer = 4 << 20

// datagram is one received message waiting in the UDP queue.
type datagram struct {
	msg       []byte
	peer      string
	truncated int // the datagram's size when it was cut, else 0
}

// serveUDP runs the socket reader and the committer; the reader owns the
// queue and closes it when the socket is closed, which ends the committer.
func (c *Collector) serveUDP(ctx, commitCtx context.Context) {
	if uc, ok := c.udp.(*net.UDPConn); ok {
		if err := uc.SetReadBuffer(udpReadBuffer); err != nil {
			c.log.Warn("syslog UDP receive buffer not enlarged", "err", err)
		}
	}
	queue := make(chan datagram, c.cfg.UDPQueueLines)
	var queued atomic.Int64 // bytes in queue
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.commitUDP(commitCtx, queue, &queued)
	}()
	c.readUDP(ctx, queue, &queued)
	close(queue)
	<-done
}

// readUDP reads datagrams into queue until the socket is closed, dropping
// (and counting) those that do not fit: UDP cannot be slowed.
func (c *Collector) readUDP(ctx context.Context, queue chan<- datagram, queued *atomic.Int64) {
	dropped := c.metrics.dropped.WithLabelValues("udp", "queue_full")
	// One byte more than the maximum tells a datagram that was cut.
	buf := make([]byte, max(c.cfg.MaxMessageBytes+1, 64<<10))
	for {
		n, addr, err := c.udp.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			c.log.Warn("syslog UDP read failed", "err", err)
			continue
		}
		d := datagram{peer: addr.String()}
		if n > c.cfg.MaxMessageBytes {
			d.truncated, n = n, c.cfg.MaxMessageBytes
		}
		for n > 0 && (buf[n-1] == '\n' || buf[n-1] == '\r' || buf[n-1] == 0) {
			n--
		}
		if n == 0 {
			continue
		}
		if queued.Load()+int64(n) > int64(c.cfg.UDPQueueBytes) {
			dropped.Inc()
			continue
		}
		d.msg = append([]byte(nil), buf[:n]...)
		select {
		case queue <- d:
			queued.Add(int64(n))
			c.metrics.udpQueueSize.Inc()
		default:
			dropped.Inc()
		}
	}
}

// commitUDP drains queue in batches of up to MaxBatchLines. A batch holds
// datagrams from many peers: its origin is the listener, and each dead
// letter's reason names the peer it came from.
func (c *Collector) commitUDP(ctx context.Context, queue <-chan datagram, queued *atomic.Int64) {
	tm := c.metrics.transport("udp")
	origin := "udp " + c.udp.LocalAddr().String()
	for d := range queue {
		b, err := c.begin(origin)
		if err != nil {
			c.log.Error("syslog UDP batch", "err", err)
			return
		}
		now := time.Now()
		for more := true; more; {
			c.takeUDP(b, d, now, tm, queued)
			if b.Len() >= c.cfg.MaxBatchLines {
				break
			}
			select {
			case d, more = <-queue:
			default:
				more = false
			}
		}
		c.commit(ctx, b, "udp")
	}
}

// takeUDP adds one dequeued datagram to b.
func (c *Collector) takeUDP(b *ingest.Batch, d datagram, now time.Time, tm *transportMetrics, queued *atomic.Int64) {
	queued.Add(-int64(len(d.msg)))
	c.metrics.udpQueueSize.Dec()
	if d.truncated > 0 {
		tm.lines.Inc()
		tm.bytes.Add(float64(d.truncated))
		_ = b.Reject(d.msg, fmt.Sprintf("from %s: datagram of %d bytes over the %d-byte maximum (first %d bytes kept)",
			d.peer, d.truncated, c.cfg.MaxMessageBytes, len(d.msg)))
		return
	}
	_ = c.add(b, d.msg, now, tm, d.peer)
}
