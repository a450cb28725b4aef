package syslog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/sluicehq/sluice/backpressure"
	"github.com/sluicehq/sluice/ingest"
)

// readBufSize is each TCP connection's read buffer: large enough that a
// busy sender's lines arrive in few reads, small enough that a thousand
// connections hold 16 MiB.
const readBufSize = 16 << 10

// errIdle ends a connection that sent nothing for Config.IdleTimeout;
// errShutdown one that waited for a batch slot when the collector stopped.
var (
	errIdle     = errors.New("idle")
	errShutdown = errors.New("shutting down")
)

// serveTCP accepts connections until the listener is closed, each served
// by its own goroutine in wg.
func (c *Collector) serveTCP(ctx, commitCtx context.Context, wg *sync.WaitGroup) {
	tm := c.metrics.transport("tcp")
	backoff := 5 * time.Millisecond
	for {
		conn, err := c.tcp.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors, say: wait rather than spin.
			c.log.Warn("syslog TCP accept failed", "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		if !c.track(conn) {
			c.metrics.conns.WithLabelValues("refused").Inc()
			_ = conn.Close()
			continue
		}
		c.metrics.conns.WithLabelValues("accepted").Inc()
		wg.Go(func() {
			defer c.untrack(conn)
			t := &tcpConn{c: c, conn: conn, peer: conn.RemoteAddr().String(), tm: tm}
			t.dr = &deadlineReader{conn: conn, timeout: c.cfg.ReadTimeout}
			t.fr = newFrameReader(t.dr, readBufSize, c.cfg.MaxMessageBytes)
			t.fr.long, t.fr.ctx = c.long, ctx
			defer t.fr.dropLong()
			t.serve(commitCtx)
		})
	}
}

// track records an open connection, or refuses it when MaxConnections are
// open or the collector is shutting down (ctx ended: conns is nil).
func (c *Collector) track(conn net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conns == nil || len(c.conns) >= c.cfg.MaxConnections {
		return false
	}
	c.conns[conn] = struct{}{}
	c.metrics.connsOpen.Inc()
	return true
}

func (c *Collector) untrack(conn net.Conn) {
	_ = conn.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.conns[conn]; ok {
		delete(c.conns, conn)
	}
	c.metrics.connsOpen.Dec()
}

// closeConns stops every reader at its next read and makes track refuse
// connections from now on.
func (c *Collector) closeConns() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for conn := range c.conns {
		// Readers see EOF, commit what they hold and close.
		if cr, ok := conn.(interface{ CloseRead() error }); ok {
			_ = cr.CloseRead()
		} else {
			_ = conn.Close()
		}
	}
	c.conns = nil
}

// tcpConn is one connection's reader. It is owned by the goroutine that
// serveTCP starts for it, which reads frames into a batch and hands full
// batches to the connection's committer goroutine, which it starts and
// waits for. The hand-off is unbuffered: at most one batch commits while
// the next is read, and while both are busy reading stops, so a sender
// outrunning Kafka fills its TCP window and blocks.
type tcpConn struct {
	c    *Collector
	conn net.Conn
	peer string
	tm   *transportMetrics
	dr   *deadlineReader
	fr   *frameReader

	batch   *ingest.Batch // nil between commits
	started time.Time     // when batch began
	bytes   int           // of the messages in batch
	out     chan *ingest.Batch
}

// serve reads until the peer closes, a bound is hit or the collector
// shuts down, then commits what it holds. ctx bounds the commits.
func (t *tcpConn) serve(ctx context.Context) {
	t.out = make(chan *ingest.Batch)
	committed := make(chan struct{})
	go func() {
		defer close(committed)
		for b := range t.out {
			t.c.commit(ctx, b, "tcp")
			<-t.c.slots
		}
	}()
	defer func() {
		t.flush()
		close(t.out)
		<-committed
	}()
	for {
		if err := t.await(); err != nil {
			t.end(err)
			return
		}
		fr, err := t.fr.next()
		if err != nil {
			t.end(err)
			return
		}
		err = t.handle(fr)
		// The batch holds its own copy: a long message's memory goes back
		// now, not when the sender, maybe idle for minutes, sends more.
		t.fr.dropLong()
		if err != nil {
			if !errors.Is(err, errShutdown) {
				t.c.log.Error("syslog batch", "peer", t.peer, "err", err)
			}
			return
		}
		if t.batch.Len() >= t.c.cfg.MaxBatchLines || t.bytes >= t.c.cfg.MaxBatchBytes {
			t.flush()
		}
	}
}

// await returns once the next frame has begun to arrive. While the sender
// pauses it commits the pending lines after BatchLinger, and it gives up
// on a connection idle for IdleTimeout.
func (t *tcpConn) await() error {
	for t.fr.br.Buffered() == 0 {
		pending := t.batch != nil
		if pending {
			// Never a deadline already past: Go would then not even look
			// for data waiting in the socket, and a busy sender's batch
			// would be committed every time the buffer runs dry.
			t.dr.fixed = t.started.Add(t.c.cfg.BatchLinger)
			if soon := time.Now().Add(50 * time.Microsecond); t.dr.fixed.Before(soon) {
				t.dr.fixed = soon
			}
		} else {
			t.dr.fixed = time.Now().Add(t.c.cfg.IdleTimeout)
		}
		_, err := t.fr.br.Peek(1)
		t.dr.fixed = time.Time{}
		switch {
		case err == nil:
			return nil
		case errors.Is(err, os.ErrDeadlineExceeded) && pending:
			t.flush()
		case errors.Is(err, os.ErrDeadlineExceeded):
			return errIdle
		default:
			return err
		}
	}
	return nil
}

// handle adds one frame to the batch, beginning one if needed.
func (t *tcpConn) handle(fr frame) error {
	if t.batch == nil {
		select {
		case t.c.slots <- struct{}{}:
		case <-t.c.stopping:
			// The frame is dropped, as are those the sender has in
			// flight on a connection that is about to be closed.
			t.c.metrics.dropped.WithLabelValues("tcp", "shutdown").Inc()
			return errShutdown
		}
		b, err := t.c.begin(t.peer)
		if err != nil {
			<-t.c.slots
			return err
		}
		t.batch, t.started, t.bytes = b, time.Now(), 0
	}
	t.bytes += len(fr.msg)
	if fr.truncated {
		t.tm.lines.Inc()
		t.tm.bytes.Add(float64(fr.size))
		return t.batch.Reject(fr.msg, fmt.Sprintf("message of %d bytes over the %d-byte maximum (first %d bytes kept)",
			fr.size, t.c.cfg.MaxMessageBytes, len(fr.msg)))
	}
	return t.c.add(t.batch, fr.msg, t.started, t.tm, "")
}

// flush hands the batch to the committer, waiting while it commits the
// previous one.
func (t *tcpConn) flush() {
	if t.batch != nil {
		t.out <- t.batch
		t.batch = nil
	}
}

// end logs and counts why the connection ends.
func (t *tcpConn) end(err error) {
	var reason string
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return
	case errors.Is(err, errIdle):
		reason = "idle_timeout"
		t.c.log.Info("syslog connection idle: closed", "peer", t.peer, "idle_timeout", t.c.cfg.IdleTimeout)
	case errors.Is(err, os.ErrDeadlineExceeded):
		reason = "read_timeout"
		t.c.log.Warn("syslog connection stalled in a frame: closed", "peer", t.peer, "read_timeout", t.c.cfg.ReadTimeout)
	case errors.Is(err, errFrameTooLarge):
		reason = "frame_too_large"
		t.c.log.Error("syslog connection closed", "peer", t.peer, "err", err)
	case errors.Is(err, backpressure.ErrBusy):
		reason = "long_message_memory"
		t.c.log.Warn("syslog connection closed: no memory for its long message within the read timeout (other connections held --syslog-max-long-message-bytes)",
			"peer", t.peer, "err", err, "read_timeout", t.c.cfg.ReadTimeout)
	case errors.Is(err, context.Canceled):
		return // shutting down while it waited for memory
	case errors.Is(err, io.ErrUnexpectedEOF):
		reason = "truncated_frame"
		t.c.log.Warn("syslog connection closed in the middle of a frame", "peer", t.peer)
	default:
		reason = "read_error"
		t.c.log.Warn("syslog connection read failed", "peer", t.peer, "err", err)
	}
	t.c.metrics.connErrors.WithLabelValues(reason).Inc()
}

// deadlineReader sets the connection's read deadline before every read:
// fixed when set, else ReadTimeout from now, so that a frame in progress
// may take as long as it likes while bytes keep coming.
type deadlineReader struct {
	conn    net.Conn
	timeout time.Duration
	fixed   time.Time
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	dl := d.fixed
	if dl.IsZero() {
		dl = time.Now().Add(d.timeout)
	}
	if err := d.conn.SetReadDeadline(dl); err != nil {
		return 0, err
	}
	return d.conn.Read(p)
}
