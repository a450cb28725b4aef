// Package clickhouse writes events to ClickHouse, one table per stream, over
// the native protocol. Its Sink is the sinks.Store of the worker core.
//
// The tables are the basis of exactly-once delivery. Each row carries its
// Kafka partition and offset, and the time Sluice stored it, stored_at: one
// value for all the rows of an INSERT, never earlier than the last one of
// the same Kafka partition. Tables are partitioned by month (or day) of
// stored_at, so one INSERT of one Kafka partition's rows is one block
// landing in one MergeTree part: it is stored entirely or not at all, and
// old data goes a partition at a time. After a crash, Progress tells how far
// a Kafka partition got and Resume also rebuilds the window that deduplicates
// producers' retries, both reading only the newest time partition holding
// the Kafka partition. An INSERT whose outcome the client could not learn
// is settled (see Write) before the Sink answers again for its partition,
// so Progress is never overtaken by an INSERT still running on the server.
//
// The column types follow the server's version (DDL): on 22.8 and later
// DateTime64(3), Map, LowCardinality, Bool, codecs, skip indexes and TTL;
// on older servers (Debian's 18.16) DateTime plus a <name>_ms UInt16
// column, Nested arrays, String and UInt8. Existing tables are written as
// they are, whatever their types and layout (EnsureTables, Migrations).
//
// The built-in streams also have per-minute rollups (iot_telemetry_1m,
// app_logs_1m), which the Sink writes itself after each INSERT and repairs
// from the stored rows whenever they fall behind (rollup.go).
package clickhouse

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/sluicehq/sluice/internal/hostaddr"
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
	// TLS, when set, speaks the native protocol over TLS with this
	// configuration (ClickHouse's tcp_port_secure, 9440 by convention).
	TLS *tls.Config
	// DialTimeout bounds connecting, including the handshake.
	DialTimeout time.Duration
	// ReadTimeout bounds waiting for one block of a reply (the driver's
	// default when zero); long scans on a loaded server need more.
	ReadTimeout time.Duration
	// Logger receives what EnsureTables changes; nil means slog.Default().
	Logger *slog.Logger
	// Tables choose the layout of the tables EnsureTables creates, and the
	// retention DropExpired applies.
	Tables TableOptions
}

// Sink writes events to ClickHouse. It is safe for concurrent use: each call
// takes its own connection from a pool.
type Sink struct {
	conn    driver.Conn
	db      string
	version string
	ver     Version
	opts    TableOptions
	log     *slog.Logger

	// now is the clock of stored_at; tests set it.
	now func() time.Time
	// observe decorates the context of every query that reads rows
	// (Progress, Resume); tests use it to count the rows read.
	observe func(context.Context) context.Context

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
	// layouts holds each table as last found, by table name.
	layouts map[string]*tableLayout
	// migrations holds, by table name, what EnsureTables found to differ.
	migrations map[string][]Migration
	// parts holds what the Sink knows of each Kafka partition of a table
	// partitioned by time (resume.go).
	parts map[partitionKey]*partState
	// rollupLevel holds, by rollup table and Kafka partition, whether the
	// Sink knows the rollup to hold exactly what the base table holds
	// (rollup_write.go): absent means Write checks first.
	rollupLevel map[partitionKey]bool
}

var dbNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// Open connects to ClickHouse, checks that it answers, and reads its version.
// The database need not exist yet: EnsureTables creates it.
func Open(ctx context.Context, o Options) (*Sink, error) {
	if err := o.Tables.Validate(); err != nil {
		return nil, err
	}
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
		ver:           Version{int(v.Version.Major), int(v.Version.Minor)},
		opts:          o.Tables,
		log:           o.Logger.With("component", "clickhouse"),
		now:           time.Now,
		settleTimeout: defaultSettleTimeout,
		killAfter:     defaultKillAfter,
		newQueryID:    newQueryID,
		unsettled:     make(map[partitionKey]string),
		layouts:       make(map[string]*tableLayout),
		migrations:    make(map[string][]Migration),
		parts:         make(map[partitionKey]*partState),
		rollupLevel:   make(map[partitionKey]bool),
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
// logs.
func (s *Sink) ServerVersion() string { return s.version }

// Version returns the server's version, which decides the column types of
// the tables the Sink creates.
func (s *Sink) Version() Version { return s.ver }

// readCtx is the context of a query that reads rows.
func (s *Sink) readCtx(ctx context.Context) context.Context {
	if s.observe == nil {
		return ctx
	}
	return s.observe(ctx)
}

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
		TLS:         o.TLS,
		DialTimeout: o.DialTimeout,
		ReadTimeout: o.ReadTimeout,
		Compression: compression(o.Addr),
		// As many connections stay idle as may be open: with the
		// driver's default of 5 idle out of 10, the lanes' INSERTs, more
		// than 5 at a time under load, closed a connection after nearly
		// every one and opened another for the next (28 connects in 5
		// seconds at 20,000 events/s), each a handshake for the work role
		// and a new thread for the server.
		MaxOpenConns: maxConns,
		MaxIdleConns: maxConns,
	})
	if err != nil {
		return nil, o, fmt.Errorf("clickhouse: open %s: %w", o.Addr, err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, o.DialTimeout)
	defer cancel()
	if err := conn.Ping(pingCtx); err != nil {
		conn.Close()
		if r := refusal(err, o); r != nil {
			return nil, o, r
		}
		return nil, o, fmt.Errorf("clickhouse: ping %s: %w", o.Addr, err)
	}
	return conn, o, nil
}

// maxConns bounds the pool's connections, open and idle alike: the
// driver's default number open.
const maxConns = 10

// compression is LZ4 for a server across a network: events compress well,
// and LZ4 costs little CPU for the bandwidth it saves. For a server on this
// machine (a loopback address) there is no bandwidth to save, and
// compressing was a twentieth of the work role's CPU (and more of the
// server's, to decompress), so blocks go uncompressed.
func compression(addr string) *ch.Compression {
	if hostaddr.Local(addr) {
		return nil
	}
	return &ch.Compression{Method: ch.CompressionLZ4}
}
