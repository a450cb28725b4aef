package workers

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"testing"
)

// countingConn is a connection that serves data and counts the reads
// made on it; only Read is implemented.
type countingConn struct {
	net.Conn
	r     io.Reader
	reads int
}

func (c *countingConn) Read(p []byte) (int, error) {
	c.reads++
	return c.r.Read(p)
}

// TestReadBufferedFewerReads: reads of 4 KiB, as kafka-go's buffer makes
// them, reach the connection once per 64 KiB, and the bytes come out whole
// and in order.
func TestReadBufferedFewerReads(t *testing.T) {
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	raw := &countingConn{r: bytes.NewReader(data)}
	conn := &readBuffered{Conn: raw, br: bufio.NewReaderSize(raw, fetchReadBuffer)}
	var got bytes.Buffer
	buf := make([]byte, 4<<10)
	for {
		n, err := conn.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatal("the bytes read through the buffer differ from those sent")
	}
	if want := len(data)/fetchReadBuffer + 1; raw.reads > want {
		t.Errorf("%d reads on the connection for %d bytes, want at most %d", raw.reads, len(data), want)
	}
}
