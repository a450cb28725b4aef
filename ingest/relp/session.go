package relp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/backpressure"
	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/ingest/syslog"
)

// Commands of the protocol.
const (
	cmdOpen        = "open"
	cmdSyslog      = "syslog"
	cmdClose       = "close"
	cmdRsp         = "rsp"
	cmdServerClose = "serverclose"
)

// frameOverhead is what a frame costs against MaxPendingBytes beyond its
// data, so that frames without data are bounded too.
const frameOverhead = 64

// readBufSize is each connection's read buffer. Larger frames are read
// past it, straight into their own memory, which the budgets count.
const readBufSize = 32 << 10

var (
	okAnswer = []byte("200 OK")
	// offers is the answer to "open": the protocol version librelp speaks,
	// who we are, and the one command we take.
	offers = []byte("200 OK\nrelp_version=0\nrelp_software=sluice,1,https://github.com/sluicehq/sluice\ncommands=syslog")

	errSessionDone = errors.New("session ended")
	// errIdle ends a session that sent nothing between frames for
	// Config.IdleTimeout.
	errIdle     = errors.New("relp: session idle")
	errProtocol = errors.New("relp: protocol error")
	errTxnr     = errors.New("relp: transaction number out of sequence")
)

// received is a frame and when it was read.
type received struct {
	f  Frame
	at time.Time
}

// session is one RELP connection. Its serve method owns it and one reader
// goroutine: the reader parses frames and hands them over on frames; serve
// groups them, commits each group to Kafka and answers it. The reader
// stops when serve closes done, cancels stop (ending a wait for the
// pending budget) and expires the read deadline, which it does on its way
// out.
type session struct {
	s      *Server
	conn   net.Conn
	br     *bufio.Reader
	log    *slog.Logger
	peer   string
	frames chan received
	done   chan struct{}
	// stop ends the reader's wait for the pending budget when done closes.
	stop    context.Context
	cancel  context.CancelFunc
	pending *pending
	rd      readDeadline

	readErr error // why the reader stopped; read after frames is closed
	open    bool
	out     []byte
}

func newSession(s *Server, conn net.Conn) *session {
	peer := conn.RemoteAddr().String()
	stop, cancel := context.WithCancel(context.Background())
	return &session{
		s: s, conn: conn, peer: peer,
		br:      bufio.NewReaderSize(conn, readBufSize),
		log:     s.log.With("peer", peer),
		frames:  make(chan received, s.maxBatch),
		done:    make(chan struct{}),
		stop:    stop,
		cancel:  cancel,
		pending: newPending(int64(s.cfg.MaxPendingBytes), s.buffer),
		rd:      readDeadline{conn: conn},
	}
}

// serve runs the session until the peer closes it, it fails, or ctx ends.
// Commits use commitCtx, which outlives ctx by the shutdown grace.
func (c *session) serve(ctx, commitCtx context.Context) {
	c.log.Info("relp connection opened")
	var reader sync.WaitGroup
	reader.Go(func() {
		c.readErr = c.readLoop()
		close(c.frames)
	})
	err := c.process(ctx, commitCtx)
	close(c.done)
	c.cancel()
	c.rd.stop()
	_ = c.conn.Close()
	reader.Wait()
	// Frames read and never answered: the sender resends them.
	c.pending.giveAll()
	c.logEnd(ctx, err)
}

// process takes frames from the reader and answers them until the session
// ends; nil means it ended in order (close, serverclose, peer gone).
func (c *session) process(ctx, commitCtx context.Context) error {
	for {
		if ctx.Err() != nil {
			c.serverClose()
			return nil
		}
		var first received
		select {
		case <-ctx.Done():
			c.serverClose()
			return nil
		case r, ok := <-c.frames:
			if !ok {
				if errors.Is(c.readErr, errIdle) {
					// Said so that librelp reconnects when it next has
					// something to send, rather than finding out then.
					c.serverClose()
				}
				return c.readErr
			}
			first = r
		}
		closed, err := c.handle(commitCtx, c.collect(first))
		if err != nil || closed {
			return err
		}
	}
}

// collect groups first with the syslog frames read after it: those already
// read, then those arriving within Linger, up to MaxBatch. Any other
// command ends the group, so that answers keep the frames' order.
func (c *session) collect(first received) []received {
	group := []received{first}
	if first.f.Cmd != cmdSyslog {
		return group
	}
	var timer <-chan time.Time
	if c.s.cfg.Linger > 0 {
		t := time.NewTimer(c.s.cfg.Linger)
		defer t.Stop()
		timer = t.C
	}
	for len(group) < c.s.maxBatch {
		var r received
		var ok bool
		select {
		case r, ok = <-c.frames:
		default:
			if timer == nil {
				return group
			}
			select {
			case r, ok = <-c.frames:
			case <-timer:
				return group
			}
		}
		if !ok {
			return group
		}
		group = append(group, r)
		if r.f.Cmd != cmdSyslog {
			return group
		}
	}
	return group
}

// handle commits the group's syslog frames, then answers them in order,
// and the command that may end the group. closed reports that the peer
// closed the session.
func (c *session) handle(ctx context.Context, group []received) (closed bool, err error) {
	syslogs, last := group, group[len(group)-1]
	if last.f.Cmd != cmdSyslog {
		syslogs = group[:len(group)-1]
	}
	if len(syslogs) > 0 {
		if !c.open {
			return false, fmt.Errorf("%w: syslog before open", errProtocol)
		}
		if err := c.commit(ctx, syslogs); err != nil {
			return false, err
		}
		for _, r := range syslogs {
			c.out = AppendFrame(c.out, r.f.Txnr, cmdRsp, okAnswer)
		}
	}
	if last.f.Cmd != cmdSyslog {
		if closed, err = c.command(last.f); err != nil {
			return false, err
		}
	}
	if err := c.flush(); err != nil {
		return false, err
	}
	now := time.Now()
	for _, r := range group {
		c.pending.give(int64(len(r.f.Data) + frameOverhead))
	}
	for _, r := range syslogs {
		c.s.m.latency.Observe(now.Sub(r.at).Seconds())
	}
	c.s.m.answered.Add(float64(len(syslogs)))
	return closed, nil
}

// command answers a frame other than syslog.
func (c *session) command(f Frame) (closed bool, err error) {
	switch f.Cmd {
	case cmdOpen:
		if c.open {
			c.out = AppendFrame(c.out, f.Txnr, cmdRsp, []byte("200 connection already open - ignored"))
			return false, nil
		}
		c.open = true
		c.out = AppendFrame(c.out, f.Txnr, cmdRsp, offers)
	case cmdClose:
		c.out = AppendFrame(c.out, f.Txnr, cmdRsp, nil)
		return true, nil
	default:
		if !c.open {
			return false, fmt.Errorf("%w: %q before open", errProtocol, f.Cmd)
		}
		c.out = AppendFrame(c.out, f.Txnr, cmdRsp, []byte("500 command not supported"))
	}
	return false, nil
}

// commit hands the frames' lines to the gate and waits until Kafka holds
// them all: events, and dead letters for lines that do not parse or
// validate. Under overload or with Kafka down it waits (CommitWait), and
// meanwhile nothing is answered and, once the budget is spent, nothing
// read.
func (c *session) commit(ctx context.Context, frames []received) error {
	b, err := c.s.cfg.Gate.Begin(c.s.cfg.Stream, ingest.Origin{Source: "relp", Detail: "relp " + c.peer, DeadLetter: true})
	if err != nil {
		return fmt.Errorf("relp: begin batch: %w", err)
	}
	now := time.Now()
	for _, r := range frames {
		if err := c.add(b, r.f.Data, now); err != nil {
			return fmt.Errorf("relp: add frame %d: %w", r.f.Txnr, err)
		}
	}
	if err := b.CommitWait(ctx); err != nil {
		return fmt.Errorf("relp: commit %d frames: %w", len(frames), err)
	}
	return nil
}

func (c *session) add(b *ingest.Batch, line []byte, now time.Time) error {
	// The raw line is the event's identity: omrelp resends the same bytes
	// after a reconnect, under a new transaction number.
	parsed, err := syslog.AddLine(b, line, now, !c.s.cfg.RandomIDs, "")
	if !parsed {
		c.s.m.parseFailures.Inc()
	}
	return err
}

func (c *session) flush() error {
	if len(c.out) == 0 {
		return nil
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
	_, err := c.conn.Write(c.out)
	c.out = c.out[:0]
	if err != nil {
		return fmt.Errorf("relp: write answers: %w", err)
	}
	return nil
}

// serverClose tells the peer that the server ends the session; librelp
// then reconnects and resends what was not answered.
func (c *session) serverClose() {
	c.out = AppendFrame(c.out[:0], 0, cmdServerClose, nil)
	_ = c.flush()
}

// readLoop reads frames until the connection fails or ends. Between frames
// it waits up to IdleTimeout; once a frame has begun, the rest of it must
// arrive within FrameTimeout.
func (c *session) readLoop() error {
	expect := 1
	for {
		c.rd.set(time.Now().Add(c.s.cfg.IdleTimeout))
		if _, err := c.br.Peek(1); err != nil {
			if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
				return errIdle
			}
			return err
		}
		c.rd.set(time.Now().Add(c.s.cfg.FrameTimeout))
		f, err := readFrame(c.br, c.s.cfg.MaxFrameBytes, c.reserve)
		if err != nil {
			return err
		}
		if f.Txnr != 0 { // 0 is for hints, outside the sequence
			if f.Txnr != expect {
				return fmt.Errorf("%w: got %d, want %d", errTxnr, f.Txnr, expect)
			}
			expect = nextTxnr(expect)
		}
		if f.Cmd == cmdSyslog {
			c.s.m.received.Inc()
		}
		select {
		case c.frames <- received{f: f, at: time.Now()}:
		case <-c.done:
			return errSessionDone
		}
	}
}

// logEnd logs why the session ended and counts the peer's faults.
func (c *session) logEnd(ctx context.Context, err error) {
	var ne net.Error
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, errSessionDone), ctx.Err() != nil:
		c.log.Info("relp connection closed", "err", err)
	case errors.Is(err, errIdle):
		c.s.m.protocolErrors.WithLabelValues("idle").Inc()
		c.log.Info("relp connection idle: closed", "idle_timeout", c.s.cfg.IdleTimeout)
	case errors.Is(err, ErrFrameTooLarge):
		c.s.m.protocolErrors.WithLabelValues("frame_too_large").Inc()
		c.log.Error("relp connection closed: frame too large", "err", err, "max_frame_bytes", c.s.cfg.MaxFrameBytes)
	case errors.Is(err, ErrInvalidFrame):
		c.s.m.protocolErrors.WithLabelValues("invalid_frame").Inc()
		c.log.Warn("relp connection closed: invalid frame", "err", err)
	case errors.As(err, &ne) && ne.Timeout():
		c.s.m.protocolErrors.WithLabelValues("stalled").Inc()
		c.log.Warn("relp connection closed: frame not completed in time", "frame_timeout", c.s.cfg.FrameTimeout)
	case errors.Is(err, errTxnr):
		c.s.m.protocolErrors.WithLabelValues("txnr").Inc()
		c.log.Warn("relp connection closed", "err", err)
	case errors.Is(err, errProtocol):
		c.s.m.protocolErrors.WithLabelValues("protocol").Inc()
		c.log.Warn("relp connection closed", "err", err)
	default:
		c.log.Warn("relp connection closed", "err", err)
	}
}

// readDeadline sets the connection's read deadline until stop, after
// which the deadline stays in the past: a reader that sets a deadline just
// after the session stopped must not undo the stop.
type readDeadline struct {
	mu      sync.Mutex
	stopped bool
	conn    net.Conn
}

func (d *readDeadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.stopped {
		_ = d.conn.SetReadDeadline(t)
	}
}

func (d *readDeadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopped = true
	_ = d.conn.SetReadDeadline(time.Unix(1, 0))
}

// reserve takes a frame's bytes (its data and frameOverhead) from the
// pending budgets before the frame's data is read, waiting, with reading
// paused, while they are spent. The frame's time to arrive starts again
// once they are taken: the wait was the server's, not the sender's.
func (c *session) reserve(n int) error {
	if err := c.pending.take(c.stop, int64(n+frameOverhead)); err != nil {
		return errSessionDone
	}
	c.rd.set(time.Now().Add(c.s.cfg.FrameTimeout))
	return nil
}

// pending bounds the frame bytes a session holds read and not yet
// answered, twice: by the session's own MaxPendingBytes, so that one
// sender cannot take all, and by the server's buffer, shared by every
// session, so that all of them together stay within what --memory-limit
// gave the collector. The reader takes a frame's bytes before it
// allocates them (reserve); the processor gives them back once the frame
// is answered, and the session gives back what is left when it ends. A
// frame larger than a bound takes all of it, so that it passes once
// nothing else is held.
type pending struct {
	// session is the session's own: what it holds is all this session's.
	session *backpressure.Admission
	server  *buffer
	// heldSmall and heldLarge are what this session took from each half
	// of the server's, for giveAll.
	heldSmall, heldLarge atomic.Int64
}

func newPending(limit int64, server *buffer) *pending {
	return &pending{session: backpressure.NewAdmission(backpressure.AdmissionConfig{Capacity: limit, MaxWait: backpressure.NoWaitLimit}), server: server}
}

// take waits until n fits both bounds, or ctx ends.
func (p *pending) take(ctx context.Context, n int64) error {
	ns := min(n, p.session.Capacity())
	if err := p.session.Acquire(ctx, ns); err != nil {
		return err
	}
	a, held := p.part(n)
	nv := min(n, a.Capacity())
	if err := a.Acquire(ctx, nv); err != nil {
		p.session.Release(ns)
		return err
	}
	held.Add(nv)
	return nil
}

// give gives back what take(n) took.
func (p *pending) give(n int64) {
	a, held := p.part(n)
	nv := min(n, a.Capacity())
	a.Release(nv)
	held.Add(-nv)
	p.session.Release(min(n, p.session.Capacity()))
}

// giveAll gives back what the session still holds; called once its reader
// and processor have stopped.
func (p *pending) giveAll() {
	p.server.small.Release(p.heldSmall.Swap(0))
	p.server.large.Release(p.heldLarge.Swap(0))
	p.session.Release(p.session.InFlight())
}

// part is the half of the server's buffer a frame of n bytes takes, and
// this session's count of what it holds there.
func (p *pending) part(n int64) (*backpressure.Admission, *atomic.Int64) {
	if n <= smallFrameBytes {
		return p.server.small, &p.heldSmall
	}
	return p.server.large, &p.heldLarge
}

// smallFrameBytes is the largest frame, overhead included, that the
// buffer's small part holds; larger ones take the large part.
const smallFrameBytes = 4 << 10

// buffer is the server's bound on the frame bytes held by all sessions
// (Config.MaxBufferBytes), in two halves. Why two: a waiter for a
// weighted semaphore holds back every later one, and a large frame waits
// longest, so that senders announcing large frames and stalling (each
// holds its share until the frame timeout) would hold back every sender
// of ordinary lines too. With large frames apart, they only hold back
// each other; the small part is more than every connection's frame being
// read can hold at once, so stalls take only a part of it.
type buffer struct {
	small, large *backpressure.Admission
}

func newBuffer(bytes int) *buffer {
	half := int64(max(bytes/2, smallFrameBytes))
	cfg := backpressure.AdmissionConfig{Capacity: half, MaxWait: backpressure.NoWaitLimit}
	return &buffer{small: backpressure.NewAdmission(cfg), large: backpressure.NewAdmission(cfg)}
}

func (b *buffer) inUse() int64   { return b.small.InFlight() + b.large.InFlight() }
func (b *buffer) waiting() int64 { return b.small.Waiting() + b.large.Waiting() }
