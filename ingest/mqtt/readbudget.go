package mqtt

import (
	"context"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/sluicehq/sluice/backpressure"
)

// smallPacketBytes is the largest packet (its remaining length) read
// without the read budget. A connection holds at most one such packet at a
// time (twice: see readBudget), which the process's base counts with the
// connection's buffers and goroutines; telemetry publishes are smaller.
const smallPacketBytes = 4 << 10

// DefaultMaxReadBytes is EmbeddedConfig.MaxReadBytes's default: 16 packets
// of the default largest size, each counted twice.
const DefaultMaxReadBytes = 32 << 20

// readBudget bounds the bytes of the larger packets that the embedded
// broker's connections are reading at once.
//
// Why: mochi allocates a packet's whole remaining length as soon as it has
// read the fixed header, then waits for the bytes, and copies them once to
// decode them. A client that announced a 1 MiB publish and then trickled
// its bytes held 2 MiB until its keep alive ran out; MaxConnections such
// clients held 2 MiB each, 2 GiB with the defaults, whatever
// --memory-limit said. Now a connection whose next packet is larger than
// smallPacketBytes takes twice its length from the budget before the bytes
// that complete its fixed header reach mochi, so mochi allocates nothing
// for it until the budget allows; it waits meanwhile (until its read
// deadline), while connections with small packets go on. It gives the
// budget back when mochi asks for the bytes after that packet, by which
// time mochi has decoded it and the publish hook has handled it.
//
// Safe for concurrent use.
type readBudget struct {
	// bytes holds the budget; it counts what is held and who waited, for
	// the metrics.
	bytes     *backpressure.Admission
	maxPacket int64
}

func newReadBudget(capacity int64, maxPacket int) *readBudget {
	return &readBudget{
		bytes:     backpressure.NewAdmission(backpressure.AdmissionConfig{Capacity: capacity, MaxWait: backpressure.NoWaitLimit}),
		maxPacket: int64(maxPacket),
	}
}

// budgetedReads is the part of a boundedConn that takes the read budget.
// Its Read is called by mochi's read goroutine of the connection only;
// deadline and stop are also used by other goroutines.
type budgetedReads struct {
	budget  *readBudget
	scan    packetScanner
	held    int64  // taken for the packet being read
	pending []byte // read from the socket, not yet handed to mochi

	// stop ends a wait for the budget when the connection is closed.
	stop   context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	deadline time.Time // the connection's read deadline, which a wait keeps too
}

func newBudgetedReads(b *readBudget) *budgetedReads {
	ctx, cancel := context.WithCancel(context.Background())
	return &budgetedReads{budget: b, stop: ctx, cancel: cancel}
}

// read is the connection's Read: see readBudget.
func (r *budgetedReads) read(conn net.Conn, b []byte) (int, error) {
	if r.held > 0 && r.scan.left == 0 {
		r.release()
	}
	var n int
	var err error
	if len(r.pending) > 0 {
		n = copy(b, r.pending)
		r.pending = r.pending[n:]
	} else {
		n, err = conn.Read(b)
	}
	keep, aerr := r.account(b[:n])
	if aerr != nil {
		return 0, aerr
	}
	if keep < n {
		r.pending = append(slices.Clone(b[keep:n]), r.pending...)
	}
	return keep, err
}

// account follows p through the packets, taking the budget for a large
// packet before the bytes that complete its fixed header. It returns how
// many bytes of p may go to mochi now: all of them, or those up to the end
// of a packet that holds the budget. The rest waits for the next read,
// which gives the budget back first, so that a connection never holds the
// budget while it waits for more of it.
func (r *budgetedReads) account(p []byte) (int, error) {
	i := 0
	for i < len(p) && !r.scan.lost {
		if r.scan.left > 0 {
			k := int(min(int64(len(p)-i), r.scan.left))
			r.scan.left -= int64(k)
			i += k
			if r.scan.left == 0 && r.held > 0 {
				return i, nil
			}
			continue
		}
		length, complete := r.scan.headerByte(p[i])
		i++
		if !complete {
			continue
		}
		// Over the largest packet, mochi closes the connection at the
		// header without allocating.
		if length > smallPacketBytes && length <= r.budget.maxPacket {
			if err := r.take(2 * length); err != nil {
				return 0, err
			}
		}
		r.scan.left = length
	}
	return len(p), nil
}

// take waits for w bytes of the budget (at most all of it), until the
// connection's read deadline or its close.
func (r *budgetedReads) take(w int64) error {
	w = min(w, r.budget.bytes.Capacity())
	if !r.budget.bytes.TryAcquire(w) {
		ctx := r.stop
		if d := r.readDeadline(); !d.IsZero() {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, d)
			defer cancel()
		}
		if err := r.budget.bytes.Acquire(ctx, w); err != nil {
			if r.stop.Err() != nil {
				return net.ErrClosed
			}
			// As the socket's own read would have failed.
			return os.ErrDeadlineExceeded
		}
	}
	r.held = w
	return nil
}

func (r *budgetedReads) release() {
	r.budget.bytes.Release(r.held)
	r.held = 0
}

// done gives back what the connection holds; called once mochi's read
// goroutine of it has returned.
func (r *budgetedReads) done() {
	r.cancel()
	if r.held > 0 {
		r.release()
	}
	r.pending = nil
}

func (r *budgetedReads) setDeadline(t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deadline = t
}

func (r *budgetedReads) readDeadline() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.deadline
}

// packetScanner follows the MQTT packets in a byte stream: each is a fixed
// header (a type byte, then the remaining length in one to four bytes of
// seven bits each) and then remaining-length bytes.
type packetScanner struct {
	hlen   int   // bytes of the current fixed header seen
	length int64 // the remaining length decoded so far
	left   int64 // bytes of the current packet still to come
	// lost is set at a malformed header: mochi closes the connection
	// there, and the scanner stops following.
	lost bool
}

// headerByte takes the next byte of a fixed header, and reports the
// packet's remaining length once the header is complete.
func (s *packetScanner) headerByte(c byte) (length int64, complete bool) {
	if s.hlen == 0 {
		s.hlen, s.length = 1, 0
		return 0, false
	}
	s.length |= int64(c&0x7f) << (7 * (s.hlen - 1))
	s.hlen++
	if c&0x80 != 0 {
		if s.hlen > 4 {
			s.lost = true
		}
		return 0, false
	}
	s.hlen = 0
	return s.length, true
}
