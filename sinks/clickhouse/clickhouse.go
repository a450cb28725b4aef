// Package clickhouse writes events to ClickHouse, one table per stream, over
// the native protocol. Its Sink is the sinks.Store of the worker core.
//
// The tables are the basis of exactly-once delivery. Each row carries its
// Kafka partition and offset, and each table is partitioned by Kafka
// partition, so that one INSERT of one Kafka partition's rows is one block
// landing in one MergeTree part: it is stored entirely or not at all. After
// a crash, Progress tells how far a Kafka partition got, and Recent
// rebuilds the window that deduplicates producers' retries. An INSERT whose
// outcome the client could not learn is settled (see Write) before the Sink
// answers again for its partition, so Progress is never overtaken by an
// INSERT still running on the server.
//
// The DDL sticks to what both Debian's ClickHouse 18.16 and the current LTS
// accept: no LowCardinality, DateTime64, Map, CODEC or TTL. Timestamps are
// stored as DateTime (seconds) plus a <name>_ms UInt16 column.
package clickhouse

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Defaults for Options' zero values.
const (
	DefaultAddr        = "127.0.0.1:9000"
	DefaultDatabase    = "sluice"
	DefaultUsername    = "default"
	DefaultDialTimeout = 5 * time.Second
)

// Options configures a Sink. Zero values take the Default* constants.
type Options struct {
	// Addr is the host:port of ClickHouse's native protocol.
	Addr string
	// Database holds one table per stream; EnsureTables creates it.
	Database string
	// Username and Password authenticate; the server's "default" user has
	// no password unless configured.
	Username string
	Password string
	// DialTimeout bounds connecting, including the handshake.
	DialTimeout time.Duration
	// ReadTimeout bounds waiting for one block of a reply (the driver's
	// default when zero); long scans on a loaded server need more.
	ReadTimeout time.Duration
	// Logger receives what EnsureTables changes; nil means slog.Default().
	Logger *slog.Logger
}

// Sink writes events to ClickHouse. It is safe for concurrent use: each call
// takes its own connection from a pool.
type Sink struct {
	conn    driver.Conn
	db      string
	version string
	log     *slog.Logger

	// How settling an INSERT of unknown outcome waits (settle.go); Open
	// sets the defaults, tests shorten them.
	settleTimeout time.Duration
	killAfter     time.Duration
	// newQueryID names each INSERT, so that it can be found on the server
	// after the client lost it; tests replace it to know the name.
	newQueryID func() string

	mu sync.Mutex
	// unsettled holds, per table and Kafka partition, the query id of an
	// INSERT whose end could not be confirmed: the next Write or Progress
	// of that partition settles it first.
	unsettled map[partitionKey]string
}

var dbNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// Open connects to ClickHouse, checks that it answers, and reads its version.
// The database need not exist yet: EnsureTables creates it.
func Open(ctx context.Context, o Options) (*Sink, error) {
	conn, o, err := Dial(ctx, o)
	if err != nil {
		return nil, err
	}
	v, err := conn.ServerVersion()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("clickhouse: server version of %s: %w", o.Addr, err)
	}
	return &Sink{
		conn:          conn,
		db:            o.Database,
		version:       v.Version.String(),
		log:           o.Logger.With("component", "clickhouse"),
		settleTimeout: defaultSettleTimeout,
		killAfter:     defaultKillAfter,
		newQueryID:    newQueryID,
		unsettled:     make(map[partitionKey]string),
	}, nil
}

// Close closes every pooled connection.
func (s *Sink) Close() error {
	if err := s.conn.Close(); err != nil {
		return fmt.Errorf("clickhouse: close: %w", err)
	}
	return nil
}

// ServerVersion returns the server's version as major.minor.patch, for
// gating features that 18.16 lacks.
func (s *Sink) ServerVersion() string { return s.version }

// Database returns the database that holds the tables.
func (s *Sink) Database() string { return s.db }

// Dial opens a pooled native-protocol connection with o's defaults applied
// and checks that the server answers. The connection's database is the
// server's default: Sluice names its database in every statement, so that a
// missing one does not fail the handshake. It returns o with the defaults
// filled in.
func Dial(ctx context.Context, o Options) (driver.Conn, Options, error) {
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	if o.Database == "" {
		o.Database = DefaultDatabase
	}
	if o.Username == "" {
		o.Username = DefaultUsername
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if !dbNameRE.MatchString(o.Database) {
		return nil, o, fmt.Errorf("clickhouse: database name %q: must match %s", o.Database, dbNameRE)
	}
	conn, err := ch.Open(&ch.Options{
		Protocol:    ch.Native,
		Addr:        []string{o.Addr},
		Auth:        ch.Auth{Username: o.Username, Password: o.Password},
		DialTimeout: o.DialTimeout,
		ReadTimeout: o.ReadTimeout,
		// Events compress well; LZ4 costs little CPU and saves bandwidth to
		// a remote server.
		Compression: &ch.Compression{Method: ch.CompressionLZ4},
	})
	if err != nil {
		return nil, o, fmt.Errorf("clickhouse: open %s: %w", o.Addr, err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, o.DialTimeout)
	defer cancel()
	if err := conn.Ping(pingCtx); err != nil {
		conn.Close()
		return nil, o, fmt.Errorf("clickhouse: ping %s: %w", o.Addr, err)
	}
	return conn, o, nil
}
