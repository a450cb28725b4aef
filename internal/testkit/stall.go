package testkit

import (
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
)

// StalledBodyLength is the body length StallUpload announces.
const StalledBodyLength = 1000

// StallUpload opens a connection to addr (host:port) and sends a POST of
// an event body to path: the headers, announcing StalledBodyLength bytes,
// then only the first sent bytes (blanks), and nothing more, as a slow or
// hostile client would. headers are extra header lines ("Name: value").
// The connection is closed when t ends.
func StallUpload(t testing.TB, addr, path string, sent int, headers ...string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var extra strings.Builder
	for _, h := range headers {
		extra.WriteString(h + "\r\n")
	}
	req := "POST " + path + " HTTP/1.1\r\nHost: sluice\r\nContent-Type: application/json\r\n" + extra.String() +
		"Content-Length: " + strconv.Itoa(StalledBodyLength) + "\r\n\r\n" + strings.Repeat(" ", min(sent, StalledBodyLength))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	return conn
}
