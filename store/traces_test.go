package store_test

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/store"
	"github.com/troupehq/troupe/telemetry"
)

// traceBase is a start time with nanoseconds, which spans keep.
var traceBase = time.Date(2025, 3, 14, 9, 26, 53, 589793238, time.UTC)

// teamTrace is what telemetry.Trace records for a team run: the root run, a
// member's run with its model request, tool call (failed) and knowledge
// search, the team's own model request, and the store write. parent is the
// caller's span when the run continued a traceparent.
func teamTrace(traceID, parent string, start time.Time) []telemetry.Span {
	at := func(d time.Duration) time.Time { return start.Add(d) }
	common := func(s telemetry.Span) telemetry.Span {
		s.TraceID, s.RunID, s.SessionID, s.UserID, s.TeamID = traceID, "run-"+traceID[:8], "sess-42", "alice@example.com", "research"
		if s.Status == "" {
			s.Status = telemetry.StatusOK
		}
		return s
	}
	root := common(telemetry.Span{SpanID: "a000000000000001", ParentID: parent, Name: "team.run research", Kind: telemetry.KindRun,
		Start: at(0), End: at(2*time.Second + 718281828), InputTokens: 1532, OutputTokens: 467,
		Attributes: map[string]string{"troupe.kind": "team", "troupe.target": "research", "troupe.spec_version": "v7",
			"model": "gpt-5", "provider": "openai", telemetry.InputAttribute: "Summarise the Go 1.26 release — «vite» ✓",
			telemetry.RootAttribute: "true"}})
	member := common(telemetry.Span{SpanID: "a000000000000002", ParentID: root.SpanID, Name: "member.run researcher", Kind: telemetry.KindRun,
		Start: at(120 * time.Millisecond), End: at(2*time.Second + 1), InputTokens: 1200, OutputTokens: 300, AgentID: "researcher",
		Attributes: map[string]string{"troupe.member": "researcher", "troupe.depth": "1", "model": "claude-x", "provider": "anthropic"}})
	model := common(telemetry.Span{SpanID: "a000000000000003", ParentID: member.SpanID, Name: "model.request anthropic/claude-x", Kind: telemetry.KindModel,
		Start: at(130*time.Millisecond + 7), End: at(900 * time.Millisecond), InputTokens: 800, OutputTokens: 120, AgentID: "researcher",
		Attributes: map[string]string{"model": "claude-x", "provider": "anthropic", "time_to_first_token_ms": "212.500"}})
	tool := common(telemetry.Span{SpanID: "a000000000000004", ParentID: member.SpanID, Name: "tool.call web_fetch", Kind: telemetry.KindTool,
		Start: at(901 * time.Millisecond), End: at(1100 * time.Millisecond), AgentID: "researcher",
		Status: telemetry.StatusError, StatusMessage: "ToolError: GET https://go.dev/doc: 503 Service Unavailable",
		Attributes: map[string]string{"tool.name": "web_fetch", "tool.arguments": `{"url":"https://go.dev/doc"}`, "tool.result": "503"}})
	knowledge := common(telemetry.Span{SpanID: "a000000000000005", ParentID: member.SpanID, Name: "knowledge.search", Kind: telemetry.KindKnowledge,
		Start: at(1100 * time.Millisecond), End: at(1150*time.Millisecond + 999), AgentID: "researcher",
		Attributes: map[string]string{"tool.name": "knowledge_search", "tool.arguments": `{"query":"go 1.26 release notes"}`,
			"tool.result": "[3 passages]"}})
	teamModel := common(telemetry.Span{SpanID: "a000000000000006", ParentID: root.SpanID, Name: "model.request openai/gpt-5", Kind: telemetry.KindModel,
		Start: at(2*time.Second + 2), End: at(2*time.Second + 700000000), InputTokens: 332, OutputTokens: 167,
		Attributes: map[string]string{"model": "gpt-5", "provider": "openai"}})
	// Same start as teamModel: GetTrace orders them by span id.
	sibling := common(telemetry.Span{SpanID: "a000000000000000", ParentID: root.SpanID, Name: "tool.call clock", Kind: telemetry.KindTool,
		Start: at(2*time.Second + 2), End: at(2*time.Second + 3), Attributes: map[string]string{}})
	storeSpan := common(telemetry.Span{SpanID: "a000000000000007", ParentID: root.SpanID, Name: "store.finish_run", Kind: telemetry.KindStore,
		Start: at(2*time.Second + 700000001), End: at(2*time.Second + 718000000)})
	return []telemetry.Span{root, member, model, tool, knowledge, teamModel, sibling, storeSpan}
}

// byStart orders spans as GetTrace returns them.
func byStart(spans []telemetry.Span) []telemetry.Span {
	out := slices.Clone(spans)
	slices.SortFunc(out, func(a, b telemetry.Span) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.SpanID, b.SpanID))
	})
	return out
}

func traceIDs(list []telemetry.TraceSummary) []string {
	out := []string{}
	for _, s := range list {
		out = append(out, s.TraceID)
	}
	return out
}

// countRows returns how many rows the trace has: one, however its spans
// arrived.
func countRows(t *testing.T, db *store.DB, traceID string) int {
	t.Helper()
	var n int
	require.NoError(t, store.ReadDB(db).QueryRowContext(t.Context(),
		`SELECT COUNT(*) FROM traces WHERE trace_id = $1`, traceID).Scan(&n))
	return n
}

func TestTracesRoundTrip(t *testing.T) {
	for name, open := range dbOpeners(t) {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			tr := db.Traces()
			ctx := t.Context()
			const id = "4bf92f3577b34da6a3ce929d0e0e4736"
			spans := teamTrace(id, "", traceBase)
			// The batch's order does not matter.
			batch := slices.Clone(spans)
			slices.Reverse(batch)
			require.NoError(t, tr.Write(ctx, batch))

			got, err := tr.GetTrace(ctx, id)
			require.NoError(t, err)
			require.Equal(t, byStart(spans), got)
			require.Equal(t, "store.finish_run", got[len(got)-1].Name)
			require.Nil(t, got[len(got)-1].Attributes, "nil attributes stay nil")
			require.Equal(t, "tool.call clock", got[5].Name, "same start: ordered by span id")
			require.Equal(t, map[string]string{}, got[5].Attributes, "empty attributes stay empty")

			missing, err := tr.GetTrace(ctx, "0af7651916cd43dd8448eb211c80319c")
			require.NoError(t, err)
			require.NotNil(t, missing)
			require.Empty(t, missing)

			list, total, err := tr.ListTraces(ctx, telemetry.TraceQuery{})
			require.NoError(t, err)
			require.Equal(t, 1, total)
			root := spans[0]
			require.Equal(t, []telemetry.TraceSummary{{
				TraceID: id, Name: "team.run research", Status: telemetry.StatusOK, Duration: 2*time.Second + 718281828,
				StartTime: root.Start, EndTime: root.End, TotalSpans: len(spans), ErrorCount: 1,
				Input: root.Attributes[telemetry.InputAttribute], RunID: root.RunID, SessionID: "sess-42", UserID: "alice@example.com",
				TeamID: "research",
			}}, list)

			// Reopened, the same.
			require.NoError(t, db.Close())
			db = open(t)
			got, err = db.Traces().GetTrace(ctx, id)
			require.NoError(t, err)
			require.Equal(t, byStart(spans), got)
		})
	}
}

func TestTracesWriteIsIdempotent(t *testing.T) {
	for name, open := range dbOpeners(t) {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			tr := db.Traces()
			ctx := t.Context()
			const id = "11111111111111111111111111111111"
			spans := teamTrace(id, "", traceBase)
			require.NoError(t, tr.Write(ctx, spans))
			// A retried batch, a batch overlapping it, and a batch holding a
			// span twice: no error, nothing doubled, the first version kept.
			require.NoError(t, tr.Write(ctx, spans))
			changed := slices.Clone(spans[2:5])
			changed[0].Name = "renamed"
			require.NoError(t, tr.Write(ctx, changed))
			extra := telemetry.Span{TraceID: id, SpanID: "b000000000000001", ParentID: spans[0].SpanID, Name: "first", Kind: telemetry.KindTool,
				Start: traceBase.Add(3 * time.Second), End: traceBase.Add(4 * time.Second), Status: telemetry.StatusOK}
			dup := extra
			dup.Name = "second"
			require.NoError(t, tr.Write(ctx, []telemetry.Span{extra, dup}))
			// Spans without ids are dropped, not the batch.
			noID := extra
			noID.SpanID = ""
			require.NoError(t, tr.Write(ctx, []telemetry.Span{noID, {SpanID: "c000000000000001"}}))
			require.NoError(t, tr.Write(ctx, nil))

			got, err := tr.GetTrace(ctx, id)
			require.NoError(t, err)
			require.Equal(t, byStart(append(slices.Clone(spans), extra)), got)
			list, total, err := tr.ListTraces(ctx, telemetry.TraceQuery{})
			require.NoError(t, err)
			require.Equal(t, 1, total)
			require.Equal(t, len(spans)+1, list[0].TotalSpans)
			require.Equal(t, 1, list[0].ErrorCount)
			require.Equal(t, 1, countRows(t, db, id))
		})
	}
}

// TestTracesLargeAndUncleanTraces checks what small traces do not reach: a
// trace of more than 32 spans (its spans are told apart by a map) arriving
// with a span twice, again whole, and split, and attributes whose text needs
// cleaning (a NUL byte, invalid UTF-8) before PostgreSQL will store it.
func TestTracesLargeAndUncleanTraces(t *testing.T) {
	for name, open := range dbOpeners(t) {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			tr := db.Traces()
			ctx := t.Context()
			const id = "22222222222222222222222222222222"
			root := telemetry.Span{TraceID: id, SpanID: "a000000000000000", Name: "agent.run big", Kind: telemetry.KindRun,
				Start: traceBase, End: traceBase.Add(time.Minute), Status: telemetry.StatusOK,
				Attributes: map[string]string{telemetry.RootAttribute: "true", "note\x00": "ok", "bytes": "a\x00b\xffc"}}
			spans := []telemetry.Span{root}
			for i := range 39 {
				spans = append(spans, telemetry.Span{TraceID: id, SpanID: fmt.Sprintf("b%015d", i), ParentID: root.SpanID,
					Name: fmt.Sprint("tool.call ", i), Kind: telemetry.KindTool, Start: traceBase.Add(time.Duration(i) * time.Second),
					End: traceBase.Add(time.Duration(i)*time.Second + time.Millisecond), Status: telemetry.StatusOK, Attributes: map[string]string{}})
			}
			renamed := spans[7]
			renamed.Name = "renamed"
			require.NoError(t, tr.Write(ctx, append(slices.Clone(spans[:30]), renamed)))
			require.NoError(t, tr.Write(ctx, spans[:30]))
			require.NoError(t, tr.Write(ctx, spans[25:]))

			got, err := tr.GetTrace(ctx, id)
			require.NoError(t, err)
			want := slices.Clone(spans)
			want[0].Attributes = map[string]string{telemetry.RootAttribute: "true", "note": "ok", "bytes": "ab\uFFFDc"}
			require.Equal(t, byStart(want), got, "every span once, the first version kept, text cleaned")
			list, _, err := tr.ListTraces(ctx, telemetry.TraceQuery{})
			require.NoError(t, err)
			require.Equal(t, 40, list[0].TotalSpans)
			require.Equal(t, "agent.run big", list[0].Name)
			require.Equal(t, 1, countRows(t, db, id))
		})
	}
}

func TestTracesRoot(t *testing.T) {
	for name, open := range dbOpeners(t) {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			tr := db.Traces()
			ctx := t.Context()
			rootOf := func(traceID string) telemetry.TraceSummary {
				t.Helper()
				require.Equal(t, 1, countRows(t, db, traceID))
				list, _, err := tr.ListTraces(ctx, telemetry.TraceQuery{RunID: "run-" + traceID[:8]})
				require.NoError(t, err)
				require.Len(t, list, 1)
				return list[0]
			}

			// A run continuing a caller's traceparent: its root's parent is
			// the caller's span, which this store never sees. Without the
			// marker attribute it is still the root.
			remote := teamTrace("22222222222222222222222222222222", "00f067aa0ba902b7", traceBase)
			delete(remote[0].Attributes, telemetry.RootAttribute)
			require.NoError(t, tr.Write(ctx, remote))
			s := rootOf(remote[0].TraceID)
			require.Equal(t, "team.run research", s.Name)
			require.Equal(t, len(remote), s.TotalSpans)

			// Spans arriving before their root (a batch split by the
			// recorder): the earliest orphan stands in until the root comes.
			late := teamTrace("33333333333333333333333333333333", "", traceBase)
			delete(late[0].Attributes, telemetry.RootAttribute)
			require.NoError(t, tr.Write(ctx, late[3:]))
			require.Equal(t, "tool.call web_fetch", rootOf(late[0].TraceID).Name)
			require.NoError(t, tr.Write(ctx, late[1:3]))
			require.Equal(t, "member.run researcher", rootOf(late[0].TraceID).Name)
			require.NoError(t, tr.Write(ctx, late[:1]))
			s = rootOf(late[0].TraceID)
			require.Equal(t, "team.run research", s.Name)
			require.Equal(t, len(late), s.TotalSpans)
			got, err := tr.GetTrace(ctx, late[0].TraceID)
			require.NoError(t, err)
			require.Equal(t, byStart(late), got)

			// The caller's spans stored later in the same database (a troupe
			// team calling a troupe agent): the caller's root, which started
			// first, becomes the trace's root; the trace is listed once.
			const callerTrace = "44444444444444444444444444444444"
			callee := teamTrace(callerTrace, "c0000000000000c2", traceBase.Add(time.Second))
			for i := range callee {
				callee[i].SpanID = "d" + callee[i].SpanID[1:]
				if callee[i].ParentID != "c0000000000000c2" {
					callee[i].ParentID = "d" + callee[i].ParentID[1:]
				}
			}
			require.NoError(t, tr.Write(ctx, callee))
			require.Equal(t, "team.run research", rootOf(callerTrace).Name)
			callerRoot := telemetry.Span{TraceID: callerTrace, SpanID: "c0000000000000c1", Name: "agent.run caller", Kind: telemetry.KindRun,
				Start: traceBase, End: traceBase.Add(5 * time.Second), Status: telemetry.StatusOK, RunID: "run-44444444", AgentID: "caller",
				Attributes: map[string]string{telemetry.RootAttribute: "true", telemetry.InputAttribute: "ask the team"}}
			callerTool := telemetry.Span{TraceID: callerTrace, SpanID: "c0000000000000c2", ParentID: callerRoot.SpanID, Name: "tool.call research",
				Kind: telemetry.KindTool, Start: traceBase.Add(time.Second - 1), End: traceBase.Add(4 * time.Second), Status: telemetry.StatusOK,
				RunID: "run-44444444", AgentID: "caller"}
			require.NoError(t, tr.Write(ctx, []telemetry.Span{callerTool, callerRoot}))
			s = rootOf(callerTrace)
			require.Equal(t, "agent.run caller", s.Name)
			require.Equal(t, "caller", s.AgentID)
			require.Equal(t, "ask the team", s.Input)
			require.Equal(t, len(callee)+2, s.TotalSpans)
			list, total, err := tr.ListTraces(ctx, telemetry.TraceQuery{TeamID: "research"})
			require.NoError(t, err)
			require.Equal(t, []string{late[0].TraceID, remote[0].TraceID}, traceIDs(list), "the callee's root is no longer a root")
			require.Equal(t, 2, total)

			// The marker wins over a parentless span that started earlier.
			const markedTrace = "55555555555555555555555555555555"
			require.NoError(t, tr.Write(ctx, []telemetry.Span{
				{TraceID: markedTrace, SpanID: "e000000000000001", Name: "orphan", Start: traceBase, RunID: "run-55555555"},
				{TraceID: markedTrace, SpanID: "e000000000000002", ParentID: "ffffffffffffffff", Name: "marked", Start: traceBase.Add(time.Second),
					RunID: "run-55555555", Attributes: map[string]string{telemetry.RootAttribute: "true"}},
			}))
			require.Equal(t, "marked", rootOf(markedTrace).Name)
		})
	}
}

// TestTracesConcurrentHalves writes a caller's and a callee's spans of the
// same traces at the same time, as two servers sharing a database would:
// each trace still ends up with exactly one root, the caller's.
func TestTracesConcurrentHalves(t *testing.T) {
	for name, open := range dbOpeners(t) {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			tr := db.Traces()
			ctx := t.Context()
			const n = 40
			var callers, callees [n][]telemetry.Span
			for i := range n {
				id := fmt.Sprintf("%032x", 0xabc000+i)
				callers[i] = []telemetry.Span{
					{TraceID: id, SpanID: "c000000000000001", Name: "caller", Start: traceBase, End: traceBase.Add(time.Second), RunID: "caller"},
					{TraceID: id, SpanID: "c000000000000002", ParentID: "c000000000000001", Name: "call", Start: traceBase.Add(1), RunID: "caller"},
				}
				callees[i] = []telemetry.Span{
					{TraceID: id, SpanID: "d000000000000001", ParentID: "c000000000000002", Name: "callee", Start: traceBase.Add(2), RunID: "callee"},
				}
			}
			var wg sync.WaitGroup
			errs := make(chan error, 2*n)
			for i := range n {
				wg.Go(func() { errs <- tr.Write(ctx, callers[i]) })
				wg.Go(func() { errs <- tr.Write(ctx, callees[i]) })
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			list, total, err := tr.ListTraces(ctx, telemetry.TraceQuery{Limit: 100})
			require.NoError(t, err)
			require.Equal(t, n, total)
			for _, s := range list {
				require.Equal(t, "caller", s.Name)
				require.Equal(t, 3, s.TotalSpans)
			}
		})
	}
}

// filterTraces writes five traces for the filter tests; the third's member
// span has agent a1 while its root (a team's run) has none.
func filterTraces(t *testing.T, tr *store.Traces) {
	t.Helper()
	mk := func(id string, minute int, root telemetry.Span, children []telemetry.Span) []telemetry.Span {
		root.TraceID, root.SpanID, root.Name = id, "f000000000000001", "run "+id[:2]
		root.Start = traceBase.Add(time.Duration(minute) * time.Minute)
		root.End = root.Start.Add(time.Second)
		if root.Status == "" {
			root.Status = telemetry.StatusOK
		}
		root.Attributes = map[string]string{telemetry.InputAttribute: "input " + id[:2], telemetry.RootAttribute: "true"}
		out := []telemetry.Span{root}
		for i, c := range children {
			c.TraceID, c.SpanID, c.ParentID = id, fmt.Sprintf("f00000000000010%d", i), root.SpanID
			c.Start, c.End = root.Start.Add(time.Duration(i+1)*time.Millisecond), root.End
			c.RunID, c.SessionID, c.UserID = root.RunID, root.SessionID, root.UserID
			if c.AgentID == "" && c.TeamID == "" {
				c.AgentID, c.TeamID = root.AgentID, root.TeamID
			}
			if c.Status == "" {
				c.Status = telemetry.StatusOK
			}
			out = append(out, c)
		}
		return out
	}
	var all []telemetry.Span
	all = append(all, mk("t1000000000000000000000000000000", 1, telemetry.Span{RunID: "r1", SessionID: "s1", UserID: "u1", AgentID: "a1"},
		[]telemetry.Span{{}})...)
	all = append(all, mk("t2000000000000000000000000000000", 2, telemetry.Span{RunID: "r2", SessionID: "s1", UserID: "u1", AgentID: "a2",
		Status: telemetry.StatusError, StatusMessage: "ModelError: boom"}, []telemetry.Span{{Status: telemetry.StatusError}})...)
	all = append(all, mk("t3000000000000000000000000000000", 3, telemetry.Span{RunID: "r3", SessionID: "s2", UserID: "u2", TeamID: "t1"},
		[]telemetry.Span{{AgentID: "a1", TeamID: "t1"}, {}})...)
	all = append(all, mk("t4000000000000000000000000000000", 4, telemetry.Span{RunID: "r4", SessionID: "s3", UserID: "u2", AgentID: "a1"},
		[]telemetry.Span{{Status: telemetry.StatusError}, {}, {}})...)
	t5 := mk("t5000000000000000000000000000000", 5, telemetry.Span{RunID: "r5", SessionID: "s4", UserID: "u3", AgentID: "a3"}, nil)
	t5[0].ParentID = "b7ad6b7169203331" // a remote caller
	delete(t5[0].Attributes, telemetry.RootAttribute)
	all = append(all, t5...)
	require.NoError(t, tr.Write(t.Context(), all))
}

func TestTracesListFilters(t *testing.T) {
	for name, open := range dbOpeners(t) {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			tr := db.Traces()
			filterTraces(t, tr)
			at := func(m int) time.Time { return traceBase.Add(time.Duration(m) * time.Minute) }
			// Times in another zone mean the same instants.
			paris := time.FixedZone("CET", 3600)
			for _, tc := range []struct {
				name string
				q    telemetry.TraceQuery
				want []string
			}{
				{"none", telemetry.TraceQuery{}, []string{"t5", "t4", "t3", "t2", "t1"}},
				{"run", telemetry.TraceQuery{RunID: "r2"}, []string{"t2"}},
				{"session", telemetry.TraceQuery{SessionID: "s1"}, []string{"t2", "t1"}},
				{"user", telemetry.TraceQuery{UserID: "u2"}, []string{"t4", "t3"}},
				{"agent on the root only", telemetry.TraceQuery{AgentID: "a1"}, []string{"t4", "t1"}},
				{"remote parent", telemetry.TraceQuery{AgentID: "a3"}, []string{"t5"}},
				{"team", telemetry.TraceQuery{TeamID: "t1"}, []string{"t3"}},
				{"error", telemetry.TraceQuery{Status: telemetry.StatusError}, []string{"t2"}},
				{"ok", telemetry.TraceQuery{Status: telemetry.StatusOK}, []string{"t5", "t4", "t3", "t1"}},
				{"from", telemetry.TraceQuery{StartTime: at(2)}, []string{"t5", "t4", "t3", "t2"}},
				{"from, a nanosecond late", telemetry.TraceQuery{StartTime: at(2).Add(1)}, []string{"t5", "t4", "t3"}},
				{"until", telemetry.TraceQuery{EndTime: at(2).In(paris)}, []string{"t2", "t1"}},
				{"between", telemetry.TraceQuery{StartTime: at(2).In(paris), EndTime: at(4)}, []string{"t4", "t3", "t2"}},
				{"agent and time", telemetry.TraceQuery{AgentID: "a1", StartTime: at(2)}, []string{"t4"}},
				{"user and status", telemetry.TraceQuery{UserID: "u1", Status: telemetry.StatusError}, []string{"t2"}},
				{"session and user", telemetry.TraceQuery{SessionID: "s1", UserID: "u2"}, []string{}},
				{"unknown agent", telemetry.TraceQuery{AgentID: "nobody"}, []string{}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					list, total, err := tr.ListTraces(t.Context(), tc.q)
					require.NoError(t, err)
					var got []string
					for _, id := range traceIDs(list) {
						got = append(got, id[:2])
					}
					require.Equal(t, tc.want, append([]string{}, got...))
					require.Equal(t, len(tc.want), total)
				})
			}

			list, _, err := tr.ListTraces(t.Context(), telemetry.TraceQuery{UserID: "u1"})
			require.NoError(t, err)
			require.Equal(t, telemetry.TraceSummary{
				TraceID: "t2000000000000000000000000000000", Name: "run t2", Status: telemetry.StatusError, Duration: time.Second,
				StartTime: at(2), EndTime: at(2).Add(time.Second), TotalSpans: 2, ErrorCount: 2, Input: "input t2",
				RunID: "r2", SessionID: "s1", UserID: "u1", AgentID: "a2",
			}, list[0])
			list, _, err = tr.ListTraces(t.Context(), telemetry.TraceQuery{RunID: "r4"})
			require.NoError(t, err)
			require.Equal(t, 4, list[0].TotalSpans)
			require.Equal(t, 1, list[0].ErrorCount)
			require.Equal(t, telemetry.StatusOK, list[0].Status)
		})
	}
}

func TestTracesListPaging(t *testing.T) {
	for name, open := range dbOpeners(t) {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			tr := db.Traces()
			ctx := t.Context()
			var spans []telemetry.Span
			for i := range 25 {
				// Pairs of traces start at the same time: the larger trace id
				// comes first.
				start := traceBase.Add(time.Duration(i/2) * time.Second)
				spans = append(spans, telemetry.Span{TraceID: fmt.Sprintf("%032d", i), SpanID: "0000000000000001", Name: "run",
					Start: start, End: start.Add(time.Millisecond), Status: telemetry.StatusOK, AgentID: "a"})
			}
			require.NoError(t, tr.Write(ctx, spans))
			var want []string
			for i := 24; i >= 0; i-- {
				want = append(want, fmt.Sprintf("%032d", i))
			}

			list, total, err := tr.ListTraces(ctx, telemetry.TraceQuery{})
			require.NoError(t, err)
			require.Equal(t, 25, total)
			require.Equal(t, want[:20], traceIDs(list), "20 by default, newest first")
			list, total, err = tr.ListTraces(ctx, telemetry.TraceQuery{Page: 2})
			require.NoError(t, err)
			require.Equal(t, 25, total)
			require.Equal(t, want[20:], traceIDs(list))
			for _, page := range []int{3, 1 << 40, int(^uint(0) >> 1)} {
				list, total, err = tr.ListTraces(ctx, telemetry.TraceQuery{Page: page, AgentID: "a"})
				require.NoError(t, err)
				require.Equal(t, 25, total, "page %d", page)
				require.Empty(t, list)
			}
			var pages []string
			for page := 1; page <= 4; page++ {
				list, total, err := tr.ListTraces(ctx, telemetry.TraceQuery{Limit: 7, Page: page})
				require.NoError(t, err)
				require.Equal(t, 25, total)
				require.Len(t, list, min(7, 25-7*(page-1)))
				pages = append(pages, traceIDs(list)...)
			}
			require.Equal(t, want, pages)
			list, total, err = tr.ListTraces(ctx, telemetry.TraceQuery{Limit: -1, Page: -3})
			require.NoError(t, err)
			require.Equal(t, 25, total)
			require.Equal(t, want[:20], traceIDs(list))
		})
	}
}

// TestTracesMany writes many traces of random shapes, with the recorder's
// batches splitting them and delivering children before their roots.
func TestTracesMany(t *testing.T) {
	for name, open := range dbOpeners(t) {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			tr := db.Traces()
			ctx := t.Context()
			rng := rand.New(rand.NewPCG(1, 2))
			const traces = 150
			type expect struct {
				spans  []telemetry.Span
				errors int
			}
			want := map[string]*expect{}
			var all []telemetry.Span
			for i := range traces {
				id := fmt.Sprintf("%032x", rng.Uint64())
				start := traceBase.Add(time.Duration(rng.IntN(1e6)) * time.Millisecond)
				root := telemetry.Span{TraceID: id, SpanID: fmt.Sprintf("%016x", rng.Uint64()), Name: "run " + id, Kind: telemetry.KindRun,
					Start: start, End: start.Add(time.Duration(rng.IntN(1e9))), Status: telemetry.StatusOK,
					RunID: "run-" + id, AgentID: fmt.Sprint("agent", i%7), UserID: fmt.Sprint("user", i%5),
					Attributes: map[string]string{telemetry.InputAttribute: "question " + id}}
				switch i % 3 {
				case 0:
					root.Attributes[telemetry.RootAttribute] = "true"
				case 1:
					root.ParentID = fmt.Sprintf("%016x", rng.Uint64()) // remote caller
				}
				e := &expect{spans: []telemetry.Span{root}}
				parents := []string{root.SpanID}
				for range rng.IntN(12) {
					c := root
					c.SpanID, c.ParentID = fmt.Sprintf("%016x", rng.Uint64()), parents[rng.IntN(len(parents))]
					c.Name, c.Kind, c.Attributes = "child", telemetry.KindTool, map[string]string{"n": fmt.Sprint(rng.IntN(100))}
					c.Start = start.Add(time.Duration(1 + rng.IntN(1e6)))
					if rng.IntN(4) == 0 {
						c.Status = telemetry.StatusError
						e.errors++
					}
					parents = append(parents, c.SpanID)
					e.spans = append(e.spans, c)
				}
				want[id] = e
				all = append(all, e.spans...)
			}
			rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
			for start := 0; start < len(all); start += 97 {
				require.NoError(t, tr.Write(ctx, all[start:min(start+97, len(all))]))
			}

			list, total, err := tr.ListTraces(ctx, telemetry.TraceQuery{Limit: 1000})
			require.NoError(t, err)
			require.Equal(t, traces, total)
			require.Len(t, list, store.MaxLimit)
			var seen []telemetry.TraceSummary
			for page := 1; ; page++ {
				list, total, err := tr.ListTraces(ctx, telemetry.TraceQuery{Limit: 40, Page: page})
				require.NoError(t, err)
				require.Equal(t, traces, total)
				if len(list) == 0 {
					break
				}
				seen = append(seen, list...)
			}
			require.Len(t, seen, traces)
			require.True(t, slices.IsSortedFunc(seen, func(a, b telemetry.TraceSummary) int {
				return cmp.Or(b.StartTime.Compare(a.StartTime), cmp.Compare(b.TraceID, a.TraceID))
			}))
			for _, s := range seen {
				e := want[s.TraceID]
				require.NotNil(t, e)
				root := e.spans[0]
				require.Equal(t, root.Name, s.Name)
				require.Equal(t, root.Start, s.StartTime)
				require.Equal(t, root.Duration(), s.Duration)
				require.Equal(t, "question "+s.TraceID, s.Input)
				require.Equal(t, len(e.spans), s.TotalSpans)
				require.Equal(t, e.errors, s.ErrorCount)
				got, err := tr.GetTrace(ctx, s.TraceID)
				require.NoError(t, err)
				require.Equal(t, byStart(e.spans), got)
			}
			var rows int
			require.NoError(t, store.ReadDB(db).QueryRowContext(ctx, `SELECT COUNT(*) FROM traces`).Scan(&rows))
			require.Equal(t, traces, rows)

			list, total, err = tr.ListTraces(ctx, telemetry.TraceQuery{AgentID: "agent3", UserID: "user1"})
			require.NoError(t, err)
			n := 0
			for id, e := range want {
				if e.spans[0].AgentID == "agent3" && e.spans[0].UserID == "user1" {
					n++
					require.Contains(t, traceIDs(list), id)
				}
			}
			require.Equal(t, n, total)
		})
	}
}

// BenchmarkListTraces lists traces among 100,000 spans in 10,000 traces.
func BenchmarkListTraces(b *testing.B) {
	benchStores(b, func(b *testing.B, db *store.DB) {
		tr := db.Traces()
		ctx := b.Context()
		rng := rand.New(rand.NewPCG(3, 4))
		const traces, perTrace = 10_000, 10
		batch := make([]telemetry.Span, 0, 1024)
		for i := range traces {
			id := fmt.Sprintf("%032x", rng.Uint64())
			start := traceBase.Add(time.Duration(i) * time.Second)
			root := telemetry.Span{TraceID: id, SpanID: fmt.Sprintf("%016x", rng.Uint64()), Name: "agent.run assistant", Kind: telemetry.KindRun,
				Start: start, End: start.Add(3 * time.Second), Status: telemetry.StatusOK,
				RunID: "run-" + id, SessionID: fmt.Sprint("session", i/5), UserID: fmt.Sprint("user", i%100),
				AgentID: fmt.Sprint("agent", i%20), InputTokens: 1000, OutputTokens: 200,
				Attributes: map[string]string{telemetry.InputAttribute: "What is the capital of France? Please answer briefly.",
					telemetry.RootAttribute: "true", "model": "gpt-x", "provider": "openai"}}
			if i%20 == 0 {
				root.Status = telemetry.StatusError
			}
			batch = append(batch, root)
			for j := 1; j < perTrace; j++ {
				c := root
				c.SpanID, c.ParentID, c.Name, c.Kind = fmt.Sprintf("%016x", rng.Uint64()), root.SpanID, "tool.call search", telemetry.KindTool
				c.Start = start.Add(time.Duration(j) * 100 * time.Millisecond)
				c.Status = telemetry.StatusOK
				c.Attributes = map[string]string{"tool.name": "search", "tool.arguments": `{"q":"capital of france"}`,
					"tool.result": "Paris is the capital and most populous city of France."}
				batch = append(batch, c)
			}
			if len(batch) >= 1000 || i == traces-1 {
				if err := tr.Write(ctx, batch); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		if db.Dialect() == store.DialectPostgres {
			// What autovacuum does to a table that grew: without statistics
			// the planner misjudges the filters, and even JIT
			// compiles the list query.
			if _, err := store.WriteDB(db).ExecContext(ctx, `VACUUM ANALYZE traces`); err != nil {
				b.Fatal(err)
			}
		}
		for _, bc := range []struct {
			name string
			q    telemetry.TraceQuery
		}{
			{"newest", telemetry.TraceQuery{}},
			{"page50", telemetry.TraceQuery{Page: 50}},
			{"agent", telemetry.TraceQuery{AgentID: "agent7"}},
			{"user+errors", telemetry.TraceQuery{UserID: "user40", Status: telemetry.StatusError}},
			{"errors", telemetry.TraceQuery{Status: telemetry.StatusError}},
			{"session", telemetry.TraceQuery{SessionID: "session123"}},
			{"hour", telemetry.TraceQuery{StartTime: traceBase.Add(time.Hour), EndTime: traceBase.Add(2 * time.Hour), Limit: 100}},
		} {
			b.Run(bc.name, func(b *testing.B) {
				for b.Loop() {
					list, _, err := tr.ListTraces(ctx, bc.q)
					if err != nil || len(list) == 0 {
						b.Fatal(err, len(list))
					}
				}
			})
		}
	})
}

// BenchmarkTracesWrite is the SQL sink's cost per run: batches of 1,024 spans
// made of run-shaped traces (a root, two model requests, two tool calls and
// the store write), as the recorder flushes them.
func BenchmarkTracesWrite(b *testing.B) {
	benchStores(b, func(b *testing.B, db *store.DB) {
		tr := db.Traces()
		ctx := b.Context()
		rng := rand.New(rand.NewPCG(5, 6))
		const perTrace, perBatch = 6, 1024 / 6
		batch := make([]telemetry.Span, 0, perTrace*perBatch)
		start := traceBase
		b.ResetTimer()
		for b.Loop() {
			batch = batch[:0]
			for range perBatch {
				id := telemetry.NewTraceID() // time-ordered, as in production
				start = start.Add(time.Millisecond)
				root := telemetry.Span{TraceID: id, SpanID: fmt.Sprintf("%016x", rng.Uint64()), Name: "agent.run assistant", Kind: telemetry.KindRun,
					Start: start, End: start.Add(300 * time.Millisecond), Status: telemetry.StatusOK,
					RunID: "run-" + id, SessionID: "session-" + id, UserID: "user1", AgentID: "assistant", InputTokens: 100, OutputTokens: 20,
					Attributes: map[string]string{telemetry.InputAttribute: "What is 6*7?", telemetry.RootAttribute: "true", "model": "gpt-x", "provider": "openai"}}
				batch = append(batch, root)
				for j := 1; j < perTrace; j++ {
					c := root
					c.SpanID, c.ParentID, c.Name, c.Kind = fmt.Sprintf("%016x", rng.Uint64()), root.SpanID, "tool.call calculator", telemetry.KindTool
					c.Start = start.Add(time.Duration(j) * 10 * time.Millisecond)
					c.End = c.Start.Add(5 * time.Millisecond)
					c.Attributes = map[string]string{"tool.name": "calculator", "tool.arguments": `{"expression":"6*7"}`, "tool.result": "42"}
					batch = append(batch, c)
				}
			}
			if err := tr.Write(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		runs := float64(b.N * perBatch)
		b.ReportMetric(b.Elapsed().Seconds()*1e6/runs, "µs/run")
		b.ReportMetric(runs*perTrace/b.Elapsed().Seconds(), "spans/s")
	})
}

// TestTracesMigrationFromSpans checks migration 0007, which turned the rows
// of the former spans table (one per span, the root flagged) into one row
// per trace: traces written before it read back as they were written.
func TestTracesMigrationFromSpans(t *testing.T) {
	dsns := map[string]string{"sqlite": filepath.Join(t.TempDir(), "old.db")}
	if dsn := os.Getenv(postgresEnv); dsn != "" {
		dsns["postgres"] = newSchema(t, dsn)
	}
	for name, dsn := range dsns {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			old, err := store.OpenAtMigration(ctx, dsn, 6)
			require.NoError(t, err)
			team := teamTrace("66666666666666666666666666666666", "", traceBase)
			agent := teamTrace("77777777777777777777777777777777", "00f067aa0ba902b7", traceBase.Add(time.Minute))
			delete(agent[0].Attributes, telemetry.RootAttribute) // rooted by the missing parent
			agent[0].Attributes[telemetry.InputAttribute] = "it's «quoted» \"input\""
			for _, trace := range [][]telemetry.Span{team, agent} {
				for i, s := range trace {
					attrs := "null"
					if s.Attributes != nil {
						b, err := json.Marshal(s.Attributes)
						require.NoError(t, err)
						attrs = string(b)
					}
					isRoot := 0
					if i == 0 {
						isRoot = 1
					}
					var start any = s.Start.UTC().Format("2006-01-02 15:04:05.999999")
					if name == "postgres" {
						start = s.Start
					}
					_, err := store.WriteDB(old).ExecContext(ctx, `INSERT INTO spans (trace_id, span_id, parent_span_id, name, kind,
						start_ns, start_time, end_ns, duration_ns, status, status_message, run_id, session_id, user_id, agent_id, team_id,
						input_tokens, output_tokens, attributes, marked_root, is_root)
						VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)`,
						s.TraceID, s.SpanID, s.ParentID, s.Name, s.Kind, s.Start.UnixNano(), start, s.End.UnixNano(), int64(s.Duration()),
						s.Status, s.StatusMessage, s.RunID, s.SessionID, s.UserID, s.AgentID, s.TeamID, s.InputTokens, s.OutputTokens,
						attrs, isRoot, isRoot)
					require.NoError(t, err)
				}
			}
			require.NoError(t, old.Close())

			db, err := store.Open(ctx, dsn, store.Options{Logger: quiet})
			require.NoError(t, err)
			t.Cleanup(func() { _ = db.Close() })
			tr := db.Traces()
			for _, trace := range [][]telemetry.Span{team, agent} {
				got, err := tr.GetTrace(ctx, trace[0].TraceID)
				require.NoError(t, err)
				require.Equal(t, byStart(trace), got)
			}
			list, total, err := tr.ListTraces(ctx, telemetry.TraceQuery{})
			require.NoError(t, err)
			require.Equal(t, 2, total)
			root := agent[0]
			require.Equal(t, telemetry.TraceSummary{TraceID: root.TraceID, Name: root.Name, Status: root.Status, Duration: root.Duration(),
				StartTime: root.Start, EndTime: root.End, TotalSpans: len(agent), ErrorCount: 1, Input: "it's «quoted» \"input\"",
				RunID: root.RunID, SessionID: root.SessionID, UserID: root.UserID, TeamID: root.TeamID}, list[0])
			require.Equal(t, team[0].TraceID, list[1].TraceID)
			// The converted rows take new spans like any other.
			extra := telemetry.Span{TraceID: team[0].TraceID, SpanID: "b000000000000009", ParentID: team[0].SpanID, Name: "late",
				Start: traceBase.Add(3 * time.Second), End: traceBase.Add(4 * time.Second), Status: telemetry.StatusError}
			require.NoError(t, tr.Write(ctx, []telemetry.Span{extra}))
			list, _, err = tr.ListTraces(ctx, telemetry.TraceQuery{TeamID: "research", Status: telemetry.StatusOK})
			require.NoError(t, err)
			require.Len(t, list, 2)
			require.Equal(t, len(team)+1, list[1].TotalSpans)
			require.Equal(t, 2, list[1].ErrorCount)
		})
	}
}
