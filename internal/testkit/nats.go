package testkit

import (
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/sluicehq/sluice/internal/tlsfiles"
)

// NATSAuth is how clients of a SecureNATS log in: a user and password, or
// a token.
type NATSAuth struct {
	User, Password string
	Token          string
}

// SecureNATS is an embedded NATS server with JetStream that requires TLS,
// with the server certificate of a test CA, and a login.
type SecureNATS struct {
	// Addr is its host:port; clients connect to nats://Addr and are told
	// to upgrade to TLS.
	Addr string
	srv  *natsserver.Server
}

// StartSecureNATS starts a server on a free port that requires TLS (the
// CA's "server" certificate) and auth, logging to a file in the test's
// directory; it is shut down when the test ends. With requireClientCert,
// clients must also present a certificate the CA signed.
func StartSecureNATS(t testing.TB, ca *CA, auth NATSAuth, requireClientCert bool) *SecureNATS {
	t.Helper()
	clientCA := ""
	if requireClientCert {
		clientCA = ca.Path("ca.pem")
	}
	tlsCfg, err := tlsfiles.Server("--test-nats-tls", ca.Path("server.pem"), ca.Path("server-key.pem"), clientCA)
	if err != nil {
		t.Fatal(err)
	}
	opts := &natsserver.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true,
		TLS: true, TLSConfig: tlsCfg, TLSVerify: requireClientCert,
		// A loaded test machine can take longer than the default half
		// second for a handshake.
		TLSTimeout: 5,
		Username:   auth.User, Password: auth.Password, Authorization: auth.Token,
		LogFile: filepath.Join(t.TempDir(), "nats-server.log"),
	}
	srv, err := natsserver.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.ConfigureLogger()
	srv.Start()
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("secure nats server not ready")
	}
	return &SecureNATS{Addr: srv.Addr().(*net.TCPAddr).String(), srv: srv}
}

// URL is nats://Addr, without credentials.
func (s *SecureNATS) URL() string { return fmt.Sprintf("nats://%s", s.Addr) }
