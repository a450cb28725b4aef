package tlsfiles_test

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/internal/tlsfiles"
)

// TestRefusal runs real handshakes that fail over a setting, and one
// connection that fails for an outage, and checks what Refusal says.
func TestRefusal(t *testing.T) {
	ca := testkit.NewCA(t)
	plain := listen(t, func(c net.Conn) { _, _ = c.Write([]byte("HTTP/1.0 400 Bad Request\r\n\r\n")) })
	serverCfg, err := tlsfiles.Server("--test", ca.Path("server.pem"), ca.Path("server-key.pem"), ca.Path("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	mutual := listen(t, func(c net.Conn) { _ = tls.Server(c, serverCfg).Handshake() })
	trusting, err := tlsfiles.Client{CA: ca.Path("ca.pem")}.Config("--test")
	if err != nil {
		t.Fatal(err)
	}
	otherName := trusting.Clone()
	otherName.ServerName = "db.example.com"
	closed := listen(t, nil)
	for _, tc := range []struct {
		name, addr string
		cfg        *tls.Config
		want       string // empty: not a refusal
	}{
		{"unknown authority", mutual, &tls.Config{MinVersion: tls.VersionTLS12}, "not trusted"},
		{"other host name", mutual, otherName, "not valid for db.example.com"},
		{"not TLS", plain, trusting, "did not answer in TLS"},
		{"no client certificate", mutual, trusting, "server refused the TLS handshake"},
		{"nobody listening", closed, trusting, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := handshakeAndRead(tc.addr, tc.cfg)
			if err == nil {
				t.Fatal("the connection worked")
			}
			got := tlsfiles.Refusal(err)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("Refusal(%v) = %q, want %q", err, got, tc.want)
			}
		})
	}
}

// handshakeAndRead dials addr with TLS and reads: with TLS 1.3 a server's
// refusal of the client's certificate arrives only on the first read.
func handshakeAndRead(addr string, cfg *tls.Config) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	return err
}

// listen serves each connection with serve until the test ends; a nil
// serve returns the address of a listener already closed.
func listen(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if serve == nil {
		ln.Close()
		return ln.Addr().String()
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return ln.Addr().String()
}
