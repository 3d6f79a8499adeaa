package telemetry_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/telemetry"
)

// scrapeMetrics fetches m's handler like Prometheus does and parses the text
// format.
func scrapeMetrics(t *testing.T, m *telemetry.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain"), resp.Header.Get("Content-Type"))
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

type promLabels map[string]string

// findSeries returns the metric of family name whose labels are exactly want,
// or nil.
func findSeries(fams map[string]*dto.MetricFamily, name string, want promLabels) *dto.Metric {
	f := fams[name]
	if f == nil {
		return nil
	}
	for _, m := range f.GetMetric() {
		got := promLabels{}
		for _, lp := range m.GetLabel() {
			got[lp.GetName()] = lp.GetValue()
		}
		if len(got) == len(want) {
			match := true
			for k, v := range want {
				if got[k] != v {
					match = false
				}
			}
			if match {
				return m
			}
		}
	}
	return nil
}

func mustFindSeries(t *testing.T, fams map[string]*dto.MetricFamily, name string, want promLabels) *dto.Metric {
	t.Helper()
	m := findSeries(fams, name, want)
	require.NotNil(t, m, "no series %s%v", name, want)
	return m
}

func counterValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, want promLabels) float64 {
	t.Helper()
	require.Equal(t, dto.MetricType_COUNTER, fams[name].GetType(), name)
	return mustFindSeries(t, fams, name, want).GetCounter().GetValue()
}

func gaugeValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, want promLabels) float64 {
	t.Helper()
	require.Equal(t, dto.MetricType_GAUGE, fams[name].GetType(), name)
	return mustFindSeries(t, fams, name, want).GetGauge().GetValue()
}

func histogramValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, want promLabels) (count uint64, sum float64) {
	t.Helper()
	require.Equal(t, dto.MetricType_HISTOGRAM, fams[name].GetType(), name)
	h := mustFindSeries(t, fams, name, want).GetHistogram()
	return h.GetSampleCount(), h.GetSampleSum()
}

// metricsSessionID is the session of every event the metrics see: no
// label may carry it. (Events have no user; the label names are checked.)
const metricsSessionID = "sess-7f3a9c"

// metricsAgentRun is a streamed run of agent "support": a model request that asks for
// two tools (one fails), then a second request that answers.
func metricsAgentRun() []event.Event {
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	ev := func(typ event.Type) event.Event {
		return event.Event{Type: typ, RunID: "run-1", SessionID: metricsSessionID, AgentID: "support", CreatedAt: t0}
	}
	started := ev(event.RunStarted)
	started.Model, started.Provider = "gpt-4o", "openai"
	req1 := ev(event.ModelRequestCompleted)
	req1.Model, req1.Provider = "gpt-4o", "openai"
	req1.Metrics = &event.Metrics{InputTokens: 120, OutputTokens: 30, TotalTokens: 150, Duration: 1200 * time.Millisecond, TimeToFirstToken: 300 * time.Millisecond, ModelRequests: 1}
	search := &event.ToolCall{ID: "c1", Name: "web_search", Args: map[string]any{"q": "weather"}}
	calc := &event.ToolCall{ID: "c2", Name: "calculator", Args: map[string]any{"expression": "1/0"}}
	s1, s2 := ev(event.ToolCallStarted), ev(event.ToolCallStarted)
	s1.Tool, s2.Tool = search, calc
	searchDone := *search
	searchDone.Duration, searchDone.Result = 50*time.Millisecond, "sunny"
	calcDone := *calc
	calcDone.Duration, calcDone.Error, calcDone.Result = 2*time.Millisecond, true, "division by zero"
	d1, d2 := ev(event.ToolCallCompleted), ev(event.ToolCallError)
	d1.Tool, d2.Tool = &searchDone, &calcDone
	req2 := ev(event.ModelRequestCompleted)
	req2.Model, req2.Provider = "gpt-4o", "openai"
	req2.Metrics = &event.Metrics{InputTokens: 200, OutputTokens: 50, TotalTokens: 250, Duration: 800 * time.Millisecond, ModelRequests: 1}
	content := ev(event.RunContent)
	content.Content = "It is sunny."
	done := ev(event.RunCompleted)
	done.Content = "It is sunny."
	done.Metrics = &event.Metrics{InputTokens: 320, OutputTokens: 80, TotalTokens: 400, Duration: 2500 * time.Millisecond, ModelRequests: 2, ToolCalls: 2}
	return []event.Event{started, req1, s1, s2, d2, d1, req2, content, done}
}

// metricsTeamRun is a run of team "research" whose leader delegates to member
// "writer" (events at depth 1, with their own terminal event), then fails.
func metricsTeamRun() []event.Event {
	t0 := time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC)
	team := func(typ event.Type) event.Event {
		return event.Event{Type: typ, RunID: "run-2", SessionID: metricsSessionID, TeamID: "research", CreatedAt: t0}
	}
	member := func(typ event.Type) event.Event {
		return event.Event{Type: typ, RunID: "run-2-writer-1", SessionID: metricsSessionID, AgentID: "writer", Member: "writer", Depth: 1, CreatedAt: t0}
	}
	started := team(event.RunStarted)
	started.Model, started.Provider = "claude-sonnet-4", "anthropic"
	lead := team(event.ModelRequestCompleted)
	lead.Model, lead.Provider = "claude-sonnet-4", "anthropic"
	lead.Metrics = &event.Metrics{InputTokens: 500, OutputTokens: 20, Duration: 900 * time.Millisecond}
	call := &event.ToolCall{ID: "d1", Name: "delegate_task", Args: map[string]any{"member": "writer"}}
	delegating := team(event.ToolCallStarted)
	delegating.Tool = call
	mStarted := member(event.RunStarted)
	mStarted.Model, mStarted.Provider = "gpt-4o-mini", "openai"
	mReq := member(event.ModelRequestCompleted)
	mReq.Model, mReq.Provider = "gpt-4o-mini", "openai"
	mReq.Metrics = &event.Metrics{InputTokens: 80, OutputTokens: 40, Duration: 2 * time.Second, TimeToFirstToken: 500 * time.Millisecond}
	mDone := member(event.RunCompleted)
	mDone.Metrics = &event.Metrics{InputTokens: 80, OutputTokens: 40, Duration: 2100 * time.Millisecond}
	delegated := *call
	delegated.Duration = 2200 * time.Millisecond
	delegatedEv := team(event.ToolCallCompleted)
	delegatedEv.Tool = &delegated
	failed := team(event.RunError)
	failed.Content, failed.ErrorKind = "provider unavailable", "unavailable"
	failed.Metrics = &event.Metrics{InputTokens: 580, OutputTokens: 60, Duration: 3 * time.Second}
	return []event.Event{started, lead, delegating, mStarted, mReq, mDone, delegatedEv, failed}
}

func TestMetricsFromRunEvents(t *testing.T) {
	m := telemetry.NewMetrics()
	for _, e := range append(metricsAgentRun(), metricsTeamRun()...) {
		m.Observe(e)
	}
	// A cancelled run without metrics still counts.
	m.Observe(event.Event{Type: event.RunCancelled, RunID: "run-3", AgentID: "support", Content: "run cancelled"})
	m.StreamOpened()
	m.StreamOpened()
	m.StreamOpened()
	m.StreamClosed()

	fams := scrapeMetrics(t, m)

	// Runs: depth 0 only, by kind, target and status.
	require.Equal(t, 1.0, counterValue(t, fams, "troupe_runs_total", promLabels{"kind": "agent", "target": "support", "status": "completed"}))
	require.Equal(t, 1.0, counterValue(t, fams, "troupe_runs_total", promLabels{"kind": "agent", "target": "support", "status": "cancelled"}))
	require.Equal(t, 1.0, counterValue(t, fams, "troupe_runs_total", promLabels{"kind": "team", "target": "research", "status": "error"}))
	require.Equal(t, 3, len(fams["troupe_runs_total"].GetMetric()), "the member's run is not counted")
	n, sum := histogramValue(t, fams, "troupe_run_duration_seconds", promLabels{"kind": "agent", "target": "support", "status": "completed"})
	require.Equal(t, uint64(1), n)
	require.InDelta(t, 2.5, sum, 1e-9)
	n, sum = histogramValue(t, fams, "troupe_run_duration_seconds", promLabels{"kind": "team", "target": "research", "status": "error"})
	require.Equal(t, uint64(1), n)
	require.InDelta(t, 3.0, sum, 1e-9)
	require.Equal(t, 2, len(fams["troupe_run_duration_seconds"].GetMetric()), "no duration without metrics")
	h := mustFindSeries(t, fams, "troupe_run_duration_seconds", promLabels{"kind": "agent", "target": "support", "status": "completed"}).GetHistogram()
	require.Equal(t, 120.0, h.GetBucket()[11].GetUpperBound(), "buckets reach LLM latencies")

	// Model requests, team members' included.
	n, sum = histogramValue(t, fams, "troupe_model_request_duration_seconds", promLabels{"provider": "openai", "model": "gpt-4o"})
	require.Equal(t, uint64(2), n)
	require.InDelta(t, 2.0, sum, 1e-9)
	n, _ = histogramValue(t, fams, "troupe_model_request_duration_seconds", promLabels{"provider": "anthropic", "model": "claude-sonnet-4"})
	require.Equal(t, uint64(1), n)
	n, _ = histogramValue(t, fams, "troupe_model_request_duration_seconds", promLabels{"provider": "openai", "model": "gpt-4o-mini"})
	require.Equal(t, uint64(1), n)
	for _, c := range []struct {
		provider, model, direction string
		want                       float64
	}{
		{"openai", "gpt-4o", "input", 320}, {"openai", "gpt-4o", "output", 80},
		{"anthropic", "claude-sonnet-4", "input", 500}, {"anthropic", "claude-sonnet-4", "output", 20},
		{"openai", "gpt-4o-mini", "input", 80}, {"openai", "gpt-4o-mini", "output", 40},
	} {
		require.Equal(t, c.want, counterValue(t, fams, "troupe_model_tokens_total", promLabels{"provider": c.provider, "model": c.model, "direction": c.direction}), "%+v", c)
	}
	n, sum = histogramValue(t, fams, "troupe_model_time_to_first_token_seconds", promLabels{"provider": "openai", "model": "gpt-4o"})
	require.Equal(t, uint64(1), n, "only streamed requests have a time to first token")
	require.InDelta(t, 0.3, sum, 1e-9)
	n, sum = histogramValue(t, fams, "troupe_model_time_to_first_token_seconds", promLabels{"provider": "openai", "model": "gpt-4o-mini"})
	require.Equal(t, uint64(1), n)
	require.InDelta(t, 0.5, sum, 1e-9)
	require.Nil(t, findSeries(fams, "troupe_model_time_to_first_token_seconds", promLabels{"provider": "anthropic", "model": "claude-sonnet-4"}))

	// Tools.
	for tool, want := range map[string]float64{"web_search": 0.05, "calculator": 0.002, "delegate_task": 2.2} {
		n, sum = histogramValue(t, fams, "troupe_tool_call_duration_seconds", promLabels{"tool": tool})
		require.Equal(t, uint64(1), n, tool)
		require.InDelta(t, want, sum, 1e-9, tool)
	}
	require.Equal(t, 1.0, counterValue(t, fams, "troupe_tool_call_errors_total", promLabels{"tool": "calculator"}))
	require.Equal(t, 0.0, counterValue(t, fams, "troupe_tool_call_errors_total", promLabels{"tool": "web_search"}), "tools seen have an error series from the start")

	require.Equal(t, 2.0, gaugeValue(t, fams, "troupe_active_streams", promLabels{}))

	// No source set yet: no series for them.
	for _, name := range []string{"troupe_config_last_reload_successful", "troupe_trace_span_queue_depth", "troupe_knowledge_documents"} {
		require.NotContains(t, fams, name)
	}

	// The Go runtime and process collectors.
	require.Contains(t, fams, "go_goroutines")
	if runtime.GOOS == "linux" {
		require.Contains(t, fams, "process_start_time_seconds")
	}

	// No label carries user or session ids, and the house style holds.
	for name, f := range fams {
		if !strings.HasPrefix(name, "troupe_") {
			continue
		}
		require.NotEmpty(t, f.GetHelp(), name)
		for _, mt := range f.GetMetric() {
			for _, lp := range mt.GetLabel() {
				require.NotEqual(t, metricsSessionID, lp.GetValue(), name)
				require.NotContains(t, []string{"session_id", "user_id", "run_id"}, lp.GetName(), name)
			}
		}
	}
}

func TestMetricsSources(t *testing.T) {
	m := telemetry.NewMetrics()
	reloadAt := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var (
		mu      sync.Mutex
		ok      = true
		at      = reloadAt
		gen     = uint64(7)
		depth   = 5
		dropped = uint64(12)
	)
	m.SetReloadSource(func() (bool, time.Time, time.Duration, uint64) {
		mu.Lock()
		defer mu.Unlock()
		return ok, at, 250 * time.Millisecond, gen
	})
	m.SetSpanQueueSource(func() (int, uint64) {
		mu.Lock()
		defer mu.Unlock()
		return depth, dropped
	})
	m.SetIngestionSource(func() map[string]int {
		return map[string]int{"processing": 2, "completed": 10, "failed": 1}
	})
	m.SetKafkaLagSource(func() map[string]int64 { return map[string]int64{"events": 42, "news": 0} })

	fams := scrapeMetrics(t, m)
	require.Equal(t, 1.0, gaugeValue(t, fams, "troupe_config_last_reload_successful", promLabels{}))
	require.Equal(t, float64(reloadAt.Unix()), gaugeValue(t, fams, "troupe_config_last_reload_success_timestamp_seconds", promLabels{}))
	require.InDelta(t, 0.25, gaugeValue(t, fams, "troupe_config_reload_duration_seconds", promLabels{}), 1e-9)
	require.Equal(t, 7.0, gaugeValue(t, fams, "troupe_config_generation", promLabels{}))
	require.Equal(t, 5.0, gaugeValue(t, fams, "troupe_trace_span_queue_depth", promLabels{}))
	require.Equal(t, 12.0, counterValue(t, fams, "troupe_trace_spans_dropped_total", promLabels{}))
	require.Equal(t, 2.0, gaugeValue(t, fams, "troupe_knowledge_documents", promLabels{"state": "processing"}))
	require.Equal(t, 10.0, gaugeValue(t, fams, "troupe_knowledge_documents", promLabels{"state": "completed"}))
	require.Equal(t, 1.0, gaugeValue(t, fams, "troupe_knowledge_documents", promLabels{"state": "failed"}))
	require.Equal(t, 42.0, gaugeValue(t, fams, "troupe_knowledge_kafka_lag", promLabels{"knowledge": "events"}))
	require.Equal(t, 0.0, gaugeValue(t, fams, "troupe_knowledge_kafka_lag", promLabels{"knowledge": "news"}))

	// Values are read at every scrape. A failed reload keeps the time of the
	// last success.
	mu.Lock()
	ok, at, depth, dropped = false, reloadAt.Add(time.Minute), 0, 20
	mu.Unlock()
	fams = scrapeMetrics(t, m)
	require.Equal(t, 0.0, gaugeValue(t, fams, "troupe_config_last_reload_successful", promLabels{}))
	require.Equal(t, float64(reloadAt.Unix()), gaugeValue(t, fams, "troupe_config_last_reload_success_timestamp_seconds", promLabels{}))
	require.Equal(t, 7.0, gaugeValue(t, fams, "troupe_config_generation", promLabels{}))
	require.Equal(t, 0.0, gaugeValue(t, fams, "troupe_trace_span_queue_depth", promLabels{}))
	require.Equal(t, 20.0, counterValue(t, fams, "troupe_trace_spans_dropped_total", promLabels{}))

	mu.Lock()
	ok, at, gen = true, reloadAt.Add(2*time.Minute), 8
	mu.Unlock()
	fams = scrapeMetrics(t, m)
	require.Equal(t, 1.0, gaugeValue(t, fams, "troupe_config_last_reload_successful", promLabels{}))
	require.Equal(t, float64(reloadAt.Add(2*time.Minute).Unix()), gaugeValue(t, fams, "troupe_config_last_reload_success_timestamp_seconds", promLabels{}))
	require.Equal(t, 8.0, gaugeValue(t, fams, "troupe_config_generation", promLabels{}))

	// Removing a source removes its series.
	m.SetSpanQueueSource(nil)
	m.SetIngestionSource(nil)
	m.SetKafkaLagSource(nil)
	fams = scrapeMetrics(t, m)
	require.NotContains(t, fams, "troupe_knowledge_kafka_lag")
	require.NotContains(t, fams, "troupe_trace_span_queue_depth")
	require.NotContains(t, fams, "troupe_knowledge_documents")
	require.Contains(t, fams, "troupe_config_generation")
}

func TestMetricsNoReloadYet(t *testing.T) {
	m := telemetry.NewMetrics()
	m.SetReloadSource(func() (bool, time.Time, time.Duration, uint64) { return false, time.Time{}, 0, 0 })
	fams := scrapeMetrics(t, m)
	require.NotContains(t, fams, "troupe_config_last_reload_successful")
	require.NotContains(t, fams, "troupe_config_last_reload_success_timestamp_seconds")
}

func TestMetricsCardinalityCap(t *testing.T) {
	m := telemetry.NewMetrics()
	const extra = 50
	for i := range telemetry.MaxLabelValues + extra {
		m.Observe(event.Event{Type: event.ToolCallCompleted, Tool: &event.ToolCall{Name: fmt.Sprintf("tool_%03d", i), Duration: time.Millisecond}})
		m.Observe(event.Event{Type: event.ModelRequestCompleted, Provider: "openai", Model: fmt.Sprintf("model-%03d", i),
			Metrics: &event.Metrics{InputTokens: 1, OutputTokens: 1, Duration: time.Second}})
		m.Observe(event.Event{Type: event.RunCompleted, AgentID: fmt.Sprintf("agent-%03d", i), Metrics: &event.Metrics{Duration: time.Second}})
	}
	// Values already seen keep their own series once the cap is reached.
	m.Observe(event.Event{Type: event.ToolCallError, Tool: &event.ToolCall{Name: "tool_000", Error: true}})
	// A new model name past the cap, however long, is folded too.
	m.Observe(event.Event{Type: event.ModelRequestCompleted, Provider: "openai", Model: strings.Repeat("x", 10000), Metrics: &event.Metrics{InputTokens: 1}})

	fams := scrapeMetrics(t, m)
	require.Equal(t, telemetry.MaxLabelValues+1, len(fams["troupe_tool_call_duration_seconds"].GetMetric()))
	n, _ := histogramValue(t, fams, "troupe_tool_call_duration_seconds", promLabels{"tool": telemetry.OtherLabel})
	require.Equal(t, uint64(extra), n)
	n, _ = histogramValue(t, fams, "troupe_tool_call_duration_seconds", promLabels{"tool": "tool_000"})
	require.Equal(t, uint64(2), n)
	require.Equal(t, 1.0, counterValue(t, fams, "troupe_tool_call_errors_total", promLabels{"tool": "tool_000"}))

	require.Equal(t, telemetry.MaxLabelValues+1, len(fams["troupe_model_request_duration_seconds"].GetMetric()))
	n, _ = histogramValue(t, fams, "troupe_model_request_duration_seconds", promLabels{"provider": "openai", "model": telemetry.OtherLabel})
	require.Equal(t, uint64(extra+1), n, "the hostile model name is folded too")
	require.Equal(t, float64(extra+1), counterValue(t, fams, "troupe_model_tokens_total", promLabels{"provider": "openai", "model": telemetry.OtherLabel, "direction": "input"}))

	require.Equal(t, telemetry.MaxLabelValues+1, len(fams["troupe_runs_total"].GetMetric()))
	require.Equal(t, float64(extra), counterValue(t, fams, "troupe_runs_total", promLabels{"kind": "agent", "target": telemetry.OtherLabel, "status": "completed"}))
}

func TestMetricsLabelValuesAreCleaned(t *testing.T) {
	m := telemetry.NewMetrics()
	m.Observe(event.Event{Type: event.ModelRequestCompleted, Provider: "\xffbad", Model: strings.Repeat("é", 200), Metrics: &event.Metrics{Duration: time.Second}})
	m.Observe(event.Event{Type: event.ToolCallCompleted, Tool: &event.ToolCall{Duration: time.Millisecond}})
	fams := scrapeMetrics(t, m)
	mt := fams["troupe_model_request_duration_seconds"].GetMetric()
	require.Len(t, mt, 1)
	for _, lp := range mt[0].GetLabel() {
		require.LessOrEqual(t, len(lp.GetValue()), 128, lp.GetName())
		require.NotContains(t, lp.GetValue(), "\xff")
	}
	n, _ := histogramValue(t, fams, "troupe_tool_call_duration_seconds", promLabels{"tool": telemetry.UnknownLabel})
	require.Equal(t, uint64(1), n)
}

func TestMetricsConcurrentObserve(t *testing.T) {
	m := telemetry.NewMetrics()
	m.SetSpanQueueSource(func() (int, uint64) { return 1, 2 })
	const workers, rounds = 8, 200
	events := append(metricsAgentRun(), metricsTeamRun()...)
	// Scrapes race with the observations. The scraper starts first and
	// keeps going until the workers are done and it has scraped a few
	// times, so a slow machine cannot finish the workers before any scrape.
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	done := make(chan struct{})
	var scrapes sync.WaitGroup
	scraped := 0
	scrapes.Go(func() {
		for {
			select {
			case <-done:
				if scraped >= 3 {
					return
				}
			default:
			}
			resp, err := http.Get(srv.URL)
			if err != nil {
				t.Errorf("scrape: %v", err)
				return
			}
			if _, err := io.Copy(io.Discard, resp.Body); err == nil && resp.StatusCode == http.StatusOK {
				scraped++
			}
			resp.Body.Close()
		}
	})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				for _, e := range events {
					m.Observe(e)
				}
				// New tool names race with the cap.
				m.Observe(event.Event{Type: event.ToolCallCompleted, Tool: &event.ToolCall{Name: fmt.Sprintf("t%d-%d", w, i%40)}})
				m.StreamOpened()
				m.StreamClosed()
			}
		})
	}
	wg.Wait()
	close(done)
	scrapes.Wait()
	require.Positive(t, scraped)

	fams := scrapeMetrics(t, m)
	total := float64(workers * rounds)
	require.Equal(t, total, counterValue(t, fams, "troupe_runs_total", promLabels{"kind": "agent", "target": "support", "status": "completed"}))
	require.Equal(t, total, counterValue(t, fams, "troupe_runs_total", promLabels{"kind": "team", "target": "research", "status": "error"}))
	require.Equal(t, 320*total, counterValue(t, fams, "troupe_model_tokens_total", promLabels{"provider": "openai", "model": "gpt-4o", "direction": "input"}))
	require.Equal(t, total, counterValue(t, fams, "troupe_tool_call_errors_total", promLabels{"tool": "calculator"}))
	require.Equal(t, 0.0, gaugeValue(t, fams, "troupe_active_streams", promLabels{}))
	require.Equal(t, telemetry.MaxLabelValues+1, len(fams["troupe_tool_call_duration_seconds"].GetMetric()), "the cap holds under concurrency")
	var sum uint64
	for _, mt := range fams["troupe_tool_call_duration_seconds"].GetMetric() {
		sum += mt.GetHistogram().GetSampleCount()
	}
	require.Equal(t, uint64(workers*rounds*(1+3)), sum, "every call is counted, capped or not")
}

func TestMetricsQueueSource(t *testing.T) {
	m := telemetry.NewMetrics()
	q := telemetry.QueueMetrics{
		Queues: []telemetry.QueueGauges{
			{Queue: "runs", Depth: 3, Running: 2, Discarded: 1, OldestAvailable: 1500 * time.Millisecond},
			{Queue: "default"},
		},
		FailedAttempts: map[string]uint64{"knowledge_ingest": 4, "background_run": 0},
		LeaseExpired:   2, Rescued: 5, Orphaned: 4,
	}
	m.SetQueueSource(func() telemetry.QueueMetrics { return q })
	fams := scrapeMetrics(t, m)
	tests := []struct {
		name   string
		labels promLabels
		gauge  bool
		want   float64
	}{
		{"troupe_jobs_queue_depth", promLabels{"queue": "runs"}, true, 3},
		{"troupe_jobs_running", promLabels{"queue": "runs"}, true, 2},
		{"troupe_jobs_discarded", promLabels{"queue": "runs"}, true, 1},
		{"troupe_jobs_oldest_available_age_seconds", promLabels{"queue": "runs"}, true, 1.5},
		{"troupe_jobs_queue_depth", promLabels{"queue": "default"}, true, 0},
		{"troupe_jobs_oldest_available_age_seconds", promLabels{"queue": "default"}, true, 0},
		{"troupe_jobs_failed_attempts_total", promLabels{"kind": "knowledge_ingest"}, false, 4},
		{"troupe_jobs_failed_attempts_total", promLabels{"kind": "background_run"}, false, 0},
		{"troupe_jobs_lease_expiries_total", promLabels{}, false, 2},
		{"troupe_jobs_rescued_total", promLabels{}, false, 5},
		{"troupe_jobs_orphaned_runs_total", promLabels{}, false, 4},
	}
	for _, tt := range tests {
		if tt.gauge {
			require.InDelta(t, tt.want, gaugeValue(t, fams, tt.name, tt.labels), 1e-9, tt.name)
		} else {
			require.InDelta(t, tt.want, counterValue(t, fams, tt.name, tt.labels), 1e-9, tt.name)
		}
	}

	// A database that cannot be read drops the gauges, not the counters.
	q.Queues = nil
	fams = scrapeMetrics(t, m)
	require.NotContains(t, fams, "troupe_jobs_queue_depth")
	require.InDelta(t, 2.0, counterValue(t, fams, "troupe_jobs_lease_expiries_total", promLabels{}), 1e-9)

	m.SetQueueSource(nil)
	fams = scrapeMetrics(t, m)
	require.NotContains(t, fams, "troupe_jobs_lease_expiries_total")
}
