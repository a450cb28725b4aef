package workers

import (
	"bufio"
	"context"
	"net"

	"github.com/segmentio/kafka-go"
)

// fetchReadBuffer is the read buffer of a lane reader's connection.
const fetchReadBuffer = 64 << 10

// bufferedReads returns a copy of d whose connections read through a
// buffer of size bytes of their own.
//
// Why: kafka-go's Conn reads a fetch response through a 4 KiB
// bufio.Reader, and skips the records before the offset asked for in reads
// of the same size, so a fetch of a megabyte took some 250 read system
// calls. In the work role that was three thousand a second at 20,000
// events/s, each a few microseconds. Under kafka-go's buffer, this one
// fills in reads of up to 64 KiB. TLS, when set, is layered on the
// buffered connection, so its records arrive in as few reads.
func bufferedReads(d *kafka.Dialer, size int) *kafka.Dialer {
	b := *d
	dial := d.DialFunc
	if dial == nil {
		dial = (&net.Dialer{LocalAddr: d.LocalAddr, FallbackDelay: d.FallbackDelay, KeepAlive: d.KeepAlive}).DialContext
	}
	b.DialFunc = func(ctx context.Context, network, address string) (net.Conn, error) {
		conn, err := dial(ctx, network, address)
		if err != nil {
			return nil, err
		}
		return &readBuffered{Conn: conn, br: bufio.NewReaderSize(conn, size)}, nil
	}
	return &b
}

// readBuffered is a connection whose reads are served from a buffer; the
// rest (writes, deadlines, Close) is the connection's own. Deadlines still
// bound reads: the buffer reads from the connection only when it is empty.
type readBuffered struct {
	net.Conn
	br *bufio.Reader
}

func (c *readBuffered) Read(p []byte) (int, error) { return c.br.Read(p) }
