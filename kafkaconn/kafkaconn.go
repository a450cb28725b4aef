// Package kafkaconn turns the operator's Kafka security settings (TLS and
// SASL, the --kafka-tls* and --kafka-sasl-* flags) into what kafka-go
// connects with: a *kafka.Dialer for consumer groups, readers and single
// connections, and a kafka.RoundTripper for Writers and kafka.Clients.
// Every Kafka connection Sluice makes goes through one Security value, so
// that no client is left plaintext when the brokers want TLS and SASL.
//
// It also says clearly why a connection was refused: a wrong password or
// an untrusted certificate is reported in one line naming what failed and
// the flag to check, and is marked permanent (IsPermanent) so that start-up
// does not retry it for minutes.
package kafkaconn

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/sluicehq/sluice/internal/tlsfiles"
)

// The SASL mechanisms, as --kafka-sasl-mechanism takes them.
const (
	Plain       = "plain"
	ScramSHA256 = "scram-sha-256"
	ScramSHA512 = "scram-sha-512"
)

// Settings are the Kafka security flags as the operator gave them. The
// zero value is a plaintext connection without authentication.
type Settings struct {
	// TLS turns TLS on with the system roots (--kafka-tls). Naming any
	// file in Files turns it on too: a CA given without --kafka-tls must
	// not be silently ignored.
	TLS bool
	// Files are --kafka-tls-ca, --kafka-tls-cert and --kafka-tls-key.
	Files tlsfiles.Client
	// Mechanism is --kafka-sasl-mechanism: empty (no SASL), plain,
	// scram-sha-256 or scram-sha-512, in any case.
	Mechanism string
	// Username is --kafka-sasl-username.
	Username string
	// Password is the SASL password, read from --kafka-sasl-password-file
	// (or the environment). It never appears in String or an error.
	Password string
}

// String describes the settings without the password, so that printing
// them by mistake leaks nothing.
func (s Settings) String() string {
	pw := ""
	if s.Password != "" {
		pw = " password=(set, not shown)"
	}
	return fmt.Sprintf("tls=%t ca=%q cert=%q key=%q mechanism=%q username=%q%s",
		s.TLS, s.Files.CA, s.Files.Cert, s.Files.Key, s.Mechanism, s.Username, pw)
}

// Security reads the TLS files and builds the SASL mechanism. Errors name
// the flag at fault and never include the password. Plaintext settings
// give the zero Security.
func (s Settings) Security() (Security, error) {
	var sec Security
	if s.TLS || !s.Files.Empty() {
		cfg, err := s.Files.Config("--kafka-tls")
		if err != nil {
			return Security{}, err
		}
		sec.tls = cfg
	}
	mech, err := s.mechanism()
	if err != nil {
		return Security{}, err
	}
	if mech != nil {
		sec.sasl, sec.user = mech, s.Username
	}
	if sec.tls != nil || sec.sasl != nil {
		// One transport for the process's Clients and Writers, as
		// kafka.DefaultTransport is for plaintext ones: each transport
		// keeps its own connections and metadata.
		sec.shared = sec.Transport("sluice", 10*time.Second)
	}
	return sec, nil
}

// mechanism checks the SASL settings and returns kafka-go's mechanism, or
// nil when SASL is off.
func (s Settings) mechanism() (sasl.Mechanism, error) {
	name := strings.ToLower(strings.TrimSpace(s.Mechanism))
	if name == "" {
		// Credentials without a mechanism are a forgotten flag, not a
		// wish for plaintext: refuse them.
		if s.Username != "" || s.Password != "" {
			return nil, fmt.Errorf("--kafka-sasl-username or --kafka-sasl-password-file given without --kafka-sasl-mechanism (%s, %s or %s)", Plain, ScramSHA256, ScramSHA512)
		}
		return nil, nil
	}
	var algo scram.Algorithm
	switch name {
	case Plain:
	case ScramSHA256:
		algo = scram.SHA256
	case ScramSHA512:
		algo = scram.SHA512
	default:
		return nil, fmt.Errorf("--kafka-sasl-mechanism %q: want %s, %s or %s", s.Mechanism, Plain, ScramSHA256, ScramSHA512)
	}
	if s.Username == "" {
		return nil, fmt.Errorf("--kafka-sasl-mechanism %s needs --kafka-sasl-username", name)
	}
	if s.Password == "" {
		return nil, fmt.Errorf("--kafka-sasl-mechanism %s needs --kafka-sasl-password-file", name)
	}
	if algo == nil {
		return plain.Mechanism{Username: s.Username, Password: s.Password}, nil
	}
	m, err := scram.Mechanism(algo, s.Username, s.Password)
	if err != nil {
		// xdg-go/scram's errors are about preparing the strings
		// (SASLprep) and do not quote them.
		return nil, fmt.Errorf("--kafka-sasl-username/--kafka-sasl-password-file: %s: %w", name, err)
	}
	return m, nil
}

// Security is how Sluice connects to Kafka: with or without TLS, with or
// without SASL. The zero value is plaintext without authentication, which
// is what `sluice dev` and the tests' embedded broker use. A Security is
// safe to copy and to use from many goroutines.
type Security struct {
	tls  *tls.Config    // nil: plaintext
	sasl sasl.Mechanism // nil: no authentication
	user string         // SASL user name, for messages
	// shared carries the requests of Clients and Writers; nil in the zero
	// value, where kafka.DefaultTransport does.
	shared *kafka.Transport
}

// TLS reports whether connections use TLS.
func (s Security) TLS() bool { return s.tls != nil }

// Mechanism returns the SASL mechanism as the broker names it
// ("SCRAM-SHA-256"), or "" when SASL is off.
func (s Security) Mechanism() string {
	if s.sasl == nil {
		return ""
	}
	return s.sasl.Name()
}

// String describes the security for a log line or /readyz, without the
// password: "TLS, SASL SCRAM-SHA-256 as \"sluice\"", "plaintext".
func (s Security) String() string {
	var parts []string
	if s.tls != nil {
		parts = append(parts, "TLS")
	}
	if s.sasl != nil {
		parts = append(parts, fmt.Sprintf("SASL %s as %q", s.sasl.Name(), s.user))
	}
	if len(parts) == 0 {
		return "plaintext"
	}
	return strings.Join(parts, ", ")
}

// LogValue logs the security as its String, so that slog never walks into
// the mechanism, which holds the password.
func (s Security) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Dialer returns a dialer with the security set, for kafka-go readers,
// consumer groups and single connections.
func (s Security) Dialer(clientID string, timeout time.Duration) *kafka.Dialer {
	return &kafka.Dialer{ClientID: clientID, Timeout: timeout, DualStack: true, TLS: s.tls, SASLMechanism: s.sasl}
}

// Transport returns a new transport with the security set, for a client
// that needs settings of its own (client id, metadata refresh). Its owner
// stops it with CloseIdleConnections.
func (s Security) Transport(clientID string, dialTimeout time.Duration) *kafka.Transport {
	return &kafka.Transport{ClientID: clientID, DialTimeout: dialTimeout, TLS: s.tls, SASL: s.sasl}
}

// Shared returns the transport shared by the process's Writers and
// Clients that need no settings of their own: kafka.DefaultTransport when
// plaintext.
func (s Security) Shared() kafka.RoundTripper {
	if s.shared == nil {
		return kafka.DefaultTransport
	}
	return s.shared
}

// Client returns a kafka.Client of brokers over the shared transport, each
// request bounded by timeout.
func (s Security) Client(brokers []string, timeout time.Duration) *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: timeout, Transport: s.Shared()}
}

// Close closes the shared transport's connections and stops its
// background work. Clients and Writers on it must be done.
func (s Security) Close() {
	if s.shared != nil {
		s.shared.CloseIdleConnections()
	}
}
