// Package clickhouse stores spans in ClickHouse and answers the trace API from
// them. It talks the native protocol (port 9000) through clickhouse-go v2.
//
// The schema and every query are kept compatible with very old servers
// (ClickHouse 18.16, what Debian 12 ships): no DateTime64, Map, JSON or
// LowCardinality; times are a DateTime (for partitioning) plus UInt64
// nanoseconds, attributes are two parallel Array(String) columns, inserts
// always name their columns, and features that need a newer server (TTL,
// data-skipping indexes) are probed from the server's version and skipped
// when absent.
package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/troupehq/troupe/telemetry"
)

// Defaults.
const (
	DefaultDatabase    = "troupe"
	DefaultTable       = "troupe_spans"
	DefaultDialTimeout = 5 * time.Second
	defaultPort        = "9000"
)

// maxIdleConns bounds the pooled connections, and so the retries of a
// call whose connection the server dropped (retryDropped).
const maxIdleConns = 5

// Options configures a Store.
type Options struct {
	Addr        string // host:port of the native protocol (9000)
	Database    string // default "troupe"
	Username    string
	Password    string
	Table       string        // default "troupe_spans"
	TTLDays     int           // retention in days; 0 keeps spans forever
	DialTimeout time.Duration // default 5s
	Logger      *slog.Logger  // default slog.Default()
}

// Store is a telemetry.Sink and telemetry.Reader on ClickHouse. It is safe for
// concurrent use.
type Store struct {
	conn  driver.Conn
	log   *slog.Logger
	table string // `db`.`table`, quoted
	// starts is the table of where each trace starts, filled by the
	// materialized view startsView (see traceStartTable).
	starts, startsView string
	version            serverVersion
	// features actually present in the table this Store created (or found).
	ttl       bool
	skipIndex bool
}

var (
	_ telemetry.Sink   = (*Store)(nil)
	_ telemetry.Reader = (*Store)(nil)
)

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (o Options) withDefaults() (Options, error) {
	if o.Addr == "" {
		return o, errors.New("clickhouse: Addr is required")
	}
	if _, _, err := net.SplitHostPort(o.Addr); err != nil {
		o.Addr = net.JoinHostPort(o.Addr, defaultPort)
	}
	if o.Database == "" {
		o.Database = DefaultDatabase
	}
	if o.Table == "" {
		o.Table = DefaultTable
	}
	if !identRE.MatchString(o.Database) {
		return o, fmt.Errorf("clickhouse: invalid database name %q (letters, digits and _ only)", o.Database)
	}
	if !identRE.MatchString(o.Table) {
		return o, fmt.Errorf("clickhouse: invalid table name %q (letters, digits and _ only)", o.Table)
	}
	if o.TTLDays < 0 {
		return o, fmt.Errorf("clickhouse: TTLDays must not be negative, got %d", o.TTLDays)
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

// ParseDSN reads clickhouse://[user[:password]@]host[:9000][/database]
// [?table=name&ttl_days=N&dial_timeout=5s]. The port defaults to 9000 (the
// native protocol; HTTP is not supported).
func ParseDSN(dsn string) (Options, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		// url.Error repeats the input, which may hold a password.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Options{}, fmt.Errorf("clickhouse: parse dsn: %w", err)
	}
	switch u.Scheme {
	case "clickhouse", "tcp":
	case "":
		return Options{}, errors.New("clickhouse: dsn needs the clickhouse:// scheme")
	default:
		return Options{}, fmt.Errorf("clickhouse: unsupported dsn scheme %q (only the native protocol, clickhouse://host:9000, is supported)", u.Scheme)
	}
	if u.Host == "" {
		return Options{}, errors.New("clickhouse: dsn has no host")
	}
	o := Options{Addr: u.Host}
	if u.Port() == "" {
		o.Addr = net.JoinHostPort(u.Hostname(), defaultPort)
	}
	if u.User != nil {
		o.Username = u.User.Username()
		o.Password, _ = u.User.Password()
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		o.Database = db
	}
	params, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Options{}, fmt.Errorf("clickhouse: parse dsn parameters: %w", err)
	}
	for k, vs := range params {
		v := vs[len(vs)-1]
		switch k {
		case "table":
			o.Table = v
		case "ttl_days":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return Options{}, fmt.Errorf("clickhouse: dsn ttl_days %q is not a non-negative integer", v)
			}
			o.TTLDays = n
		case "dial_timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return Options{}, fmt.Errorf("clickhouse: dsn dial_timeout %q is not a positive duration", v)
			}
			o.DialTimeout = d
		default:
			return Options{}, fmt.Errorf("clickhouse: unknown dsn parameter %q", k)
		}
	}
	if o.Database != "" && !identRE.MatchString(o.Database) {
		return Options{}, fmt.Errorf("clickhouse: invalid database name %q in dsn", o.Database)
	}
	if o.Table != "" && !identRE.MatchString(o.Table) {
		return Options{}, fmt.Errorf("clickhouse: invalid table name %q in dsn", o.Table)
	}
	return o, nil
}

// Open connects, probes the server's version and creates the database and
// the span table if they do not exist. The table of an existing deployment
// is used as it is (its TTL and indexes are not altered).
func Open(ctx context.Context, opts Options) (*Store, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}
	conn, err := ch.Open(&ch.Options{
		Addr: []string{o.Addr},
		// No database on the connection: it may not exist yet, and every
		// query names it.
		Auth: ch.Auth{Username: o.Username, Password: o.Password},
		DialContext: func(ctx context.Context, addr string) (net.Conn, error) {
			return dialer.DialContext(ctx, "tcp", addr)
		},
		DialTimeout:     o.DialTimeout,
		ReadTimeout:     time.Minute,
		MaxOpenConns:    10,
		MaxIdleConns:    maxIdleConns,
		ConnMaxLifetime: time.Hour,
		Compression:     &ch.Compression{Method: ch.CompressionNone},
	})
	if err != nil {
		return nil, fmt.Errorf("clickhouse: open %s: %w", o.Addr, err)
	}
	s := &Store{
		conn:       conn,
		log:        o.Logger.With(slog.String("component", "telemetry.clickhouse")),
		table:      quoteIdent(o.Database) + "." + quoteIdent(o.Table),
		starts:     quoteIdent(o.Database) + "." + quoteIdent(o.Table+"_trace_starts"),
		startsView: quoteIdent(o.Database) + "." + quoteIdent(o.Table+"_trace_starts_mv"),
	}
	if err := s.init(ctx, o); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the connections.
func (s *Store) Close() error { return s.conn.Close() }

// ServerVersion is the version the server reported at Open, e.g. "18.16.1".
func (s *Store) ServerVersion() string { return s.version.raw }

func quoteIdent(s string) string { return "`" + s + "`" }

type serverVersion struct {
	raw          string
	major, minor int
}

func parseVersion(v string) (serverVersion, error) {
	sv := serverVersion{raw: v}
	parts := strings.Split(v, ".")
	if len(parts) < 2 {
		return sv, fmt.Errorf("unrecognised server version %q", v)
	}
	var err error
	if sv.major, err = strconv.Atoi(parts[0]); err != nil {
		return sv, fmt.Errorf("unrecognised server version %q", v)
	}
	if sv.minor, err = strconv.Atoi(parts[1]); err != nil {
		return sv, fmt.Errorf("unrecognised server version %q", v)
	}
	return sv, nil
}

func (v serverVersion) atLeast(major, minor int) bool {
	return v.major > major || v.major == major && v.minor >= minor
}

// Columns of the span table, in insert order.
var columns = []string{
	"trace_id", "span_id", "parent_span_id", "name", "kind",
	"start_time", "start_ns", "end_ns", "duration_ns",
	"status", "status_message",
	"run_id", "session_id", "user_id", "agent_id", "team_id",
	"input_tokens", "output_tokens",
	"attr_keys", "attr_values",
}

const columnDefs = `
	trace_id       String,
	span_id        String,
	parent_span_id String,
	name           String,
	kind           String,
	start_time     DateTime,
	start_ns       UInt64,
	end_ns         UInt64,
	duration_ns    UInt64,
	status         String,
	status_message String,
	run_id         String,
	session_id     String,
	user_id        String,
	agent_id       String,
	team_id        String,
	input_tokens   Int64,
	output_tokens  Int64,
	attr_keys      Array(String),
	attr_values    Array(String)`

// createTableSQL builds the CREATE TABLE statement for the given features.
func createTableSQL(table string, ttlDays int, skipIndex bool) string {
	var b strings.Builder
	b.WriteString("CREATE TABLE IF NOT EXISTS ")
	b.WriteString(table)
	b.WriteString(" (")
	b.WriteString(columnDefs)
	if skipIndex {
		b.WriteString(",\n\tINDEX idx_trace_id trace_id TYPE bloom_filter GRANULARITY 4")
	}
	b.WriteString("\n) ENGINE = MergeTree\nPARTITION BY toYYYYMMDD(start_time)\nORDER BY (start_time, trace_id)")
	if ttlDays > 0 {
		fmt.Fprintf(&b, "\nTTL start_time + INTERVAL %d DAY", ttlDays)
	}
	return b.String()
}

func (s *Store) init(ctx context.Context, o Options) error {
	var raw string
	if err := s.queryRow(ctx, []any{&raw}, "SELECT version()"); err != nil {
		return fmt.Errorf("clickhouse: query server version at %s: %w", o.Addr, err)
	}
	v, err := parseVersion(raw)
	if err != nil {
		return fmt.Errorf("clickhouse: %w", err)
	}
	s.version = v
	if err := s.exec(ctx, "CREATE DATABASE IF NOT EXISTS "+quoteIdent(o.Database)); err != nil {
		return fmt.Errorf("clickhouse: create database %s: %w", o.Database, err)
	}

	if err := s.spanTable(ctx, o); err != nil {
		return err
	}
	return s.traceStartTable(ctx, o)
}

// traceStartTable creates, if missing, the table of when each trace's spans
// start and the materialized view that fills it from every insert into the
// span table: for each trace of an inserted block, the first and the last
// start. The span table is ordered by time, so finding a trace by its id
// alone reads every span ever written (0.3 s at two million spans on
// ClickHouse 18.16, which has no data-skipping indexes); knowing from this
// small table, ordered by trace id, when the trace's spans start, GetTrace
// reads only the granules of that time range. (The last start is computed
// from start_ns, which start_time is made from: the alias start_time would
// stand for the first start in the view's query.) Spans written before the table existed are
// not in it, and GetTrace then reads them all, as it did before.
func (s *Store) traceStartTable(ctx context.Context, o Options) error {
	ttl := ""
	if o.TTLDays > 0 && s.version.atLeast(19, 6) {
		ttl = fmt.Sprintf("\nTTL start_time + INTERVAL %d DAY", o.TTLDays)
	}
	if err := s.exec(ctx, "CREATE TABLE IF NOT EXISTS "+s.starts+" (\n\ttrace_id String,\n\tstart_time DateTime,\n\tlast_start_time DateTime\n) ENGINE = MergeTree\n"+
		"PARTITION BY toYYYYMM(start_time)\nORDER BY trace_id"+ttl); err != nil {
		return fmt.Errorf("clickhouse: create table %s: %w", s.starts, err)
	}
	if err := s.exec(ctx, "CREATE MATERIALIZED VIEW IF NOT EXISTS "+s.startsView+" TO "+s.starts+
		" AS SELECT trace_id, min(start_time) AS start_time, max(toDateTime(intDiv(start_ns, 1000000000))) AS last_start_time FROM "+s.table+" GROUP BY trace_id"); err != nil {
		return fmt.Errorf("clickhouse: create materialized view %s: %w", s.startsView, err)
	}
	return nil
}

// spanTable creates the span table, or checks the one there.
func (s *Store) spanTable(ctx context.Context, o Options) error {
	v := s.version
	var exists uint64
	if err := s.queryRow(ctx, []any{&exists}, "SELECT count() FROM system.tables WHERE database = ? AND name = ?", o.Database, o.Table); err != nil {
		return fmt.Errorf("clickhouse: look up table %s: %w", s.table, err)
	}
	if exists > 0 {
		return s.inspectTable(ctx, o)
	}

	ttl := o.TTLDays
	if ttl > 0 && !v.atLeast(19, 6) {
		s.log.Warn("clickhouse: server too old for TTL; spans are kept until deleted by hand",
			slog.String("server_version", v.raw), slog.Int("ttl_days", ttl), slog.String("needs", ">= 19.6"))
		ttl = 0
	}
	// Data-skipping indexes do not parse before 19.x and were experimental
	// for a while after; try one where it may exist and fall back without.
	if v.atLeast(19, 6) {
		for _, settings := range []ch.Settings{nil, {"allow_experimental_data_skipping_indices": 1}} {
			qctx := ctx
			if settings != nil {
				qctx = ch.Context(ctx, ch.WithSettings(settings))
			}
			err := s.exec(qctx, createTableSQL(s.table, ttl, true))
			if err == nil {
				s.ttl, s.skipIndex = ttl > 0, true
				return nil
			}
			var ex *ch.Exception
			if !errors.As(err, &ex) {
				return fmt.Errorf("clickhouse: create table %s: %w", s.table, err)
			}
			s.log.Debug("clickhouse: create table with a trace_id index failed", slog.Any("error", err))
		}
		s.log.Info("clickhouse: server rejects data-skipping indexes; table created without a trace_id index",
			slog.String("server_version", v.raw))
	} else {
		s.log.Info("clickhouse: server too old for data-skipping indexes; table created without a trace_id index",
			slog.String("server_version", v.raw))
	}
	if err := s.exec(ctx, createTableSQL(s.table, ttl, false)); err != nil {
		return fmt.Errorf("clickhouse: create table %s: %w", s.table, err)
	}
	s.ttl = ttl > 0
	return nil
}

// inspectTable checks an existing table has the columns this package writes
// and notes which optional features it has.
func (s *Store) inspectTable(ctx context.Context, o Options) error {
	rows, err := s.query(ctx, "SELECT name FROM system.columns WHERE database = ? AND table = ?", o.Database, o.Table)
	if err != nil {
		return fmt.Errorf("clickhouse: read columns of %s: %w", s.table, err)
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return fmt.Errorf("clickhouse: read columns of %s: %w", s.table, err)
		}
		have[n] = true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("clickhouse: read columns of %s: %w", s.table, err)
	}
	var missing []string
	for _, c := range columns {
		if !have[c] {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("clickhouse: existing table %s lacks columns %s", s.table, strings.Join(missing, ", "))
	}
	var createSQL string
	if err := s.queryRow(ctx, []any{&createSQL}, "SELECT create_table_query FROM system.tables WHERE database = ? AND name = ?", o.Database, o.Table); err == nil {
		s.ttl = strings.Contains(createSQL, " TTL ")
		s.skipIndex = strings.Contains(createSQL, "INDEX idx_trace_id")
	}
	switch {
	case o.TTLDays > 0 && !s.version.atLeast(19, 6):
		s.log.Warn("clickhouse: server too old for TTL; spans are kept until deleted by hand",
			slog.String("server_version", s.version.raw), slog.Int("ttl_days", o.TTLDays), slog.String("needs", ">= 19.6"))
	case o.TTLDays > 0 && !s.ttl:
		s.log.Warn("clickhouse: existing span table has no TTL; TTLDays is not applied to it (ALTER TABLE ... MODIFY TTL to add one)",
			slog.String("table", s.table), slog.String("server_version", s.version.raw))
	}
	return nil
}
