package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/telemetry"
)

func TestParseDSN(t *testing.T) {
	cases := []struct {
		dsn  string
		want Options
	}{
		{"clickhouse://localhost:9000/troupe", Options{Addr: "localhost:9000", Database: "troupe"}},
		{"clickhouse://ch.internal", Options{Addr: "ch.internal:9000"}},
		{"clickhouse://u:p%40ss@10.0.0.1:9440/spans_db", Options{Addr: "10.0.0.1:9440", Database: "spans_db", Username: "u", Password: "p@ss"}},
		{"clickhouse://user@[::1]/db", Options{Addr: "[::1]:9000", Database: "db", Username: "user"}},
		{"tcp://h:9000/db?table=spans&ttl_days=30&dial_timeout=2s", Options{Addr: "h:9000", Database: "db", Table: "spans", TTLDays: 30, DialTimeout: 2 * time.Second}},
	}
	for _, tc := range cases {
		got, err := ParseDSN(tc.dsn)
		require.NoError(t, err, tc.dsn)
		assert.Equal(t, tc.want, got, tc.dsn)
	}

	bad := map[string]string{
		"http://localhost:8123/db":                  "unsupported dsn scheme",
		"localhost:9000":                            "scheme",
		"clickhouse:///db":                          "no host",
		"clickhouse://h/db?ttl_days=-1":             "ttl_days",
		"clickhouse://h/db?ttl_days=x":              "ttl_days",
		"clickhouse://h/db?dial_timeout=soon":       "dial_timeout",
		"clickhouse://h/db?compress=1":              "unknown dsn parameter",
		"clickhouse://h/bad-name":                   "invalid database name",
		"clickhouse://h/db?table=x;DROP":            "parse dsn parameters",
		"clickhouse://h/db?table=x%3BDROP":          "invalid table name",
		"clickhouse://u:secret@h:notaport/db\x7f":   "parse dsn",
		"clickhouse://u:secret@h/db?table=a%20b":    "invalid table name",
		"clickhouse://u:secret@h:9000/a/b":          "invalid database name",
		"clickhouse://u:secret@h/db?ttl_days=1e3":   "ttl_days",
		"clickhouse://u:secret@h/db?dial_timeout=0": "dial_timeout",
	}
	for dsn, want := range bad {
		_, err := ParseDSN(dsn)
		require.Error(t, err, dsn)
		assert.Contains(t, err.Error(), want, dsn)
		assert.NotContains(t, err.Error(), "secret", "errors must not leak the password")
	}
}

func TestOptionsDefaults(t *testing.T) {
	o, err := Options{Addr: "h"}.withDefaults()
	require.NoError(t, err)
	assert.Equal(t, "h:9000", o.Addr)
	assert.Equal(t, DefaultDatabase, o.Database)
	assert.Equal(t, DefaultTable, o.Table)
	assert.Equal(t, DefaultDialTimeout, o.DialTimeout)
	assert.NotNil(t, o.Logger)

	for _, bad := range []Options{{}, {Addr: "h", Database: "a.b"}, {Addr: "h", Table: "t`"}, {Addr: "h", TTLDays: -1}} {
		_, err := bad.withDefaults()
		assert.Error(t, err, "%+v", bad)
		_, err = Open(context.Background(), bad)
		assert.Error(t, err, "%+v", bad)
	}
}

func TestCreateTableSQL(t *testing.T) {
	plain := createTableSQL("`db`.`t`", 0, false)
	for _, want := range []string{
		"CREATE TABLE IF NOT EXISTS `db`.`t`",
		"start_time     DateTime",
		"start_ns       UInt64",
		"attr_keys      Array(String)",
		"ENGINE = MergeTree",
		"PARTITION BY toYYYYMMDD(start_time)",
		"ORDER BY (start_time, trace_id)",
	} {
		assert.Contains(t, plain, want)
	}
	for _, absent := range []string{"TTL", "INDEX", "DateTime64", "Map(", "LowCardinality", "JSON"} {
		assert.NotContains(t, plain, absent)
	}
	// Every inserted column is declared.
	for _, c := range columns {
		assert.Contains(t, plain, "\t"+c+" ")
	}

	full := createTableSQL("`db`.`t`", 30, true)
	assert.Contains(t, full, "TTL start_time + INTERVAL 30 DAY")
	assert.Contains(t, full, "INDEX idx_trace_id trace_id TYPE bloom_filter GRANULARITY 4")
}

func TestParseVersion(t *testing.T) {
	v, err := parseVersion("18.16.1")
	require.NoError(t, err)
	assert.False(t, v.atLeast(19, 6))
	assert.True(t, v.atLeast(18, 16))
	v, err = parseVersion("19.6.2.11")
	require.NoError(t, err)
	assert.True(t, v.atLeast(19, 6))
	v, err = parseVersion("24.8.4.13")
	require.NoError(t, err)
	assert.True(t, v.atLeast(19, 6))
	_, err = parseVersion("dev")
	assert.Error(t, err)
	_, err = parseVersion("x.1")
	assert.Error(t, err)
}

func TestColumnsConversion(t *testing.T) {
	start := time.Date(2025, 1, 2, 3, 4, 5, 6, time.FixedZone("X", -7*3600))
	spans := []telemetry.Span{
		{TraceID: "t", SpanID: "s", Start: start, End: start.Add(time.Second), InputTokens: 3,
			Attributes: map[string]string{"b": "2", "a": "1", "c": ""}},
		{TraceID: "t", SpanID: "u", Start: start, End: start.Add(-time.Second)}, // clock went back
		{TraceID: "t", SpanID: "v"}, // zero times
	}
	c := toColumns(spans)
	assert.Equal(t, uint64(start.UnixNano()), c.startNs[0])
	assert.Equal(t, uint64(time.Second), c.durationNs[0])
	assert.Equal(t, start.Unix(), c.startTime[0].Unix())
	assert.Equal(t, []string{"a", "b", "c"}, c.attrKeys[0])
	assert.Equal(t, []string{"1", "2", ""}, c.attrValues[0])
	assert.Equal(t, uint64(0), c.durationNs[1])
	assert.Equal(t, []string{}, c.attrKeys[1])
	assert.Equal(t, uint64(0), c.startNs[2])
	assert.Equal(t, uint64(0), c.endNs[2])
	assert.Len(t, c.values(), len(columns))
	for _, v := range c.values() {
		assert.NotNil(t, v)
	}

	assert.True(t, fromUnixNano(0).IsZero())
	back := fromUnixNano(c.startNs[0])
	assert.True(t, back.Equal(start))
	assert.Equal(t, time.UTC, back.Location())
	assert.Equal(t, uint64(0), unixNano(time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)))
}

func TestListQueryBindsEveryValue(t *testing.T) {
	s := &Store{table: "`db`.`t`"}
	evil := "x' OR '1'='1"
	q := telemetry.TraceQuery{
		RunID: evil, SessionID: evil, UserID: evil, AgentID: evil, TeamID: evil, Status: evil,
		StartTime: time.Unix(100, 5), EndTime: time.Unix(200, 7),
	}
	sql, args, filtered := s.listQuery(q)
	assert.True(t, filtered)
	assert.NotContains(t, sql, evil)
	assert.Equal(t, strings.Count(sql, "?"), len(args))
	// 6 equality filters twice (span prefilter, root check), 2 times 3 each.
	assert.Len(t, args, 6*2+3*2)
	assert.Contains(t, sql, "HAVING r_run_id = ?")
	assert.Contains(t, sql, "start_time >= toDateTime(?)")

	sql, args, filtered = s.listQuery(telemetry.TraceQuery{Limit: 5, Page: 2})
	assert.False(t, filtered)
	assert.Empty(t, args)
	assert.NotContains(t, sql, "WHERE")
	assert.NotContains(t, sql, "HAVING")
	assert.NotContains(t, sql, "?")
}

func TestBounded(t *testing.T) {
	// Returns f's result when f finishes first.
	v, err := bounded(context.Background(), func() (int, error) { return 7, nil }, nil)
	require.NoError(t, err)
	assert.Equal(t, 7, v)
	boom := errors.New("boom")
	_, err = bounded(context.Background(), func() (int, error) { return 0, boom }, nil)
	assert.ErrorIs(t, err, boom)

	// Returns at the deadline; the late result is handed to abandon.
	release := make(chan struct{})
	abandoned := make(chan int, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = bounded(ctx, func() (int, error) { <-release; return 9, nil }, func(v int) { abandoned <- v })
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), time.Second)
	close(release)
	assert.Equal(t, 9, <-abandoned)
}

func TestWithCtxErr(t *testing.T) {
	ioTimeout := errors.New("read tcp: i/o timeout")
	assert.NoError(t, withCtxErr(context.Background(), nil))
	assert.Equal(t, ioTimeout, withCtxErr(context.Background(), ioTimeout))

	past, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	err := withCtxErr(past, ioTimeout)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorIs(t, err, ioTimeout)

	cancelled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	err = withCtxErr(cancelled, ioTimeout)
	assert.ErrorIs(t, err, context.Canceled)
	// Already matching: left alone.
	assert.Equal(t, context.Canceled, withCtxErr(cancelled, context.Canceled))
}

// TestRetryDropped: a call whose connection the server dropped is retried
// until it reaches a live connection — every pooled one may be dead after a
// server restart — at most maxIdleConns times; other errors are not
// retried.
func TestRetryDropped(t *testing.T) {
	reset := fmt.Errorf("read: %w", syscall.ECONNRESET)
	for _, tc := range []struct {
		name      string
		failures  int
		err       error
		wantCalls int
		wantErr   bool
	}{
		{"first call works", 0, reset, 1, false},
		{"three dead pooled connections", 3, reset, 4, false},
		{"all dead", 100, reset, maxIdleConns + 1, true},
		{"refused, not dropped", 100, syscall.ECONNREFUSED, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			_, err := retryDropped(context.Background(), func() (int, error) {
				calls++
				if calls <= tc.failures {
					return 0, tc.err
				}
				return 1, nil
			})
			require.Equal(t, tc.wantCalls, calls)
			require.Equal(t, tc.wantErr, err != nil)
		})
	}
}
