package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/telemetry"
)

func TestTraceparent(t *testing.T) {
	t.Parallel()
	p, ok := telemetry.ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	require.True(t, ok)
	require.Equal(t, telemetry.Parent{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7"}, p)
	for _, bad := range []string{"", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"} {
		_, ok := telemetry.ParseTraceparent(bad)
		require.False(t, ok, bad)
	}
	_, ok = telemetry.ParseTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future")
	require.True(t, ok, "later versions may append fields")
	require.Len(t, telemetry.NewTraceID(), 32)
	require.Len(t, telemetry.NewSpanID(), 16)
	require.Equal(t, "00-"+p.TraceID+"-"+p.SpanID+"-01", telemetry.Traceparent(p.TraceID, p.SpanID))
}

// TestTraceFromEvents builds a team run's trace from its events: a model
// request, a delegation whose member runs a knowledge search and a tool call
// that fails, and checks the tree, the timing and the attributes.
func TestTraceFromEvents(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	parent := telemetry.Parent{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7"}
	tr := telemetry.NewTrace(telemetry.RunInfo{Kind: "team", Target: "crew", RunID: "r1", SessionID: "s1", UserID: "u1", SpecVersion: "v9",
		Input: "research this", Model: "gpt-x", Provider: "openai"}, parent, at(0), 8)
	tool := func(id, name string, args map[string]any, start, dur int, result string) *event.ToolCall {
		return &event.ToolCall{ID: id, Name: name, Args: args, StartedAt: at(start), Duration: time.Duration(dur) * time.Millisecond, Result: result}
	}
	events := []event.Event{
		{Type: event.RunStarted, RunID: "r1", TeamID: "crew", CreatedAt: at(0)},
		{Type: event.ModelRequestCompleted, RunID: "r1", TeamID: "crew", CreatedAt: at(40), Model: "gpt-x", Provider: "openai", Metrics: &event.Metrics{InputTokens: 100, OutputTokens: 20, Duration: 30 * time.Millisecond}},
		{Type: event.ToolCallStarted, RunID: "r1", TeamID: "crew", CreatedAt: at(41), Tool: tool("d1", "delegate_task_to_member", map[string]any{"member": "researcher", "task": "find"}, 41, 0, "")},
		{Type: event.RunStarted, RunID: "r1-researcher-1", AgentID: "researcher", Member: "researcher", Depth: 1, CreatedAt: at(42), Model: "gpt-y", Provider: "openai"},
		{Type: event.ToolCallStarted, RunID: "r1-researcher-1", AgentID: "researcher", Member: "researcher", Depth: 1, Tool: tool("k1", "knowledge_search", map[string]any{"query": "q"}, 45, 0, "")},
		{Type: event.ToolCallCompleted, RunID: "r1-researcher-1", AgentID: "researcher", Member: "researcher", Depth: 1, Tool: tool("k1", "knowledge_search", map[string]any{"query": "q"}, 45, 10, "2 results, long text here")},
		{Type: event.ToolCallStarted, RunID: "r1-researcher-1", AgentID: "researcher", Member: "researcher", Depth: 1, Tool: tool("t1", "http_fetch", nil, 46, 0, "")},
		{Type: event.ToolCallError, RunID: "r1-researcher-1", AgentID: "researcher", Member: "researcher", Depth: 1, Tool: tool("t1", "http_fetch", nil, 46, 5, "refused")},
		{Type: event.RunCompleted, RunID: "r1-researcher-1", AgentID: "researcher", Member: "researcher", Depth: 1, CreatedAt: at(80), Metrics: &event.Metrics{InputTokens: 7, OutputTokens: 3}},
		{Type: event.ToolCallCompleted, RunID: "r1", TeamID: "crew", Tool: tool("d1", "delegate_task_to_member", map[string]any{"member": "researcher"}, 41, 40, "found")},
	}
	for _, e := range events {
		tr.Observe(e)
	}
	tr.StoreSpan("store.finish_run", at(95), at(97), nil)
	spans := tr.Finish(at(100), telemetry.StatusOK, "", "", event.Metrics{InputTokens: 107, OutputTokens: 23})

	byName := map[string]telemetry.Span{}
	for _, s := range spans {
		require.Equal(t, spans[0].TraceID, s.TraceID, "one trace")
		require.False(t, s.End.Before(s.Start), s.Name)
		byName[s.Name] = s
	}
	root := spans[0]
	require.Equal(t, "team.run crew", root.Name)
	// The run starts a trace of its own and links to the caller's: a
	// traceparent never makes a run join (and so share) another trace.
	require.NotEqual(t, parent.TraceID, root.TraceID)
	require.Empty(t, root.ParentID)
	require.Equal(t, parent.TraceID, root.Attributes[telemetry.LinkTraceIDAttribute])
	require.Equal(t, parent.SpanID, root.Attributes[telemetry.LinkSpanIDAttribute])
	require.Equal(t, "crew", root.TeamID)
	require.Equal(t, 100*time.Millisecond, root.Duration())
	require.Equal(t, "research…", root.Attributes[telemetry.InputAttribute], "attributes are bounded")
	require.Equal(t, 107, root.InputTokens)

	model := byName["model.request openai/gpt-x"]
	require.Equal(t, root.SpanID, model.ParentID)
	require.Equal(t, at(10), model.Start)
	require.Equal(t, 100, model.InputTokens)

	delegate := byName["tool.call delegate_task_to_member"]
	member := byName["member.run researcher"]
	require.Equal(t, delegate.SpanID, member.ParentID, "a member's run hangs under the delegation that started it")
	require.Equal(t, "researcher", member.AgentID)
	search := byName["knowledge.search"]
	require.Equal(t, telemetry.KindKnowledge, search.Kind)
	require.Equal(t, member.SpanID, search.ParentID)
	require.Equal(t, 10*time.Millisecond, search.Duration())
	fetch := byName["tool.call http_fetch"]
	require.Equal(t, telemetry.StatusError, fetch.Status)
	require.Equal(t, "refused", fetch.StatusMessage)
	store := byName["store.finish_run"]
	require.Equal(t, telemetry.KindStore, store.Kind)
	require.Equal(t, root.SpanID, store.ParentID)
	// Children lie within their parents.
	for _, s := range spans[1:] {
		require.False(t, s.Start.Before(root.Start), s.Name)
		require.False(t, s.End.After(root.End), s.Name)
	}
	require.False(t, search.Start.Before(member.Start))
	require.False(t, member.End.After(delegate.End))
}

// fakeSink records batches and can fail on demand.
type fakeSink struct {
	mu       sync.Mutex
	batches  [][]telemetry.Span
	fail     atomic.Bool
	block    chan struct{}
	attempts atomic.Int64
}

func (f *fakeSink) Write(ctx context.Context, spans []telemetry.Span) error {
	f.attempts.Add(1)
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if f.fail.Load() {
		return errors.New("clickhouse is down")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batches = append(f.batches, append([]telemetry.Span(nil), spans...))
	return nil
}

func (f *fakeSink) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, b := range f.batches {
		n += len(b)
	}
	return n
}

func spans(n int) []telemetry.Span {
	out := make([]telemetry.Span, n)
	for i := range out {
		out[i] = telemetry.Span{TraceID: telemetry.NewTraceID(), SpanID: telemetry.NewSpanID(), Name: "x"}
	}
	return out
}

func TestRecorderBatchesAndFlushesOnShutdown(t *testing.T) {
	t.Parallel()
	sink := &fakeSink{}
	r := telemetry.NewRecorder(telemetry.RecorderOptions{Sink: sink, BatchSize: 100, FlushInterval: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	r.Record(spans(250)...)
	require.Eventually(t, func() bool { return sink.count() == 250 }, 5*time.Second, time.Millisecond,
		"a full batch is written at once, with what else is queued")
	r.Record(spans(50)...) // less than a batch: waits for the interval
	time.Sleep(50 * time.Millisecond)
	require.Equal(t, 250, sink.count())
	cancel()
	<-done
	require.Equal(t, 300, sink.count(), "the rest is flushed on shutdown")
	_, dropped, written := r.Stats()
	require.Zero(t, dropped)
	require.EqualValues(t, 300, written)
}

func TestRecorderNeverBlocksAndCountsDrops(t *testing.T) {
	t.Parallel()
	sink := &fakeSink{block: make(chan struct{})} // a sink that hangs
	r := telemetry.NewRecorder(telemetry.RecorderOptions{Sink: sink, QueueSize: 50, BatchSize: 10, FlushInterval: time.Millisecond, WriteTimeout: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	start := time.Now()
	for range 100 {
		r.Record(spans(10)...)
	}
	// The sink blocks until the test ends: a Record that waited for it would
	// never return, so any bound proves it; keep it loose for loaded machines.
	require.Less(t, time.Since(start), 2*time.Second, "recording never waits for the sink")
	_, dropped, _ := r.Stats()
	require.Greater(t, dropped, uint64(0))
	close(sink.block)
	cancel()
	<-done
}

func TestRecorderBacksOffDuringOutageAndRecovers(t *testing.T) {
	t.Parallel()
	sink := &fakeSink{}
	sink.fail.Store(true)
	r := telemetry.NewRecorder(telemetry.RecorderOptions{Sink: sink, BatchSize: 10, FlushInterval: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	r.Record(spans(10)...)
	require.Eventually(t, func() bool { _, d, _ := r.Stats(); return d >= 10 }, 5*time.Second, time.Millisecond, "failed batches are dropped and counted")
	// Spans keep coming every flush interval while the sink is down: writes
	// are tried every MaxBackoff (50ms), not every interval (5ms).
	before := sink.attempts.Load()
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		r.Record(spans(1)...)
	}
	require.LessOrEqual(t, sink.attempts.Load()-before, int64(12), "writes pause while backing off")
	sink.fail.Store(false)
	require.Eventually(t, func() bool {
		r.Record(spans(1)...)
		return sink.count() > 0
	}, 5*time.Second, 10*time.Millisecond, "writes resume after the outage")
	cancel()
	<-done
}

// TestRecorderCatchesUpWithLargerBatches checks that a sink whose every
// write takes a fixed time (like a ClickHouse insert) keeps up with more
// spans than BatchSize per write allows, by taking more per write once the
// queue has fallen behind, without dropping any.
func TestRecorderCatchesUpWithLargerBatches(t *testing.T) {
	t.Parallel()
	sink := &slowSink{delay: 20 * time.Millisecond}
	r := telemetry.NewRecorder(telemetry.RecorderOptions{Sink: sink, BatchSize: 100, MaxBatchSize: 2000, QueueSize: 50_000,
		FlushInterval: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	// 20,000 spans at once: 200 writes of BatchSize would take 4 s.
	for range 200 {
		r.Record(spans(100)...)
	}
	require.Eventually(t, func() bool { _, _, w := r.Stats(); return w == 20_000 }, 10*time.Second, time.Millisecond)
	cancel()
	<-done
	_, dropped, _ := r.Stats()
	require.Zero(t, dropped)
	sink.mu.Lock()
	defer sink.mu.Unlock()
	require.LessOrEqual(t, sink.writes, 20, "writes grow up to MaxBatchSize when behind")
	require.LessOrEqual(t, sink.largest, 2000)
}

type slowSink struct {
	delay           time.Duration
	mu              sync.Mutex
	writes, largest int
}

func (s *slowSink) Write(ctx context.Context, spans []telemetry.Span) error {
	time.Sleep(s.delay)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	s.largest = max(s.largest, len(spans))
	return nil
}

// TestTraceIDsGrowWithTime checks the id layout stores rely on: later traces
// sort after earlier ones, ids stay unique and valid W3C ids.
func TestTraceIDsGrowWithTime(t *testing.T) {
	seen := map[string]bool{}
	prev := telemetry.NewTraceID()
	for i := range 2000 {
		if i%500 == 0 {
			time.Sleep(2 * time.Millisecond)
		}
		id := telemetry.NewTraceID()
		require.Len(t, id, 32)
		require.False(t, seen[id], "duplicate trace id")
		seen[id] = true
		require.LessOrEqual(t, prev[:12], id[:12], "the time prefix never goes back")
		_, ok := telemetry.ParseTraceparent("00-" + id + "-" + telemetry.NewSpanID() + "-01")
		require.True(t, ok, id)
		prev = id
	}
	ms := time.Now().UnixMilli()
	id := telemetry.NewTraceID()
	var got int64
	_, err := fmt.Sscanf(id[:12], "%x", &got)
	require.NoError(t, err)
	require.InDelta(t, ms, got, 1000, "the first 6 bytes are Unix milliseconds")
}

func TestTraceGuardrailSpans(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tr := telemetry.NewTrace(telemetry.RunInfo{Kind: "agent", Target: "support", RunID: "r1"}, telemetry.Parent{}, t0, 0)
	tr.Observe(event.Event{Type: event.GuardrailChecked, RunID: "r1", AgentID: "support", Guardrail: &event.GuardrailCheck{
		Name: "pii", Kind: "pii", Direction: "input", Action: "redact", Decision: "redact", Matched: []string{"email"},
		Redactions: map[string]int{"email": 2}, StartedAt: t0, Duration: 30 * time.Microsecond, Reason: "redacted email"}})
	tr.Observe(event.Event{Type: event.GuardrailChecked, RunID: "r1", AgentID: "support", Guardrail: &event.GuardrailCheck{
		Name: "inj", Kind: "injection", Direction: "input", Action: "block", Decision: "block", Matched: []string{"ignore_previous"},
		Score: 0.85, StartedAt: t0, Duration: time.Millisecond, Reason: "it looks like a prompt injection"}})
	spans := tr.Finish(t0.Add(time.Second), "error", "guardrail", "guardrail inj blocked the input", event.Metrics{})
	var got []telemetry.Span
	for _, s := range spans {
		if s.Kind == telemetry.KindGuardrail {
			got = append(got, s)
		}
	}
	require.Len(t, got, 2)
	require.Equal(t, "guardrail.pii", got[0].Name)
	require.Equal(t, spans[0].SpanID, got[0].ParentID)
	require.Equal(t, telemetry.StatusOK, got[0].Status)
	require.Equal(t, map[string]string{"guardrail.name": "pii", "guardrail.kind": "pii", "guardrail.direction": "input", "guardrail.action": "redact",
		"guardrail.decision": "redact", "guardrail.matched": "email", "guardrail.redactions.email": "2", "guardrail.reason": "redacted email"}, got[0].Attributes)
	require.Equal(t, t0.Add(30*time.Microsecond), got[0].End)
	require.Equal(t, "guardrail.inj", got[1].Name)
	require.Equal(t, telemetry.StatusError, got[1].Status)
	require.Equal(t, "0.850", got[1].Attributes["guardrail.score"])
	require.Equal(t, "ignore_previous", got[1].Attributes["guardrail.matched"])
}

func TestTraceReasoningSpan(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tr := telemetry.NewTrace(telemetry.RunInfo{Kind: "agent", Target: "planner", RunID: "r1"}, telemetry.Parent{}, t0, 0)
	ev := func(typ event.Type, at time.Duration, step *event.Thought) event.Event {
		return event.Event{Type: typ, RunID: "r1", AgentID: "planner", CreatedAt: t0.Add(at), Reasoning: step}
	}
	tr.Observe(ev(event.ReasoningStarted, time.Millisecond, nil))
	tr.Observe(ev(event.ReasoningStep, 2*time.Millisecond, &event.Thought{Title: "Step 1", Action: "Read the question.", Source: event.ReasoningPlan}))
	tr.Observe(ev(event.ReasoningStep, 3*time.Millisecond, &event.Thought{Title: "Step 2", Action: "Answer it.", Source: event.ReasoningPlan}))
	tr.Observe(ev(event.ReasoningCompleted, 4*time.Millisecond, nil))
	spans := tr.Finish(t0.Add(time.Second), telemetry.StatusOK, "", "", event.Metrics{})
	var got []telemetry.Span
	for _, s := range spans {
		if s.Kind == telemetry.KindReasoning {
			got = append(got, s)
		}
	}
	require.Len(t, got, 1)
	require.Equal(t, "reasoning", got[0].Name)
	require.Equal(t, spans[0].SpanID, got[0].ParentID)
	require.Equal(t, telemetry.StatusOK, got[0].Status)
	require.Equal(t, t0.Add(time.Millisecond), got[0].Start)
	require.Equal(t, t0.Add(4*time.Millisecond), got[0].End)
	require.Equal(t, map[string]string{"reasoning.steps": "2", "reasoning.source": "plan",
		"reasoning.step.1": "Step 1: Read the question.", "reasoning.step.2": "Step 2: Answer it."}, got[0].Attributes)
}
