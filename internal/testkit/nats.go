package testkit

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

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
	srv := startNATSServer(t, opts)
	return &SecureNATS{Addr: srv.Addr().(*net.TCPAddr).String(), srv: srv}
}

// startNATSServer starts an embedded server with opts (which name its log
// file), waits until it takes connections, and shuts it down when the test
// ends.
func startNATSServer(t testing.TB, opts *natsserver.Options) *natsserver.Server {
	t.Helper()
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
		t.Fatalf("nats server on %s:%d not ready", opts.Host, opts.Port)
	}
	return srv
}

// URL is nats://Addr, without credentials.
func (s *SecureNATS) URL() string { return fmt.Sprintf("nats://%s", s.Addr) }

// OperatorNATS is an embedded NATS server in operator mode (decentralised
// JWT auth, as Synadia Cloud and `nsc` set-ups run), with one account and
// one user whose credentials file a client logs in with.
type OperatorNATS struct {
	// Addr is its host:port.
	Addr string
	// Creds is the credentials file (user JWT and nkey seed) of a user of
	// the server's account; Stranger is one of a user signed by an account
	// the server does not know, which it refuses.
	Creds, Stranger string
}

// StartOperatorNATS starts a server in operator mode on a free port,
// logging to a file in the test's directory, and writes the credentials
// files; it is shut down when the test ends.
func StartOperatorNATS(t testing.TB) *OperatorNATS {
	t.Helper()
	operator := mustKey(t, nkeys.CreateOperator)
	opub, _ := operator.PublicKey()
	oclaims := jwt.NewOperatorClaims(opub)
	if _, err := oclaims.Encode(operator); err != nil {
		t.Fatal(err)
	}
	resolver := &natsserver.MemAccResolver{}
	dir := t.TempDir()
	account, ajwt := newAccount(t, operator)
	apub, _ := account.PublicKey()
	if err := resolver.Store(apub, ajwt); err != nil {
		t.Fatal(err)
	}
	stranger, _ := newAccount(t, mustKey(t, nkeys.CreateOperator))
	n := &OperatorNATS{Creds: writeCreds(t, dir, "user.creds", account), Stranger: writeCreds(t, dir, "stranger.creds", stranger)}
	opts := &natsserver.Options{
		Host: "127.0.0.1", Port: -1, NoSigs: true,
		TrustedOperators: []*jwt.OperatorClaims{oclaims}, AccountResolver: resolver,
		LogFile: filepath.Join(dir, "nats-server.log"),
	}
	n.Addr = startNATSServer(t, opts).Addr().(*net.TCPAddr).String()
	return n
}

// URL is nats://Addr.
func (n *OperatorNATS) URL() string { return "nats://" + n.Addr }

func mustKey(t testing.TB, create func() (nkeys.KeyPair, error)) nkeys.KeyPair {
	t.Helper()
	kp, err := create()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// newAccount makes an account signed by operator, returning its key and JWT.
func newAccount(t testing.TB, operator nkeys.KeyPair) (nkeys.KeyPair, string) {
	t.Helper()
	account := mustKey(t, nkeys.CreateAccount)
	apub, _ := account.PublicKey()
	ajwt, err := jwt.NewAccountClaims(apub).Encode(operator)
	if err != nil {
		t.Fatal(err)
	}
	return account, ajwt
}

// writeCreds writes a credentials file of a new user of account.
func writeCreds(t testing.TB, dir, name string, account nkeys.KeyPair) string {
	t.Helper()
	user := mustKey(t, nkeys.CreateUser)
	upub, _ := user.PublicKey()
	ujwt, err := jwt.NewUserClaims(upub).Encode(account)
	if err != nil {
		t.Fatal(err)
	}
	seed, err := user.Seed()
	if err != nil {
		t.Fatal(err)
	}
	creds, err := jwt.FormatUserConfig(ujwt, seed)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
