package httpapi

import (
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// connLimit bounds the connections the server serves at once. When all are
// taken and another connection arrives, it closes the connection that has
// been idle (kept alive between requests) the longest, if that is at least
// minIdle; otherwise the new connection waits for a slot, and it looks
// again every evictCheck.
//
// Why: the bound comes from the memory budget, which counts each
// connection at its worst (one sending its header block, about 110 KiB),
// so at 512 MiB it is under a hundred. Kept-alive connections cost far less
// while idle, and most are idle most of the time: a device that posts every
// few seconds would otherwise hold its slot for the whole idle timeout (two
// minutes) while new devices wait. A client whose idle connection is
// closed connects again when it has more to send. Only connections idle
// for minIdle are closed, because one that a client is reusing at that
// very moment fails its request: the longer a connection has been idle,
// the less likely that is.
//
// It is the server's listener wrapper (wrap) and ConnState hook (track);
// safe for concurrent use.
type connLimit struct {
	slots   chan struct{} // one per connection served
	evicted prometheus.Counter

	mu sync.Mutex
	// idle holds the connections between requests, with when they went
	// idle.
	idle map[net.Conn]time.Time
}

// minIdle and evictCheck: see connLimit.
const (
	minIdle    = time.Second
	evictCheck = 100 * time.Millisecond
)

func newConnLimit(max int, evicted prometheus.Counter) *connLimit {
	return &connLimit{slots: make(chan struct{}, max), evicted: evicted, idle: make(map[net.Conn]time.Time)}
}

// wrap returns ln limited to the connections l allows.
func (l *connLimit) wrap(ln net.Listener) net.Listener {
	return &limitedListener{Listener: ln, l: l, done: make(chan struct{})}
}

// track is the server's ConnState hook: it keeps the set of idle
// connections.
func (l *connLimit) track(c net.Conn, st http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch st {
	case http.StateIdle:
		l.idle[c] = time.Now()
	case http.StateActive, http.StateClosed, http.StateHijacked:
		delete(l.idle, c)
	}
}

// evictIdle closes the connection idle the longest, if it has been idle
// for minIdle at least. Closing makes the server's read fail, and the
// server then closes it for good, which frees its slot.
func (l *connLimit) evictIdle() {
	l.mu.Lock()
	var oldest net.Conn
	var since time.Time
	for c, t := range l.idle {
		if oldest == nil || t.Before(since) {
			oldest, since = c, t
		}
	}
	if oldest == nil || time.Since(since) < minIdle {
		l.mu.Unlock()
		return
	}
	delete(l.idle, oldest)
	l.mu.Unlock()
	l.evicted.Inc()
	oldest.Close()
}

// acquire takes a slot for a new connection, making room when there is
// none. It reports false when done ends the wait.
func (l *connLimit) acquire(done <-chan struct{}) bool {
	select {
	case l.slots <- struct{}{}:
		return true
	default:
	}
	tick := time.NewTicker(evictCheck)
	defer tick.Stop()
	for {
		l.evictIdle()
		select {
		case l.slots <- struct{}{}:
			return true
		case <-tick.C:
		case <-done:
			return false
		}
	}
}

func (l *connLimit) release() { <-l.slots }

// limitedListener accepts a connection, then waits for a slot for it.
// One accepted connection at most waits; the others wait in the kernel's
// backlog, as they would behind a full server.
type limitedListener struct {
	net.Listener
	l         *connLimit
	done      chan struct{}
	closeOnce sync.Once
}

func (ln *limitedListener) Accept() (net.Conn, error) {
	c, err := ln.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if !ln.l.acquire(ln.done) {
		c.Close()
		return nil, net.ErrClosed
	}
	return &limitedConn{Conn: c, release: ln.l.release}, nil
}

func (ln *limitedListener) Close() error {
	ln.closeOnce.Do(func() { close(ln.done) })
	return ln.Listener.Close()
}

// limitedConn frees its slot when it is first closed.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
