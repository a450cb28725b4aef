package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
)

// Refusal says in a few words why a TLS handshake failed when the failure
// is one that retrying cannot mend (the server's certificate is not
// trusted, names another host or has expired; the server is not speaking
// TLS; the server refused the client's certificate), and "" when err is
// no such failure. Clients use it to stop at start-up with the reason
// instead of retrying a setting error as if the server were down.
func Refusal(err error) string {
	var (
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
		verify  *tls.CertificateVerificationError
		header  tls.RecordHeaderError
		op      *net.OpError
	)
	switch {
	case errors.As(err, &unknown):
		return "the server's certificate is signed by an authority that is not trusted"
	case errors.As(err, &host):
		return "the server's certificate is not valid for " + host.Host
	case errors.As(err, &invalid):
		return "the server's certificate is not valid: " + invalid.Error()
	case errors.As(err, &verify):
		return "the server's certificate could not be verified: " + verify.Err.Error()
	case errors.As(err, &header):
		return "the server did not answer in TLS (is the port a TLS one?)"
	case errors.As(err, &op) && op.Op == "remote error":
		// A TLS alert from the server: with TLS 1.3 a client certificate
		// it refuses shows only here, on the first read.
		return "the server refused the TLS handshake (" + op.Err.Error() + "); check the client certificate"
	}
	return ""
}
