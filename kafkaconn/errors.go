package kafkaconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/segmentio/kafka-go"
)

// Error is a refusal that retrying cannot cure: the broker rejected the
// credentials or a right, or the TLS handshake failed on a certificate.
type Error struct {
	// Msg is the whole message: one line that names what failed, where,
	// and the flag or the right to check.
	Msg string
	// Err is kafka-go's error.
	Err error
}

func (e *Error) Error() string { return e.Msg }

// Unwrap returns the error the connection failed with.
func (e *Error) Unwrap() error { return e.Err }

// IsPermanent reports whether err holds an *Error: start-up gives up at
// once on it instead of waiting for the broker to change its mind.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// Explain returns err, a failure to connect to the broker at addr, as an
// *Error when it is a refused login or a certificate problem, and as it
// is otherwise (a broker down or slow is worth retrying).
func (s Security) Explain(addr string, err error) error {
	if err == nil {
		return nil
	}
	msg := s.explain(addr, err)
	if msg == "" {
		return err
	}
	return &Error{Msg: "kafka: " + msg, Err: err}
}

func (s Security) explain(addr string, err error) string {
	var (
		header tls.RecordHeaderError
		op     *net.OpError
	)
	switch {
	case errors.Is(err, kafka.SASLAuthenticationFailed):
		return fmt.Sprintf("SASL authentication failed for user %q (mechanism %s) at %s: check --kafka-sasl-username and --kafka-sasl-password-file",
			s.user, s.Mechanism(), addr)
	case errors.Is(err, kafka.UnsupportedSASLMechanism):
		return fmt.Sprintf("the broker at %s does not accept SASL mechanism %s: check --kafka-sasl-mechanism", addr, s.Mechanism())
	case errors.As(err, new(x509.HostnameError)):
		return fmt.Sprintf("TLS: the certificate of the broker at %s is for other names (%v): check the host names in --kafka-brokers and those the brokers advertise", addr, unwrapVerify(err))
	case errors.As(err, new(*tls.CertificateVerificationError)), errors.As(err, new(x509.UnknownAuthorityError)), errors.As(err, new(x509.CertificateInvalidError)):
		return fmt.Sprintf("TLS: the certificate of the broker at %s is not trusted (%v): check --kafka-tls-ca", addr, unwrapVerify(err))
	case errors.As(err, &header):
		return fmt.Sprintf("TLS: the broker at %s did not answer in TLS (a plaintext listener?): check --kafka-brokers and --kafka-tls", addr)
	case s.tls != nil && errors.As(err, &op) && op.Op == "remote error":
		// A TLS alert from the broker: most often it wants a client
		// certificate that was not given or that it does not trust.
		return fmt.Sprintf("TLS: the broker at %s refused the handshake (%v): check --kafka-tls-cert and --kafka-tls-key", addr, op.Err)
	}
	return ""
}

// unwrapVerify returns the x509 error inside crypto/tls's wrapper, whose
// own text ("tls: failed to verify certificate: ") adds nothing.
func unwrapVerify(err error) error {
	var verify *tls.CertificateVerificationError
	if errors.As(err, &verify) {
		return verify.Err
	}
	return err
}

// Ping reports whether any of brokers accepts a connection (with TLS and
// SASL as configured) and answers a metadata request. A refused login or
// certificate ends it at once with an *Error: the other brokers would say
// the same. A broker that accepts connections but never answers is cut
// off at ctx's deadline, or after 10 seconds when ctx has none.
func (s Security) Ping(ctx context.Context, brokers []string) error {
	const timeout = 10 * time.Second
	dialer := s.Dialer("sluice", timeout)
	var errs error
	for _, addr := range brokers {
		conn, err := dialer.DialContext(ctx, "tcp", addr)
		if err != nil {
			if err = s.Explain(addr, err); IsPermanent(err) {
				return err
			}
			errs = errors.Join(errs, err)
			continue
		}
		deadline, ok := ctx.Deadline()
		if !ok {
			deadline = time.Now().Add(timeout)
		}
		_ = conn.SetDeadline(deadline)
		_, err = conn.Brokers()
		_ = conn.Close()
		if err == nil {
			return nil
		}
		// With TLS 1.3 a broker refuses a client certificate after the
		// handshake, so its alert comes with the first answer.
		if err = s.Explain(addr, err); IsPermanent(err) {
			return err
		}
		errs = errors.Join(errs, fmt.Errorf("metadata from %s: %w%s", addr, err, s.closedHint(err)))
	}
	return fmt.Errorf("kafka: no broker reachable: %w", errs)
}

// closedHint explains a connection closed before its first answer: that
// is how a broker that wants TLS or SASL treats a client without them. A
// restarting broker does it too, so this is a hint, not a permanent error.
func (s Security) closedHint(err error) string {
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return ""
	}
	switch {
	case s.tls == nil && s.sasl == nil:
		return " (the broker closed the connection: does it want TLS or SASL? see --kafka-tls and --kafka-sasl-mechanism)"
	case s.sasl == nil:
		return " (the broker closed the connection: does it want SASL? see --kafka-sasl-mechanism)"
	case s.tls == nil:
		return " (the broker closed the connection: does it want TLS? see --kafka-tls)"
	}
	return ""
}
