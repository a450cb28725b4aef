package sinks

import "fmt"

// Reasons of a RefusedError.
const (
	// RefusedLogin: the server refused the credentials (user name and
	// password, token or credentials file).
	RefusedLogin = "login"
	// RefusedTLS: the TLS handshake failed over a certificate, or the
	// server does not speak TLS where TLS was asked for.
	RefusedTLS = "TLS"
)

// RefusedError is a connection to a sink's server that failed for a
// reason retrying cannot mend: the server refused the login, or the TLS
// handshake failed over a certificate. The process stops with it at
// start-up, naming the settings to check, instead of waiting for the
// server as if it were down. Its message never holds a secret.
type RefusedError struct {
	// Sink is "clickhouse" or "nats".
	Sink string
	// Addr is the server, without credentials.
	Addr string
	// Reason is RefusedLogin or RefusedTLS.
	Reason string
	// Detail says what was refused: the user and the server's error, or
	// what was wrong with the handshake.
	Detail string
	// Err is the client library's error, for errors.Is; it is not shown.
	Err error
}

func (e *RefusedError) Error() string {
	if e.Reason == RefusedLogin {
		return fmt.Sprintf("%s %s refused the login: %s", e.Sink, e.Addr, e.Detail)
	}
	return fmt.Sprintf("%s %s: TLS handshake failed: %s", e.Sink, e.Addr, e.Detail)
}

// Unwrap returns the client library's error.
func (e *RefusedError) Unwrap() error { return e.Err }
