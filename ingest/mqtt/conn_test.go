package mqtt

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// Writes to the subscriber's connection reach the peer, gathered, and what
// is still buffered at Close is sent before the connection closes.
func TestBufferedConnSendsEverything(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		b, _ := io.ReadAll(c)
		got <- b
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := &bufferedConn{Conn: raw}
	var want bytes.Buffer
	for i := range 100 {
		p := []byte{0x40, 0x02, byte(i >> 8), byte(i)} // a PUBACK each
		if n, err := c.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		want.Write(p)
	}
	time.Sleep(5 * writeDelay)
	last := []byte{0xe0, 0x00} // DISCONNECT, still buffered at Close
	if _, err := c.Write(last); err != nil {
		t.Fatal(err)
	}
	want.Write(last)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Errorf("peer read %d bytes, want %d in order", len(b), want.Len())
	}
	if _, err := c.Write(last); err == nil {
		t.Error("Write after Close succeeded")
	}
}
