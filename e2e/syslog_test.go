package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/ingest/syslog"
	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/pipeline"
)

// TestSyslogToClickHouse: lines sent by util-linux logger over TCP
// (octet-counted RFC 5424, newline-delimited RFC 3164) and UDP land in
// app_logs once each with the SPEC's mapping, and lines sent twice byte for
// byte (a resend) count once, by their derived event_id.
func TestSyslogToClickHouse(t *testing.T) {
	logger := testkit.LookPath(t, "logger")
	db := newTestDB(t)
	tcpAddr, udpAddr := freeAddr(t), freeUDPAddr(t)
	startStack(t, db, func(c *pipeline.Config) {
		c.Sources = append(c.Sources, func(g *ingest.Gate, reg prometheus.Registerer, log *slog.Logger) (ingest.Source, error) {
			return syslog.New(g, syslog.Config{TCPAddr: tcpAddr, UDPAddr: udpAddr, DeriveIDs: true, Registerer: reg, Logger: log})
		})
	})
	_, tcpPort, _ := net.SplitHostPort(tcpAddr)
	_, udpPort, _ := net.SplitHostPort(udpAddr)

	const perSender = 200
	senders := [][]string{
		{"--tcp", "--octet-count", "--rfc5424", "-P", tcpPort},
		{"--tcp", "--rfc3164", "-P", tcpPort},
		{"--udp", "--rfc5424", "-P", udpPort},
	}
	for i, s := range senders {
		var lines strings.Builder
		for j := range perSender {
			fmt.Fprintf(&lines, "e2e sender %d line %d\n", i, j)
		}
		args := append([]string{"-n", "127.0.0.1", "-t", "e2e-logger", "-p", "local3.warning", "--id=77"}, s...)
		cmd := exec.Command(logger, args...)
		cmd.Stdin = strings.NewReader(lines.String())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("logger %v: %v\n%s", args, err, out)
		}
	}
	fromLogger := uint64(perSender * len(senders))
	db.waitRows(t, map[string]uint64{"app_logs": fromLogger}, 60*time.Second)
	var mapped uint64
	q := fmt.Sprintf(`SELECT count() FROM %s.app_logs WHERE service = 'e2e-logger' AND level = 'warn' AND host != ''
		AND startsWith(message, 'e2e sender ')`, db.Name)
	if err := db.conn.QueryRow(context.Background(), q).Scan(&mapped); err != nil {
		t.Fatal(err)
	}
	if mapped != fromLogger {
		t.Fatalf("%d rows mapped as expected, want %d", mapped, fromLogger)
	}

	// A resend: the same bytes twice, as a sender that reconnects and
	// sends its last lines again does.
	const resent = 100
	var raw strings.Builder
	for j := range resent {
		msg := fmt.Sprintf("<13>1 2026-11-30T10:00:00.%03dZ web-1 e2e-resend 9 - - resent line %d", j, j)
		fmt.Fprintf(&raw, "%d %s", len(msg), msg)
	}
	for range 2 {
		conn, err := net.Dial("tcp", tcpAddr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write([]byte(raw.String())); err != nil {
			t.Fatal(err)
		}
		conn.Close()
	}
	db.waitRows(t, map[string]uint64{"app_logs": fromLogger + resent}, 60*time.Second)
	rows, distinct := db.counts(t, "app_logs")
	if rows != fromLogger+resent || distinct != rows {
		t.Fatalf("app_logs: %d rows, %d distinct event_ids; want %d of each", rows, distinct, fromLogger+resent)
	}
}

// freeUDPAddr returns a loopback UDP address free a moment ago.
func freeUDPAddr(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().String()
}
