package clickhouse

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/internal/tlsfiles"
	"github.com/sluicehq/sluice/sinks"
)

// TestOpenTLS connects to a real ClickHouse's TLS port with a password, and
// checks that a wrong password, an untrusted certificate and TLS to the
// plain port are RefusedErrors that say what failed and never show the
// password.
func TestOpenTLS(t *testing.T) {
	srv := testkit.StartClickHouseTLS(t)
	password := srv.Password(t)
	trusted, err := tlsfiles.Client{CA: srv.CA}.Config("--clickhouse-tls")
	if err != nil {
		t.Fatal(err)
	}
	open := func(addr, password string, cfg *tls.Config) error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		s, err := Open(ctx, Options{Addr: addr, Username: srv.User, Password: password, TLS: cfg, DialTimeout: 5 * time.Second, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return err
		}
		defer s.Close()
		if err := s.conn.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatalf("query over TLS: %v", err)
		}
		return nil
	}
	if err := open(srv.Addr, password, trusted); err != nil {
		t.Fatalf("over TLS with the right password: %v", err)
	}
	systemRoots, _ := tlsfiles.Client{}.Config("--clickhouse-tls")
	for _, tc := range []struct {
		name, addr, password string
		cfg                  *tls.Config
		reason, want         string
	}{
		{"wrong password", srv.Addr, "not-" + password, trusted, sinks.RefusedLogin, `refused the login: user "` + srv.User + `"`},
		{"untrusted certificate", srv.Addr, password, systemRoots, sinks.RefusedTLS, "not trusted"},
		{"TLS to the plain port", srv.PlainAddr, password, trusted, sinks.RefusedTLS, "did not answer in TLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := open(tc.addr, tc.password, tc.cfg)
			var r *sinks.RefusedError
			if !errors.As(err, &r) || r.Reason != tc.reason || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want a %s RefusedError containing %q", err, tc.reason, tc.want)
			}
			if strings.Contains(err.Error(), password) || strings.Contains(err.Error(), tc.password) {
				t.Errorf("the error shows the password: %v", err)
			}
			t.Logf("%s: %v", tc.name, err)
		})
	}
}
