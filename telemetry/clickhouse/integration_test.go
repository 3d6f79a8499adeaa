package clickhouse

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/telemetry"
)

func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

func TestOpenCreatesSchemaIdempotently(t *testing.T) {
	o := testOptions(t)
	logs := &syncBuffer{}
	o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o.TTLDays = 7

	s1 := openStore(t, o)
	s2 := openStore(t, o) // the database and table exist now
	t.Logf("server %s: ttl=%v skip_index=%v", s1.ServerVersion(), s1.ttl, s1.skipIndex)

	ctx := ctxT(t)
	var n uint64
	require.NoError(t, s1.conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = ?", o.Database, DefaultTable).Scan(&n))
	require.EqualValues(t, 1, n)

	var engine, partitionKey, sortingKey, createSQL string
	require.NoError(t, s1.conn.QueryRow(ctx, "SELECT engine, partition_key, sorting_key, create_table_query FROM system.tables WHERE database = ? AND name = ?",
		o.Database, DefaultTable).Scan(&engine, &partitionKey, &sortingKey, &createSQL))
	assert.Equal(t, "MergeTree", engine)
	assert.Equal(t, "toYYYYMMDD(start_time)", partitionKey)
	assert.Equal(t, "start_time, trace_id", sortingKey)
	t.Logf("created: %s", createSQL)

	// The features match what the server supports, and both stores agree.
	assert.Equal(t, s1.version.atLeast(19, 6), s1.ttl)
	assert.Equal(t, s1.ttl, s2.ttl)
	assert.Equal(t, s1.skipIndex, s2.skipIndex)
	assert.Equal(t, s1.ttl, strings.Contains(createSQL, "TTL"))
	if !s1.version.atLeast(19, 6) {
		assert.Contains(t, logs.String(), "server too old for TTL")
		assert.Contains(t, logs.String(), "without a trace_id index")
	}

	// Both stores work on the same table.
	spans := buildTrace(traceSpec{RunID: "r1", Start: time.Now().Add(-time.Minute), Input: "hi"})
	require.NoError(t, s2.Write(ctx, spans))
	got, err := s1.GetTrace(ctx, spans[0].TraceID)
	require.NoError(t, err)
	assert.Len(t, got, len(spans))
}

func TestOpenRejectsTableWithoutOurColumns(t *testing.T) {
	o := testOptions(t)
	s := openStore(t, o)
	ctx := ctxT(t)
	require.NoError(t, s.conn.Exec(ctx, "CREATE TABLE "+quoteIdent(o.Database)+".other (x UInt8) ENGINE = Memory"))
	o.Table = "other"
	_, err := Open(ctx, o)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "lacks columns")
}

func TestWriteAndGetTraceRoundTrip(t *testing.T) {
	s := openStore(t, testOptions(t))
	ctx := ctxT(t)

	start := time.Date(2025, 3, 14, 9, 26, 53, 589793238, time.FixedZone("CET", 3600))
	spans := buildTrace(traceSpec{
		RunID: "run-1", SessionID: "sess-1", UserID: "user-1", TeamID: "support",
		Start: start, Input: "Where is my order A-1001? It's urgent — ¿dónde está?", ToolFails: true,
	})
	// A span whose end is unknown and whose attribute map is empty, not nil.
	open := spans[len(spans)-1]
	open.SpanID = telemetry.NewSpanID()
	open.Name = "tool unfinished"
	open.Kind = telemetry.KindTool
	open.End = time.Time{}
	open.Attributes = map[string]string{}
	spans = append(spans, open)

	// Written out of order, in two batches, next to another trace.
	shuffled := append([]telemetry.Span(nil), spans...)
	sort.Slice(shuffled, func(i, j int) bool { return shuffled[i].SpanID > shuffled[j].SpanID })
	require.NoError(t, s.Write(ctx, shuffled[:3]))
	other := buildTrace(traceSpec{RunID: "run-2", Start: start, Input: "other"})
	require.NoError(t, s.Write(ctx, append(shuffled[3:], other...)))

	got, err := s.GetTrace(ctx, spans[0].TraceID)
	require.NoError(t, err)
	want := normalize(spans)
	require.Equal(t, want, got)

	// Exact nanoseconds, UTC.
	assert.Equal(t, time.UTC, got[0].Start.Location())
	assert.Equal(t, 589793238, got[0].Start.Nanosecond())
	assert.True(t, got[0].Start.Equal(start))
	assert.Equal(t, "ToolError: order service timed out", findSpan(t, got, "tool lookup_order").StatusMessage)
	assert.Equal(t, 1234, findSpan(t, got, "model gpt-4o").InputTokens)
	assert.True(t, findSpan(t, got, "tool unfinished").End.IsZero())

	// Unknown and empty ids give an empty slice, not nil.
	for _, id := range []string{telemetry.NewTraceID(), "", "' OR 1=1 --"} {
		none, err := s.GetTrace(ctx, id)
		require.NoError(t, err)
		assert.NotNil(t, none)
		assert.Empty(t, none)
	}
}

func findSpan(t *testing.T, spans []telemetry.Span, name string) telemetry.Span {
	t.Helper()
	for _, sp := range spans {
		if sp.Name == name {
			return sp
		}
	}
	t.Fatalf("no span %q", name)
	return telemetry.Span{}
}

func TestWriteEmptyBatchIsANoOp(t *testing.T) {
	// No server needed: nothing is sent.
	s := &Store{}
	require.NoError(t, s.Write(context.Background(), nil))
}

// fixture writes a set of traces with distinct filter fields.
type fixture struct {
	base   time.Time
	traces map[string][]telemetry.Span // by run id
}

func writeFixture(t *testing.T, s *Store) fixture {
	t.Helper()
	base := time.Now().UTC().Truncate(time.Hour).Add(-48 * time.Hour)
	specs := []traceSpec{
		{RunID: "run-a", SessionID: "sess-1", UserID: "alice", AgentID: "helper", Start: base.Add(1 * time.Hour), Input: "input a"},
		{RunID: "run-b", SessionID: "sess-1", UserID: "alice", AgentID: "helper", Start: base.Add(2 * time.Hour), Input: "input b", Fail: true},
		{RunID: "run-c", SessionID: "sess-2", UserID: "bob", TeamID: "support", Start: base.Add(3 * time.Hour), Input: "input c", ToolFails: true},
		{RunID: "run-d", SessionID: "sess-3", UserID: "bob", AgentID: "writer", Start: base.Add(26 * time.Hour), Input: "it's \"quoted\""},
		{RunID: "run-e", SessionID: "sess-3", UserID: "carol", TeamID: "sales", Start: base.Add(27 * time.Hour), Input: ""},
	}
	f := fixture{base: base, traces: map[string][]telemetry.Span{}}
	var all []telemetry.Span
	for _, sp := range specs {
		spans := buildTrace(sp)
		f.traces[sp.RunID] = spans
		all = append(all, spans...)
	}
	require.NoError(t, s.Write(ctxT(t), all))
	return f
}

func runIDs(list []telemetry.TraceSummary) []string {
	out := make([]string, len(list))
	for i, t := range list {
		out[i] = t.RunID
	}
	return out
}

func TestListTracesFilters(t *testing.T) {
	s := openStore(t, testOptions(t))
	f := writeFixture(t, s)
	ctx := ctxT(t)

	cases := []struct {
		name string
		q    telemetry.TraceQuery
		want []string // run ids, newest first
	}{
		{"all", telemetry.TraceQuery{}, []string{"run-e", "run-d", "run-c", "run-b", "run-a"}},
		{"run", telemetry.TraceQuery{RunID: "run-c"}, []string{"run-c"}},
		{"session", telemetry.TraceQuery{SessionID: "sess-1"}, []string{"run-b", "run-a"}},
		{"user", telemetry.TraceQuery{UserID: "bob"}, []string{"run-d", "run-c"}},
		{"agent", telemetry.TraceQuery{AgentID: "helper"}, []string{"run-b", "run-a"}},
		{"team", telemetry.TraceQuery{TeamID: "support"}, []string{"run-c"}},
		{"status error", telemetry.TraceQuery{Status: telemetry.StatusError}, []string{"run-b"}},
		{"status ok", telemetry.TraceQuery{Status: telemetry.StatusOK}, []string{"run-e", "run-d", "run-c", "run-a"}},
		{"combined", telemetry.TraceQuery{UserID: "alice", Status: telemetry.StatusOK}, []string{"run-a"}},
		{"combined none", telemetry.TraceQuery{UserID: "alice", TeamID: "support"}, nil},
		{"start time", telemetry.TraceQuery{StartTime: f.base.Add(2 * time.Hour)}, []string{"run-e", "run-d", "run-c", "run-b"}},
		{"start time exact ns", telemetry.TraceQuery{StartTime: f.base.Add(2*time.Hour + time.Nanosecond)}, []string{"run-e", "run-d", "run-c"}},
		// EndTime bounds the root's start too (inclusive), as in the SQL store.
		{"end time", telemetry.TraceQuery{EndTime: f.base.Add(3 * time.Hour)}, []string{"run-c", "run-b", "run-a"}},
		{"end time 1ns before", telemetry.TraceQuery{EndTime: f.base.Add(3*time.Hour - time.Nanosecond)}, []string{"run-b", "run-a"}},
		{"start equals end", telemetry.TraceQuery{StartTime: f.base.Add(3 * time.Hour), EndTime: f.base.Add(3 * time.Hour)}, []string{"run-c"}},
		{"range", telemetry.TraceQuery{StartTime: f.base.Add(90 * time.Minute), EndTime: f.base.Add(26*time.Hour + time.Minute)}, []string{"run-d", "run-c", "run-b"}},
		{"range and user", telemetry.TraceQuery{StartTime: f.base.Add(90 * time.Minute), EndTime: f.base.Add(26*time.Hour + time.Minute), UserID: "bob"}, []string{"run-d", "run-c"}},
		// Filters are on the trace (its root span): a member's run id or
		// agent id does not select the team's trace.
		{"member run id", telemetry.TraceQuery{RunID: "member-run-c"}, nil},
		{"member agent id", telemetry.TraceQuery{AgentID: "researcher"}, nil},
		// Values are bound, never spliced into the SQL.
		{"injection", telemetry.TraceQuery{UserID: "' OR 1=1 OR user_id = '"}, nil},
		{"injection backslash", telemetry.TraceQuery{RunID: `run-a\' OR 1=1 --`}, nil},
		{"unknown", telemetry.TraceQuery{RunID: "nope"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			list, total, err := s.ListTraces(ctx, tc.q)
			require.NoError(t, err)
			want := tc.want
			if want == nil {
				want = []string{}
			}
			assert.Equal(t, want, runIDs(list))
			assert.Equal(t, len(want), total)
			assert.NotNil(t, list)
		})
	}
}

func TestListTracesSummary(t *testing.T) {
	s := openStore(t, testOptions(t))
	f := writeFixture(t, s)
	ctx := ctxT(t)

	list, total, err := s.ListTraces(ctx, telemetry.TraceQuery{RunID: "run-c"})
	require.NoError(t, err)
	require.Equal(t, 1, total)
	require.Len(t, list, 1)
	spans := f.traces["run-c"]
	root := spans[0]
	got := list[0]
	assert.Equal(t, telemetry.TraceSummary{
		TraceID:    root.TraceID,
		Name:       "team.run support",
		Status:     telemetry.StatusOK,
		Duration:   root.End.Sub(root.Start),
		StartTime:  root.Start.UTC(),
		EndTime:    root.End.UTC(),
		TotalSpans: len(spans),
		ErrorCount: 1, // the failed tool call
		Input:      "input c",
		RunID:      "run-c",
		SessionID:  "sess-2",
		UserID:     "bob",
		AgentID:    "",
		TeamID:     "support",
	}, got)
	assert.Equal(t, 5*time.Second+123*time.Nanosecond, got.Duration)

	list, _, err = s.ListTraces(ctx, telemetry.TraceQuery{RunID: "run-b"})
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, telemetry.StatusError, list[0].Status)
	assert.Equal(t, 1, list[0].ErrorCount)
	assert.Equal(t, "input b", list[0].Input)
	assert.Equal(t, "helper", list[0].AgentID)

	list, _, err = s.ListTraces(ctx, telemetry.TraceQuery{RunID: "run-d"})
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, `it's "quoted"`, list[0].Input)
	assert.Equal(t, 0, list[0].ErrorCount)
}

func TestListTracesRootWithRemoteParent(t *testing.T) {
	s := openStore(t, testOptions(t))
	ctx := ctxT(t)
	// A trace continued from an incoming traceparent: its root's parent is a
	// span of the calling service, absent here.
	spans := buildTrace(traceSpec{RunID: "remote", UserID: "u", Start: time.Now().Add(-time.Hour), Input: "from upstream"})
	for i := range spans {
		if spans[i].ParentID == "" {
			spans[i].ParentID = telemetry.NewSpanID()
		}
	}
	require.NoError(t, s.Write(ctx, spans))
	list, total, err := s.ListTraces(ctx, telemetry.TraceQuery{UserID: "u"})
	require.NoError(t, err)
	require.Equal(t, 1, total)
	assert.Equal(t, "team.run support", list[0].Name)
	assert.Equal(t, "from upstream", list[0].Input)
	assert.Equal(t, "remote", list[0].RunID)
	assert.Equal(t, len(spans), list[0].TotalSpans)
}

func TestListTracesRootMarker(t *testing.T) {
	s := openStore(t, testOptions(t))
	ctx := ctxT(t)
	// Two services' spans in one trace: the caller's span (no parent, earlier)
	// and this service's run, marked as the root of what it recorded.
	spans := buildTrace(traceSpec{RunID: "callee", UserID: "m", Start: time.Now().Add(-time.Hour), Input: "callee input"})
	spans[0].Attributes[telemetry.RootAttribute] = "true"
	caller := telemetry.Span{
		TraceID: spans[0].TraceID, SpanID: telemetry.NewSpanID(), Name: "http POST /orders", Kind: "http",
		Start: spans[0].Start.Add(-time.Second), End: spans[0].End.Add(time.Second), Status: telemetry.StatusOK,
		UserID: "m", RunID: "caller",
	}
	spans[0].ParentID = caller.SpanID
	require.NoError(t, s.Write(ctx, append(spans, caller)))

	list, total, err := s.ListTraces(ctx, telemetry.TraceQuery{UserID: "m"})
	require.NoError(t, err)
	require.Equal(t, 1, total)
	assert.Equal(t, "callee", list[0].RunID)
	assert.Equal(t, "callee input", list[0].Input)
	assert.Equal(t, len(spans)+1, list[0].TotalSpans)

	// Without the marker the caller's parentless span is the root.
	spans2 := buildTrace(traceSpec{RunID: "callee2", UserID: "m2", Start: time.Now().Add(-time.Hour)})
	caller.TraceID, caller.SpanID, caller.UserID = spans2[0].TraceID, telemetry.NewSpanID(), "m2"
	spans2[0].ParentID = caller.SpanID
	require.NoError(t, s.Write(ctx, append(spans2, caller)))
	list, _, err = s.ListTraces(ctx, telemetry.TraceQuery{UserID: "m2"})
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, "caller", list[0].RunID)
	assert.Equal(t, "http POST /orders", list[0].Name)
}

func TestListTracesPagingManyTraces(t *testing.T) {
	s := openStore(t, testOptions(t))
	ctx := ctxT(t)

	const n = 257
	base := time.Now().UTC().Add(-72 * time.Hour)
	var all []telemetry.Span
	order := make([]string, 0, n) // trace ids, newest first
	for i := 0; i < n; i++ {
		user := "even"
		if i%2 == 1 {
			user = "odd"
		}
		// Spread over three days: several partitions.
		spans := buildTrace(traceSpec{RunID: fmt.Sprintf("run-%03d", i), UserID: user, Start: base.Add(time.Duration(i) * 15 * time.Minute), Input: fmt.Sprint(i)})
		all = append(all, spans...)
		order = append([]string{spans[0].TraceID}, order...)
	}
	require.NoError(t, s.Write(ctx, all))

	ids := func(list []telemetry.TraceSummary) []string {
		out := make([]string, len(list))
		for i, t := range list {
			out[i] = t.TraceID
		}
		return out
	}

	// Default limit 20.
	list, total, err := s.ListTraces(ctx, telemetry.TraceQuery{})
	require.NoError(t, err)
	assert.Equal(t, n, total)
	assert.Equal(t, order[:20], ids(list))

	// Limit capped at 100; walking pages returns every trace once, in order.
	var walked []string
	for page := 1; ; page++ {
		list, total, err := s.ListTraces(ctx, telemetry.TraceQuery{Limit: 1000, Page: page})
		require.NoError(t, err)
		assert.Equal(t, n, total)
		if len(list) == 0 {
			assert.Equal(t, 4, page)
			break
		}
		assert.LessOrEqual(t, len(list), 100)
		walked = append(walked, ids(list)...)
	}
	assert.Equal(t, order, walked)

	// Page 2 of 7.
	list, total, err = s.ListTraces(ctx, telemetry.TraceQuery{Limit: 7, Page: 2})
	require.NoError(t, err)
	assert.Equal(t, n, total)
	assert.Equal(t, order[7:14], ids(list))

	// Filter plus paging: total is the filtered count.
	list, total, err = s.ListTraces(ctx, telemetry.TraceQuery{UserID: "odd", Limit: 50, Page: 3})
	require.NoError(t, err)
	assert.Equal(t, n/2, total)
	assert.Len(t, list, n/2-100)
	for _, tr := range list {
		assert.Equal(t, "odd", tr.UserID)
		assert.Equal(t, 8, tr.TotalSpans)
	}

	// Past the end: empty page, real total.
	list, total, err = s.ListTraces(ctx, telemetry.TraceQuery{Page: 99})
	require.NoError(t, err)
	assert.Equal(t, n, total)
	assert.Empty(t, list)
	assert.NotNil(t, list)

	// Negative / zero page and limit fall back to the defaults.
	list, _, err = s.ListTraces(ctx, telemetry.TraceQuery{Limit: -5, Page: -1})
	require.NoError(t, err)
	assert.Equal(t, order[:20], ids(list))
}

func TestConcurrentWrites(t *testing.T) {
	s := openStore(t, testOptions(t))
	ctx := ctxT(t)
	const writers, per = 8, 20
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		go func() {
			var err error
			for i := 0; i < per && err == nil; i++ {
				err = s.Write(ctx, buildTrace(traceSpec{RunID: fmt.Sprintf("w%d-%d", w, i), UserID: "c", Start: time.Now()}))
			}
			errs <- err
		}()
	}
	for w := 0; w < writers; w++ {
		require.NoError(t, <-errs)
	}
	_, total, err := s.ListTraces(ctx, telemetry.TraceQuery{UserID: "c"})
	require.NoError(t, err)
	assert.Equal(t, writers*per, total)
}

func TestWriteHonoursCancelledContext(t *testing.T) {
	s := openStore(t, testOptions(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Write(ctx, buildTrace(traceSpec{RunID: "x", Start: time.Now()}))
	require.ErrorIs(t, err, context.Canceled)
}

// TestGetTraceFromItsStart checks the table of trace starts (see
// traceStartTable): it holds every trace written, GetTrace finds all the
// spans of a trace written in batches whatever their times (a caller's spans
// stored after its callee's start earlier), reads only the spans from the
// trace's start, and still finds the spans of a trace the table does not
// know (written before it existed).
func TestGetTraceFromItsStart(t *testing.T) {
	o := testOptions(t)
	s := openStore(t, o)
	ctx := ctxT(t)

	day := 24 * time.Hour
	start := time.Now().UTC().Add(-3 * day).Truncate(time.Second)
	spans := buildTrace(traceSpec{RunID: "late", Start: start, Input: "x"})
	// Older spans of the other traces, in earlier partitions, that a lookup
	// by id alone would read.
	for i := range 3 {
		require.NoError(t, s.Write(ctx, buildTrace(traceSpec{RunID: fmt.Sprint("old", i), Start: start.Add(-time.Duration(i+1) * day), Input: "x"})))
	}
	require.NoError(t, s.Write(ctx, spans[2:]))
	// The caller's span, an hour before the rest, arrives last.
	caller := spans[0]
	caller.SpanID, caller.ParentID, caller.Name = telemetry.NewSpanID(), "", "caller"
	caller.Start, caller.End = start.Add(-time.Hour), start.Add(time.Minute)
	require.NoError(t, s.Write(ctx, append(spans[:2:2], caller)))

	var rows uint64
	require.NoError(t, s.conn.QueryRow(ctx, "SELECT count() FROM "+s.starts).Scan(&rows))
	assert.EqualValues(t, 3+2, rows, "one row per trace and batch")

	got, err := s.GetTrace(ctx, spans[0].TraceID)
	require.NoError(t, err)
	require.Equal(t, normalize(append(spans, caller)), got)

	// The queries read the spans from the trace's start on, not the three
	// days before (ClickHouse reports the rows it read as progress).
	var read atomic.Uint64
	pctx := ch.Context(ctx, ch.WithProgress(func(p *ch.Progress) { read.Add(p.Rows) }))
	_, err = s.GetTrace(pctx, spans[0].TraceID)
	require.NoError(t, err)
	assert.Greater(t, read.Load(), uint64(0), "progress reports rows read")
	assert.Less(t, read.Load(), uint64(2*len(spans)+10), "rows read by GetTrace: only the trace's start lookup and its own day's spans")

	// A trace written while the view did not exist is found by id alone.
	require.NoError(t, s.exec(ctx, "DROP TABLE "+s.startsView))
	legacy := buildTrace(traceSpec{RunID: "legacy", Start: start, Input: "x"})
	require.NoError(t, s.Write(ctx, legacy))
	s = openStore(t, o) // recreates the view
	got, err = s.GetTrace(ctx, legacy[0].TraceID)
	require.NoError(t, err)
	require.Equal(t, normalize(legacy), got)
	require.NoError(t, s.Write(ctx, buildTrace(traceSpec{RunID: "after", Start: start, Input: "x"})))
	require.NoError(t, s.conn.QueryRow(ctx, "SELECT count() FROM "+s.starts).Scan(&rows))
	assert.EqualValues(t, 3+2+1, rows, "the view fills the table again")
}
