package console_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	collectormetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/troupehq/troupe/engine/model/fake"
	"github.com/troupehq/troupe/telemetry"
	"github.com/troupehq/troupe/telemetry/otlp"
)

// receiver is an in-process OTLP collector on loopback: a gRPC
// TraceService and an HTTP handler of /v1/traces, both decoding the real
// protobuf requests.
type receiver struct {
	collectortrace.UnimplementedTraceServiceServer
	mu       sync.Mutex
	spans    []*tracepb.Span
	services []string
}

func (r *receiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				r.services = append(r.services, a.GetValue().GetStringValue())
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			r.spans = append(r.spans, ss.GetSpans()...)
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want a protobuf POST to /v1/traces", http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var in collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &in); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	out, _ := r.Export(req.Context(), &in)
	b, _ := proto.Marshal(out)
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(b)
}

// trace returns the spans received of trace id (hex).
func (r *receiver) trace(id string) []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range r.spans {
		if hex.EncodeToString(s.GetTraceId()) == id {
			out = append(out, s)
		}
	}
	return out
}

// startReceiver serves a receiver over protocol on loopback and returns it
// with its endpoint URL.
func startReceiver(t *testing.T, protocol string) (*receiver, string) {
	t.Helper()
	r := &receiver{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	switch protocol {
	case otlp.ProtocolGRPC:
		srv := grpc.NewServer()
		collectortrace.RegisterTraceServiceServer(srv, r)
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(srv.Stop)
	default:
		srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
	}
	return r, "http://" + ln.Addr().String()
}

// startExporter runs an OTLP exporter to endpoint until the test ends.
func startExporter(t *testing.T, protocol, endpoint string) *otlp.Exporter {
	t.Helper()
	exp, err := otlp.New(t.Context(), otlp.Options{Endpoint: endpoint, Protocol: protocol, ServiceName: "troupe-test",
		Recorder: telemetry.RecorderOptions{FlushInterval: 20 * time.Millisecond, WriteTimeout: 2 * time.Second}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = exp.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = exp.Shutdown(context.Background())
	})
	return exp
}

// secretToken is a credential the specs take from the environment; the
// agent's instructions carry it, so every model request does.
const secretToken = "tok-5f1c0ffee0ddba11"

const otelAgents = historyModels + `kind: Agent
name: keeper
model: scripted
instructions: "Sign requests with ${SECRET_TOKEN}."
session_state: true
history: 0
---
kind: Agent
name: quiet
model: scripted
instructions: "Sign requests with ${SECRET_TOKEN}."
session_state: true
history: 0
trace: {content: false}
`

func contentOn(tr *telemetry.Tracer) {
	tr.RecordContent(telemetry.ContentPolicy{Content: telemetry.Content{Enabled: true}})
}

// postRun starts a run of path as key (none when empty) with a traceparent
// (none when empty) and returns its trace id and session id.
func postTracedRun(t *testing.T, ts *testServer, path, key, body, traceparent string) (traceID, sessionID string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.url+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if traceparent != "" {
		req.Header.Set("Traceparent", traceparent)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var run runJSON
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&run))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return resp.Header.Get("X-Trace-Id"), run.SessionID
}

// storedSpans waits for trace id in the trace store and returns its spans.
func storedSpans(t *testing.T, ts *testServer, key, id string) []traceNode {
	t.Helper()
	var got struct {
		Tree []traceNode `json:"tree"`
	}
	require.Eventually(t, func() bool {
		status, body, _ := ts.do(http.MethodGet, "/traces/"+id, key, "", "")
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

func otlpAttrs(s *tracepb.Span) map[string]any {
	out := map[string]any{}
	for _, a := range s.GetAttributes() {
		if v, ok := a.GetValue().GetValue().(*commonpb.AnyValue_IntValue); ok {
			out[a.GetKey()] = v.IntValue
			continue
		}
		out[a.GetKey()] = a.GetValue().GetStringValue()
	}
	return out
}

// TestOTLPExport: a run's trace reaches an in-process OTLP receiver over
// gRPC and over HTTP/protobuf, inside the caller's trace (its trace id, the
// caller's span as the root's parent), with the GenAI attributes and the
// conversation, scrubbed of a secret the specs take from the environment.
func TestOTLPExport(t *testing.T) {
	t.Parallel()
	for _, protocol := range []string{otlp.ProtocolGRPC, otlp.ProtocolHTTP} {
		t.Run(protocol, func(t *testing.T) {
			t.Parallel()
			rcv, endpoint := startReceiver(t, protocol)
			exp := startExporter(t, protocol, endpoint)
			script := fake.New(setStateCall(`{"city":"Lyon"}`), fake.Step{Content: "noted"})
			ts := startServer(t, withProvider("anthropic", script), withSpecs(otelAgents), withEnv("SECRET_TOKEN", secretToken),
				withTracer(func(tr *telemetry.Tracer) { contentOn(tr); tr.Export(exp) }))

			const callerTrace, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
			ownTrace, sessionID := postTracedRun(t, ts, "/agents/keeper/runs", "", `{"message":"I live in Lyon","stream":false}`,
				"00-"+callerTrace+"-"+callerSpan+"-01")
			require.NotEqual(t, callerTrace, ownTrace, "the trace store keeps the run's own trace")
			require.Contains(t, script.Requests()[0].System, secretToken, "the model is sent the secret; traces must not keep it")

			var spans []*tracepb.Span
			require.Eventually(t, func() bool { spans = rcv.trace(callerTrace); return len(spans) >= 4 }, 10*time.Second, 20*time.Millisecond)
			byName := map[string]*tracepb.Span{}
			for _, s := range spans {
				byName[s.GetName()] = s
			}
			root := byName["invoke_agent keeper"]
			require.NotNil(t, root, "spans: %v", byName)
			require.Equal(t, callerSpan, hex.EncodeToString(root.GetParentSpanId()), "the run's root is a child of the caller's span")
			ra := otlpAttrs(root)
			require.Equal(t, "invoke_agent", ra["gen_ai.operation.name"])
			require.Equal(t, "keeper", ra["gen_ai.agent.name"])
			require.Equal(t, sessionID, ra["gen_ai.conversation.id"])
			require.Equal(t, ownTrace, ra["troupe.trace_id"])
			require.Equal(t, "AGENT", ra["openinference.span.kind"])

			var chats []*tracepb.Span
			for _, s := range spans {
				if s.GetName() == "chat scripted" {
					chats = append(chats, s)
				}
			}
			require.Len(t, chats, 2)
			ca := otlpAttrs(chats[0])
			require.Equal(t, "chat", ca["gen_ai.operation.name"])
			require.Equal(t, "anthropic", ca["gen_ai.provider.name"])
			require.Equal(t, "scripted", ca["gen_ai.request.model"])
			require.Equal(t, "LLM", ca["openinference.span.kind"])
			require.Contains(t, ca, "gen_ai.usage.input_tokens")
			require.Equal(t, tracepb.Span_SPAN_KIND_CLIENT, chats[0].GetKind())
			in, out := ca["gen_ai.input.messages"].(string), ca["gen_ai.output.messages"].(string)
			require.JSONEq(t, `[{"role":"user","parts":[{"type":"text","content":"I live in Lyon"}]}]`, in)
			require.JSONEq(t, `[{"role":"assistant","parts":[{"type":"tool_call","id":"s1","name":"set_state","arguments":{"values":{"city":"Lyon"}}}],"finish_reason":"tool_call"}]`, out)
			require.Contains(t, ca["gen_ai.system_instructions"], "Sign requests with [redacted].")
			require.Equal(t, in, ca["input.value"])

			tool := byName["execute_tool set_state"]
			require.NotNil(t, tool)
			ta := otlpAttrs(tool)
			require.Equal(t, "execute_tool", ta["gen_ai.operation.name"])
			require.Equal(t, "set_state", ta["gen_ai.tool.name"])
			require.Equal(t, "s1", ta["gen_ai.tool.call.id"])
			for _, s := range spans {
				require.Equal(t, callerTrace, hex.EncodeToString(s.GetTraceId()))
				for _, a := range s.GetAttributes() {
					require.NotContains(t, a.GetValue().GetStringValue(), secretToken, "span %s attribute %s", s.GetName(), a.GetKey())
				}
			}
			rcv.mu.Lock()
			require.Contains(t, rcv.services, "troupe-test")
			rcv.mu.Unlock()

			// The trace store has the conversation too, and the console
			// shows it; neither has the secret.
			stored := storedSpans(t, ts, "", ownTrace)
			var second map[string]string
			for _, s := range stored {
				if s.Kind == telemetry.KindModel && strings.Contains(s.Attributes[telemetry.InputMessagesAttribute], "tool_call_response") {
					second = s.Attributes
				}
			}
			require.NotNil(t, second, "the second request sends the tool's result")
			require.JSONEq(t, `[{"role":"user","parts":[{"type":"text","content":"I live in Lyon"}]},`+
				`{"role":"assistant","parts":[{"type":"tool_call","id":"s1","name":"set_state","arguments":{"values":{"city":"Lyon"}}}]},`+
				`{"role":"tool","parts":[{"type":"tool_call_response","id":"s1","response":"{\"city\":\"Lyon\"}"}]}]`, second[telemetry.InputMessagesAttribute])
			require.JSONEq(t, `[{"role":"assistant","parts":[{"type":"text","content":"noted"}],"finish_reason":"stop"}]`, second[telemetry.OutputMessagesAttribute])
			resp, page := ts.page(http.MethodGet, "/ui/traces/"+ownTrace, "", nil)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Contains(t, page, `data-testid="conversation"`)
			require.Contains(t, page, `data-testid="chat-message" data-role="tool"`)
			require.Contains(t, page, `<code>set_state</code>`)
			require.Contains(t, page, "I live in Lyon")
			require.NotContains(t, page, secretToken)
		})
	}
}

// TestOTLPEndpointDown: with the collector's port closed, runs answer as
// fast as without export and the spans are dropped and counted (the
// Prometheus counter rises).
func TestOTLPEndpointDown(t *testing.T) {
	t.Parallel()
	for _, protocol := range []string{otlp.ProtocolGRPC, otlp.ProtocolHTTP} {
		t.Run(protocol, func(t *testing.T) {
			t.Parallel()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			closed := "http://" + ln.Addr().String()
			require.NoError(t, ln.Close())
			exp := startExporter(t, protocol, closed)
			ts := startServer(t, withTracer(func(tr *telemetry.Tracer) { tr.Export(exp) }))
			ts.metrics.SetExportSource(func() (int, uint64) { q, d, _ := exp.Stats(); return q, d })
			for range 5 {
				start := time.Now()
				ts.json(http.MethodPost, "/agents/calc/runs", "", `{"message":"2+2","stream":false}`, http.StatusOK, nil)
				require.Less(t, time.Since(start), 2*time.Second, "a run never waits for the collector")
			}
			require.Eventually(t, func() bool { _, d, _ := exp.Stats(); return d >= 5 }, 10*time.Second, 20*time.Millisecond)
			_, _, sent := exp.Stats()
			require.Zero(t, sent)
			_, body, _ := ts.do(http.MethodGet, "/metrics/prometheus", "", "", "")
			require.Regexp(t, `(?m)^troupe_otlp_spans_dropped_total [1-9]`, body)
		})
	}
}

// TestTraceContentOff: trace: {content: false} on an agent, the global
// switch, and the switch for user-bound keys each keep the conversation off
// model-request spans; the other runs keep it.
func TestTraceContentOff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, path, key string
		policy          telemetry.ContentPolicy
		want            bool
	}{
		{"on", "/agents/keeper/runs", aliceKey, telemetry.ContentPolicy{Content: telemetry.Content{Enabled: true}}, true},
		{"agent content false", "/agents/quiet/runs", aliceKey, telemetry.ContentPolicy{Content: telemetry.Content{Enabled: true}}, false},
		{"globally off", "/agents/keeper/runs", aliceKey, telemetry.ContentPolicy{}, false},
		{"bound keys off", "/agents/keeper/runs", aliceKey, telemetry.ContentPolicy{Content: telemetry.Content{Enabled: true}, SkipBoundKeys: true}, false},
		{"bound keys off, admin key", "/agents/keeper/runs", adminKey, telemetry.ContentPolicy{Content: telemetry.Content{Enabled: true}, SkipBoundKeys: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			script := fake.New(fake.Step{Content: "hello"})
			ts := startServer(t, withKeys(keys), withProvider("anthropic", script), withSpecs(otelAgents), withEnv("SECRET_TOKEN", secretToken),
				withTracer(func(tr *telemetry.Tracer) { tr.RecordContent(tc.policy) }))
			id, _ := postTracedRun(t, ts, tc.path, tc.key, `{"message":"hi","stream":false}`, "")
			var models int
			for _, s := range storedSpans(t, ts, tc.key, id) {
				if s.Kind != telemetry.KindModel {
					continue
				}
				models++
				_, has := s.Attributes[telemetry.InputMessagesAttribute]
				require.Equal(t, tc.want, has)
				_, has = s.Attributes[telemetry.OutputMessagesAttribute]
				require.Equal(t, tc.want, has)
			}
			require.Equal(t, 1, models)
			resp, page := ts.page(http.MethodGet, "/ui/traces/"+id, tc.key, nil)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, tc.want, strings.Contains(page, `data-testid="conversation"`))
		})
	}
}

// discardCollector accepts OTLP/HTTP exports without decoding them: the
// benchmark measures what exporting costs Troupe, not a collector.
type discardCollector struct{}

func (discardCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/x-protobuf")
}

// BenchmarkOTLPOverhead compares the instant-model run at concurrency 8
// with tracing to a discarding sink, with the conversation recorded, and
// with OTLP export (HTTP/protobuf to a loopback collector that discards,
// and gRPC to the decoding receiver): the difference in cpu-µs/run is
// what export costs a run.
func BenchmarkOTLPOverhead(b *testing.B) {
	collector := func(b *testing.B, protocol string) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(b, err)
		if protocol == otlp.ProtocolGRPC {
			srv := grpc.NewServer()
			collectortrace.RegisterTraceServiceServer(srv, &discardTraces{})
			go func() { _ = srv.Serve(ln) }()
			b.Cleanup(srv.Stop)
		} else {
			srv := &http.Server{Handler: discardCollector{}, ReadHeaderTimeout: 5 * time.Second}
			go func() { _ = srv.Serve(ln) }()
			b.Cleanup(func() { _ = srv.Close() })
		}
		return "http://" + ln.Addr().String()
	}
	exporter := func(b *testing.B, protocol string) *otlp.Exporter {
		exp, err := otlp.New(b.Context(), otlp.Options{Endpoint: collector(b, protocol), Protocol: protocol})
		require.NoError(b, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = exp.Run(ctx) }()
		b.Cleanup(func() {
			cancel()
			<-done
			_, dropped, sent := exp.Stats()
			b.Logf("spans sent %d, dropped %d", sent, dropped)
			_ = exp.Shutdown(context.Background())
		})
		return exp
	}
	for _, tc := range []struct {
		name  string
		setup func(b *testing.B) func(*telemetry.Tracer)
	}{
		{"discard", func(*testing.B) func(*telemetry.Tracer) { return func(*telemetry.Tracer) {} }},
		{"discard+content", func(*testing.B) func(*telemetry.Tracer) { return contentOn }},
		{"otlp-http", func(b *testing.B) func(*telemetry.Tracer) {
			exp := exporter(b, otlp.ProtocolHTTP)
			return func(tr *telemetry.Tracer) { tr.Export(exp) }
		}},
		{"otlp-http+content", func(b *testing.B) func(*telemetry.Tracer) {
			exp := exporter(b, otlp.ProtocolHTTP)
			return func(tr *telemetry.Tracer) { contentOn(tr); tr.Export(exp) }
		}},
		{"otlp-grpc+content", func(b *testing.B) func(*telemetry.Tracer) {
			exp := exporter(b, otlp.ProtocolGRPC)
			return func(tr *telemetry.Tracer) { contentOn(tr); tr.Export(exp) }
		}},
	} {
		b.Run(tc.name+"/c=8", func(b *testing.B) {
			ts := startServer(b, withTraces(discardReader{}), withTracer(tc.setup(b)))
			ts.v.quiet = true
			runsPerSecond(b, ts, 8, `{"message":"hi","stream":false}`)
		})
	}
}

// discardTraces is a gRPC trace service that keeps nothing.
type discardTraces struct {
	collectortrace.UnimplementedTraceServiceServer
}

func (*discardTraces) Export(context.Context, *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// TestOTLPMetrics: the key run metrics (runs, durations, tokens) reach an
// in-process OTLP/HTTP receiver that decodes the real protobuf.
func TestOTLPMetrics(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	got := map[string]bool{}
	var runs int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req collectormetrics.ExportMetricsServiceRequest
		if r.URL.Path != "/v1/metrics" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "want ExportMetricsServiceRequest at /v1/metrics", http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, rm := range req.GetResourceMetrics() {
			for _, sm := range rm.GetScopeMetrics() {
				for _, m := range sm.GetMetrics() {
					got[m.GetName()] = true
					if m.GetName() == "troupe.runs" {
						for _, p := range m.GetSum().GetDataPoints() {
							runs = max(runs, p.GetAsInt())
						}
					}
				}
			}
		}
		b, _ := proto.Marshal(&collectormetrics.ExportMetricsServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(b)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	m, err := otlp.NewMetrics(t.Context(), otlp.MetricsOptions{Endpoint: "http://" + ln.Addr().String(), Protocol: otlp.ProtocolHTTP, Interval: 50 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	ts := startServer(t, withObserver(m))
	for range 2 {
		ts.json(http.MethodPost, "/agents/writer/runs", "", `{"message":"hi","stream":false}`, http.StatusOK, nil)
	}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return got["troupe.runs"] && got["troupe.run.duration"] && got["gen_ai.client.token.usage"] && runs == 2
	}, 10*time.Second, 20*time.Millisecond)
}
