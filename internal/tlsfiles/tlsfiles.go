// Package tlsfiles builds crypto/tls configurations from the PEM files an
// operator names on the command line, for every connection Sluice makes or
// serves (Kafka, ClickHouse, NATS, MQTT, the HTTP collector). Errors name
// the flag (the prefix given) so that a wrong path is found at once.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Client names the files of a client's TLS settings. Empty fields take the
// defaults: the system roots, no client certificate.
type Client struct {
	// CA is a PEM bundle of the certificate authorities to trust instead of
	// the system roots.
	CA string
	// Cert and Key are a PEM client certificate and its private key, for
	// servers that ask for one (mutual TLS); both or neither.
	Cert, Key string
	// ServerName overrides the name checked in the server's certificate
	// (default: the host dialled).
	ServerName string
}

// Empty reports whether no file is named: the caller then decides whether
// TLS is on from its own switch (for example --kafka-tls).
func (c Client) Empty() bool { return c.CA == "" && c.Cert == "" && c.Key == "" }

// Config reads the files and returns a client configuration (TLS 1.2 or
// later). prefix is the flags' common prefix, such as "--kafka-tls", used
// in errors: "--kafka-tls-ca /x: no PEM certificates in it".
func (c Client) Config(prefix string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CA != "" {
		pool, err := readPool(c.CA)
		if err != nil {
			return nil, fmt.Errorf("%s-ca: %w", prefix, err)
		}
		cfg.RootCAs = pool
	}
	if (c.Cert == "") != (c.Key == "") {
		return nil, fmt.Errorf("give both %s-cert and %s-key, or neither", prefix, prefix)
	}
	if c.Cert != "" {
		cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			return nil, fmt.Errorf("%s-cert/%s-key: %w", prefix, prefix, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Server reads a server's certificate and key (PEM) and returns a server
// configuration (TLS 1.2 or later). When clientCA is not empty, clients
// must present a certificate it signed. prefix names the flags in errors.
func Server(prefix, cert, key, clientCA string) (*tls.Config, error) {
	if cert == "" || key == "" {
		return nil, fmt.Errorf("give both %s-cert and %s-key", prefix, prefix)
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("%s-cert/%s-key: %w", prefix, prefix, err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}
	if clientCA != "" {
		pool, err := readPool(clientCA)
		if err != nil {
			return nil, fmt.Errorf("%s-client-ca: %w", prefix, err)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

func readPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New(path + ": no PEM certificates in it")
	}
	return pool, nil
}
