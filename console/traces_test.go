package console_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/telemetry"
	"github.com/troupehq/troupe/telemetry/clickhouse"
)

// pgSchema gives a test its own PostgreSQL schema, dropped at cleanup.
func pgSchema(t testing.TB, dsn string) string {
	t.Helper()
	admin, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	schema := "troupe_console_" + strings.ToLower(rand.Text()[:12])
	_, err = admin.Exec(`CREATE SCHEMA "` + schema + `"`)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = admin.Exec(`DROP SCHEMA "` + schema + `" CASCADE`)
		_ = admin.Close()
	})
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

type traceNode struct {
	SpanID       string            `json:"span_id"`
	ParentID     string            `json:"parent_span_id"`
	Name         string            `json:"name"`
	Kind         string            `json:"kind"`
	Status       string            `json:"status"`
	Start        time.Time         `json:"start_time"`
	End          time.Time         `json:"end_time"`
	InputTokens  int               `json:"input_tokens"`
	OutputTokens int               `json:"output_tokens"`
	Attributes   map[string]string `json:"attributes"`
	Spans        []traceNode       `json:"spans"`
}

// TestRunTrace: a run with two tool calls and a knowledge search produces one
// trace with the right tree, nested durations and token counts, read back
// through GET /traces/{id} from every configured sink.
func TestRunTrace(t *testing.T) {
	t.Parallel()
	setups := map[string]func(t *testing.T) []serverOption{"sqlite": func(*testing.T) []serverOption { return nil }}
	if dsn := os.Getenv("TROUPE_TEST_POSTGRES_DSN"); dsn != "" {
		setups["postgres"] = func(t *testing.T) []serverOption { return []serverOption{withDatabase(pgSchema(t, dsn))} }
	} else {
		t.Log("TROUPE_TEST_POSTGRES_DSN not set: the PostgreSQL variant is skipped")
	}
	if addr := os.Getenv("TROUPE_TEST_CLICKHOUSE_ADDR"); addr != "" {
		setups["clickhouse"] = func(t *testing.T) []serverOption {
			ch, err := clickhouse.Open(t.Context(), clickhouse.Options{Addr: addr, Database: clickHouseDatabase(t, addr, "troupe_console_")})
			require.NoError(t, err)
			t.Cleanup(func() { _ = ch.Close() })
			return []serverOption{withTraces(ch)}
		}
	} else {
		t.Log("TROUPE_TEST_CLICKHOUSE_ADDR not set: the ClickHouse variant is skipped")
	}
	for name, setup := range setups {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, setup(t)...)
			status, out := upload(t, ts, "", nil, filepath.Join("..", "engine", "knowledge", "reader", "testdata", "notes.txt"))
			require.Equal(t, http.StatusAccepted, status, out)
			waitCompleted(t, ts, out["id"].(string))

			msg := "use your tools\n/call calculator {\"expression\":\"6*7\"}\n/call current_time {}\n/call knowledge_search {\"query\":\"When does the feature ship?\"}"
			body, _ := json.Marshal(map[string]any{"message": msg, "stream": false, "user_id": "u1"})
			req, _ := http.NewRequest(http.MethodPost, ts.url+"/agents/helpdesk/runs", strings.NewReader(string(body)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			traceID := resp.Header.Get("X-Trace-Id")
			require.Len(t, traceID, 32)
			require.NotEqual(t, "4bf92f3577b34da6a3ce929d0e0e4736", traceID, "the run starts its own trace, linked to the caller's")
			require.Contains(t, resp.Header.Get("Traceparent"), traceID)

			var got struct {
				Trace map[string]any `json:"trace"`
				Tree  []traceNode    `json:"tree"`
			}
			require.Eventually(t, func() bool {
				status, body, _ := ts.do(http.MethodGet, "/traces/"+traceID, "", "", "")
				if status != http.StatusOK {
					return false
				}
				require.NoError(t, json.Unmarshal([]byte(body), &got))
				return true
			}, 10*time.Second, 20*time.Millisecond)
			require.Len(t, got.Tree, 1)
			root := got.Tree[0]
			require.Equal(t, "agent.run helpdesk", root.Name)
			require.Empty(t, root.ParentID)
			require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", root.Attributes[telemetry.LinkTraceIDAttribute])
			require.Equal(t, "00f067aa0ba902b7", root.Attributes[telemetry.LinkSpanIDAttribute])
			require.Equal(t, "OK", root.Status)
			kinds := map[string]int{}
			names := map[string]bool{}
			modelIn, modelOut := 0, 0
			for _, c := range root.Spans {
				kinds[c.Kind]++
				names[c.Name] = true
				require.False(t, c.Start.Before(root.Start), "%s starts within the run", c.Name)
				require.False(t, c.End.After(root.End), "%s ends within the run", c.Name)
				require.False(t, c.End.Before(c.Start), c.Name)
				if c.Kind == "model" {
					modelIn += c.InputTokens
					modelOut += c.OutputTokens
				}
			}
			require.Equal(t, map[string]int{"model": 2, "tool": 2, "knowledge": 1, "store": 1}, kinds)
			require.True(t, names["tool.call calculator"] && names["tool.call current_time"] && names["knowledge.search"] && names["store.finish_run"], names)
			require.Equal(t, root.InputTokens, modelIn, "the run's tokens are the sum of its model requests'")
			require.Equal(t, root.OutputTokens, modelOut)
			require.Greater(t, modelIn, 0)
			require.EqualValues(t, 7, got.Trace["total_spans"])
			require.Contains(t, got.Trace["input"], "use your tools")

			var list struct {
				Data []map[string]any `json:"data"`
				Meta map[string]any   `json:"meta"`
			}
			ts.json(http.MethodGet, "/traces?agent_id=helpdesk&status=OK&user_id=u1", "", "", http.StatusOK, &list)
			require.NotEmpty(t, list.Data)
			require.Equal(t, traceID, list.Data[0]["trace_id"])
			for _, k := range []string{"trace_id", "name", "status", "duration", "start_time", "end_time", "total_spans", "error_count", "input", "run_id", "session_id", "user_id", "agent_id", "team_id"} {
				require.Contains(t, list.Data[0], k)
			}
			ts.json(http.MethodGet, "/traces?agent_id=nobody", "", "", http.StatusOK, &list)
			require.Empty(t, list.Data)
		})
	}
}

func TestPrometheusAndDailyMetrics(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withKeys(keys))
	var runs [2]struct {
		SessionID string `json:"session_id"`
	}
	ts.json(http.MethodPost, "/agents/calc/runs", aliceKey, `{"message":"calc: 1+1","stream":false}`, http.StatusOK, &runs[0])
	ts.json(http.MethodPost, "/agents/writer/runs", aliceKey, `{"message":"hello","stream":false}`, http.StatusOK, &runs[1])
	// A knowledge document, for the ingestion gauge.
	status, doc := upload(t, ts, adminKey, nil, filepath.Join("..", "engine", "knowledge", "reader", "testdata", "notes.txt"))
	require.Equal(t, http.StatusAccepted, status, doc)
	require.Eventually(t, func() bool {
		var st map[string]any
		ts.json(http.MethodGet, "/knowledge/content/"+doc["id"].(string)+"/status", adminKey, "", http.StatusOK, &st)
		return st["status"] == "completed"
	}, 15*time.Second, 10*time.Millisecond)
	// An open console event stream counts as an active stream.
	req, err := http.NewRequest(http.MethodGet, ts.url+"/ui/events", nil)
	require.NoError(t, err)
	req.AddCookie(&http.Cookie{Name: "troupe_key", Value: adminKey})
	events, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer events.Body.Close()
	first, err := bufio.NewReader(events.Body).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "event: ready\n", first)

	ts.json(http.MethodGet, "/metrics/prometheus", aliceKey, "", http.StatusForbidden, nil)
	status, body, _ := ts.do(http.MethodGet, "/metrics/prometheus", adminKey, "", "")
	require.Equal(t, http.StatusOK, status)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	require.NoError(t, err)
	for _, name := range []string{"troupe_runs_total", "troupe_run_duration_seconds", "troupe_model_request_duration_seconds", "troupe_model_tokens_total",
		"troupe_tool_call_duration_seconds", "troupe_active_streams", "troupe_config_last_reload_successful", "troupe_trace_span_queue_depth",
		"troupe_config_generation", "troupe_config_last_reload_success_timestamp_seconds", "troupe_config_reload_duration_seconds",
		"troupe_trace_spans_dropped_total", "troupe_knowledge_documents"} {
		_, ok := families[name]
		require.True(t, ok, "missing %s", name)
	}
	// value is the value of the series of name with exactly these labels.
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		for _, m := range families[name].GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			if maps.Equal(got, labels) {
				switch {
				case m.GetCounter() != nil:
					return m.GetCounter().GetValue()
				case m.GetGauge() != nil:
					return m.GetGauge().GetValue()
				}
			}
		}
		t.Fatalf("no series %s%v", name, labels)
		return 0
	}
	require.Equal(t, 1.0, value("troupe_runs_total", map[string]string{"kind": "agent", "target": "calc", "status": "completed"}))
	require.Equal(t, 1.0, value("troupe_knowledge_documents", map[string]string{"state": "completed"}))
	require.Equal(t, 1.0, value("troupe_active_streams", map[string]string{}))
	// Label sets stay bounded: no user, session or run ids.
	for name, f := range families {
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				require.NotContains(t, []string{"user_id", "session_id", "run_id"}, lp.GetName(), name)
				require.NotContains(t, []string{runs[0].SessionID, runs[1].SessionID}, lp.GetValue(), name)
			}
		}
	}
	require.NotContains(t, body, "alice", "no user ids in labels")

	var daily struct {
		Metrics []map[string]any `json:"metrics"`
	}
	ts.json(http.MethodGet, "/metrics", adminKey, "", http.StatusOK, &daily)
	require.Len(t, daily.Metrics, 1)
	require.Equal(t, 2.0, daily.Metrics[0]["agent_runs_count"], fmt.Sprint(daily.Metrics[0]))
	require.Equal(t, 1.0, daily.Metrics[0]["users_count"])
}

// downTraces is a trace store that cannot be reached, as clickhouse.Lazy is
// while its server is down.
type downTraces struct{}

func (downTraces) Write(context.Context, []telemetry.Span) error {
	return fmt.Errorf("dial: connection refused: %w", telemetry.ErrUnavailable)
}

func (downTraces) ListTraces(context.Context, telemetry.TraceQuery) ([]telemetry.TraceSummary, int, error) {
	return nil, 0, fmt.Errorf("dial: connection refused: %w", telemetry.ErrUnavailable)
}

func (downTraces) GetTrace(context.Context, string) ([]telemetry.Span, error) {
	return nil, fmt.Errorf("dial: connection refused: %w", telemetry.ErrUnavailable)
}

// TestTracesUnavailable: runs go on while the trace store is down; the trace
// API and pages say so with 503 rather than a generic error.
func TestTracesUnavailable(t *testing.T) {
	ts := startServer(t, withTraces(downTraces{}))
	ts.json("POST", "/agents/helpdesk/runs", "", `{"message": "hello", "stream": false}`, 200, nil)
	status, body, _ := ts.do("GET", "/traces", "", "", "")
	require.Equal(t, http.StatusServiceUnavailable, status, body)
	require.Contains(t, body, "cannot be reached")
	status, _, _ = ts.do("GET", "/traces/0123456789abcdef0123456789abcdef", "", "", "")
	require.Equal(t, http.StatusServiceUnavailable, status)
	resp, page := ts.page("GET", "/ui/traces", "", nil, "Accept", "text/html")
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Contains(t, page, "Trace store unavailable")
}

// TestTraceparentCannotJoinAnotherUsersTrace: a caller who sends another
// user's trace id in traceparent gets a trace of its own (linked to the one
// it named), cannot read the other user's trace, and adds no span to it.
// Traces stored by older versions, where such a run did join, stay closed
// to the joiner and show their owner none of the joiner's spans.
func TestTraceparentCannotJoinAnotherUsersTrace(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withKeys(keys))
	run := func(key, path, body, traceparent string) (traceID, runID string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.url+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		if traceparent != "" {
			req.Header.Set("Traceparent", traceparent)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		return resp.Header.Get("X-Trace-Id"), resp.Header.Get("X-Run-Id")
	}
	// stored waits for a trace to be written and returns its spans as its
	// owner sees them.
	stored := func(key, traceID string) []traceNode {
		t.Helper()
		var got struct {
			Tree []traceNode `json:"tree"`
		}
		require.Eventually(t, func() bool {
			status, body, _ := ts.do(http.MethodGet, "/traces/"+traceID, key, "", "")
			return status == http.StatusOK && json.Unmarshal([]byte(body), &got) == nil
		}, 10*time.Second, 20*time.Millisecond)
		var flat []traceNode
		var walk func([]traceNode)
		walk = func(ns []traceNode) {
			for _, n := range ns {
				flat = append(flat, n)
				walk(n.Spans)
			}
		}
		walk(got.Tree)
		return flat
	}

	aliceTrace, _ := run(aliceKey, "/agents/helpdesk/runs", `{"message": "alice's secret", "stream": false}`, "")
	require.Len(t, aliceTrace, 32)
	before := stored(aliceKey, aliceTrace)

	steal := "00-" + aliceTrace + "-00f067aa0ba902b7-01"
	bobTrace, bobRun := run(bobKey, "/agents/helpdesk/runs", `{"message": "bob joins", "stream": false}`, steal)
	require.NotEqual(t, aliceTrace, bobTrace, "bob's run starts its own trace")
	bobChat, _ := run(bobKey, "/v1/chat/completions", `{"model": "helpdesk", "messages": [{"role": "user", "content": "bob joins again"}]}`, steal)
	require.NotEqual(t, aliceTrace, bobChat)
	bobSpans := stored(bobKey, bobTrace)
	require.Equal(t, aliceTrace, bobSpans[0].Attributes[telemetry.LinkTraceIDAttribute], "bob's trace links to the one he named")
	stored(bobKey, bobChat)

	status, body, _ := ts.do(http.MethodGet, "/traces/"+aliceTrace, bobKey, "", "")
	require.Equal(t, http.StatusNotFound, status, body)
	_, body, _ = ts.do(http.MethodGet, "/traces", bobKey, "", "")
	require.NotContains(t, body, aliceTrace)
	resp, _ := ts.page(http.MethodGet, "/ui/traces/"+aliceTrace, bobKey, nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	after := stored(adminKey, aliceTrace)
	require.Len(t, after, len(before), "alice's trace holds no span of bob's runs")
	for _, sp := range after {
		require.NotContains(t, sp.Name, "bob")
		require.Equal(t, before[0].SpanID, after[0].SpanID)
	}

	// A trace an older version let bob join: alice's run is its root, bob's
	// run hangs under it.
	legacy := telemetry.NewTraceID()
	t0 := time.Now().Add(-time.Minute)
	require.NoError(t, ts.traces.Write(t.Context(), []telemetry.Span{
		{TraceID: legacy, SpanID: "1111111111111111", Name: "agent.run helpdesk", Kind: telemetry.KindRun, Start: t0, End: t0.Add(time.Second),
			Status: telemetry.StatusOK, UserID: "alice", RunID: "run-alice", Attributes: map[string]string{telemetry.RootAttribute: "true"}},
		{TraceID: legacy, SpanID: "2222222222222222", ParentID: "1111111111111111", Name: "agent.run helpdesk", Kind: telemetry.KindRun,
			Start: t0.Add(time.Millisecond), End: t0.Add(2 * time.Millisecond), Status: telemetry.StatusOK, UserID: "bob", RunID: bobRun,
			Attributes: map[string]string{telemetry.RootAttribute: "true"}},
	}))
	status, body, _ = ts.do(http.MethodGet, "/traces/"+legacy, bobKey, "", "")
	require.Equal(t, http.StatusNotFound, status, "a span in a trace does not make it bob's: %s", body)
	legacySpans := stored(aliceKey, legacy)
	require.Len(t, legacySpans, 1, "alice sees only her own spans")
	require.Equal(t, "1111111111111111", legacySpans[0].SpanID)
}
