package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/sluicehq/sluice/internal/hostaddr"
	"github.com/sluicehq/sluice/internal/tlsfiles"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/sinks"
	"github.com/sluicehq/sluice/sinks/clickhouse"
)

// This file holds the flags that secure Sluice's connections to ClickHouse
// and NATS and the HTTP collector's HTTPS, and turns them into the
// pipeline's settings. Secrets come from files (or the environment); every
// error names the flag to check and never shows a secret.

// clickhouseSecurity are the flags of the ClickHouse connection's password
// and TLS.
type clickhouseSecurity struct {
	flags         *pflag.FlagSet // for the password, see registerSecret
	tls           bool
	ca, cert, key string
}

func (c *clickhouseSecurity) register(f *pflag.FlagSet) {
	c.flags = f
	registerSecret(f, "clickhouse-password", "ClickHouse password")
	f.BoolVar(&c.tls, "clickhouse-tls", false, "speak ClickHouse's native protocol over TLS (the server's tcp_port_secure, 9440 by convention: point --clickhouse-addr at it), checking its certificate against the system roots or --clickhouse-tls-ca")
	f.StringVar(&c.ca, "clickhouse-tls-ca", "", "PEM CA bundle to check ClickHouse's certificate with, instead of the system roots (implies --clickhouse-tls)")
	f.StringVar(&c.cert, "clickhouse-tls-cert", "", "PEM client certificate for ClickHouse, with --clickhouse-tls-key (implies --clickhouse-tls)")
	f.StringVar(&c.key, "clickhouse-tls-key", "", "PEM private key of --clickhouse-tls-cert")
}

// apply reads the password and the TLS files into o, whose Addr is set.
// A password sent in clear to another machine is warned about: the native
// protocol does not hide it.
func (c *clickhouseSecurity) apply(o *clickhouse.Options, log *slog.Logger) error {
	pw, err := secretValue(c.flags, "clickhouse-password", log)
	if err != nil {
		return err
	}
	o.Password = pw
	files := tlsfiles.Client{CA: c.ca, Cert: c.cert, Key: c.key}
	if c.tls || !files.Empty() {
		if o.TLS, err = files.Config("--clickhouse-tls"); err != nil {
			return err
		}
	}
	if pw != "" && o.TLS == nil && !hostaddr.Local(o.Addr) {
		log.Warn("the ClickHouse password goes over the network in clear: give --clickhouse-tls and the server's TLS port", "addr", o.Addr)
	}
	return nil
}

// httpsFlags serve the collector's --http-addr over HTTPS.
type httpsFlags struct {
	cert, key, clientCA string
}

func (h *httpsFlags) register(f *pflag.FlagSet) {
	f.StringVar(&h.cert, "http-tls-cert", "", "PEM certificate (chain) to serve --http-addr over HTTPS with, /metrics, /healthz and /readyz included; with --http-tls-key. Plain HTTP is then refused")
	f.StringVar(&h.key, "http-tls-key", "", "PEM private key of --http-tls-cert")
	f.StringVar(&h.clientCA, "http-tls-client-ca", "", "PEM CA bundle: HTTPS clients must present a certificate it signed (mutual TLS; probes and scrapers too)")
}

// apply sets cfg.HTTPTLS when a certificate is given.
func (h *httpsFlags) apply(cfg *pipeline.Config) error {
	if h.cert == "" && h.key == "" && h.clientCA == "" {
		return nil
	}
	tlsCfg, err := tlsfiles.Server("--http-tls", h.cert, h.key, h.clientCA)
	if err != nil {
		return err
	}
	cfg.HTTPTLS = tlsCfg
	return nil
}

// natsSecurity are the flags of the NATS connection's credentials and TLS
// (`sluice run` only: `sluice dev` embeds its own server).
type natsSecurity struct {
	flags         *pflag.FlagSet
	user, creds   string
	ca, cert, key string
}

func (n *natsSecurity) register(f *pflag.FlagSet) {
	n.flags = f
	f.StringVar(&n.user, "nats-user", "", "NATS user name, with --nats-password-file (or credentials in --nats-url, or --nats-creds)")
	registerSecret(f, "nats-password", "NATS password")
	f.StringVar(&n.creds, "nats-creds", "", "NATS credentials file (user JWT and nkey seed, as nsc writes it), for servers in operator mode such as Synadia Cloud")
	f.StringVar(&n.ca, "nats-tls-ca", "", "PEM CA bundle to check the NATS server's certificate with, and require TLS (a tls:// URL alone uses the system roots)")
	f.StringVar(&n.cert, "nats-tls-cert", "", "PEM client certificate for NATS, with --nats-tls-key (requires TLS)")
	f.StringVar(&n.key, "nats-tls-key", "", "PEM private key of --nats-tls-cert")
}

// apply checks the credentials given for the NATS server(s) at rawURL and
// sets them, and the TLS configuration, in cfg. Credentials may come from
// one place only: the URL, --nats-user and --nats-password-file, or
// --nats-creds.
func (n *natsSecurity) apply(cfg *pipeline.Config, rawURL string, log *slog.Logger) error {
	pw, err := secretValue(n.flags, "nats-password", log)
	if err != nil {
		return err
	}
	inURL := urlHasCredentials(rawURL)
	given := 0
	for _, set := range []bool{inURL, n.user != "" || pw != "", n.creds != ""} {
		if set {
			given++
		}
	}
	switch {
	case rawURL == "" && (given > 0 || n.ca != "" || n.cert != ""):
		return errors.New("--nats-user, --nats-password, --nats-creds and --nats-tls-* need --nats-url")
	case given > 1:
		return errors.New("NATS credentials given in more than one way: use one of the user in --nats-url, --nats-user with --nats-password-file, or --nats-creds")
	case (n.user == "") != (pw == ""):
		return errors.New("give --nats-user and --nats-password-file together")
	}
	if inURL && fromCommandLine(n.flags.Lookup("nats-url")) {
		log.Warn("--nats-url holds credentials and was given on the command line, where other users can read it in ps: use --nats-user and --nats-password-file, --nats-creds, or SLUICE_NATS_URL")
	}
	if n.creds != "" {
		// Read now, so that a wrong path fails before anything starts;
		// nats.go reads it again on every connect.
		if _, err := os.ReadFile(n.creds); err != nil {
			return fmt.Errorf("--nats-creds: %w", err)
		}
	}
	files := tlsfiles.Client{CA: n.ca, Cert: n.cert, Key: n.key}
	if !files.Empty() {
		if cfg.NATSTLS, err = files.Config("--nats-tls"); err != nil {
			return err
		}
	}
	cfg.NATSUser, cfg.NATSPassword, cfg.NATSCredsFile = n.user, pw, n.creds
	return nil
}

// urlHasCredentials reports whether any of the comma-separated NATS URLs
// holds a user, password or token. A URL that does not parse counts as
// holding some: nats.go reports the parse error, redacted, later.
func urlHasCredentials(rawURLs string) bool {
	for _, raw := range strings.Split(rawURLs, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		if (err != nil && strings.Contains(raw, "@")) || (err == nil && u.User != nil) {
			return true
		}
	}
	return false
}

// refusalHints say which flags to check when a server refuses Sluice, by
// sink and reason.
var refusalHints = map[string]string{
	"clickhouse " + sinks.RefusedLogin: "--clickhouse-user and --clickhouse-password-file",
	"clickhouse " + sinks.RefusedTLS:   "--clickhouse-tls-ca (or --clickhouse-tls-cert and --clickhouse-tls-key), and that --clickhouse-addr is the server's TLS port",
	"nats " + sinks.RefusedLogin:       "--nats-user and --nats-password-file, --nats-creds, or the credentials in --nats-url",
	"nats " + sinks.RefusedTLS:         "--nats-tls-ca (or --nats-tls-cert and --nats-tls-key)",
}

// explainRefusal turns a server's refusal, from the pipeline's start, into
// one line naming the flags to check; other errors pass unchanged.
func explainRefusal(err error) error {
	var r *sinks.RefusedError
	if !errors.As(err, &r) {
		return err
	}
	return fmt.Errorf("%w: check %s", r, refusalHints[r.Sink+" "+r.Reason])
}
