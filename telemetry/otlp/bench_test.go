package otlp

import (
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/telemetry"
)

// runSpans builds the spans of an instant-model run, with one tool call
// or none, as the tracer records them, with its conversation.
func runSpans(withTool bool) []telemetry.Span {
	now := time.Now()
	tr := telemetry.NewTrace(telemetry.RunInfo{Kind: "agent", Target: "writer", RunID: "r1", SessionID: "s1", UserID: "u1", Input: "hi", Model: "gpt-4o-mini", Provider: "openai"},
		telemetry.Parent{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7"}, now, 0)
	tr.SetContent(telemetry.Content{Enabled: true})
	x := &event.Exchange{Render: func(int, int) (string, string, string) {
		return `[{"type":"text","content":"You write."}]`, `[{"role":"user","parts":[{"type":"text","content":"hi"}]}]`,
			`[{"role":"assistant","parts":[{"type":"text","content":"hello"}],"finish_reason":"stop"}]`
	}}
	if withTool {
		tr.Observe(event.Event{Type: event.ToolCallStarted, RunID: "r1", CreatedAt: now, Tool: &event.ToolCall{ID: "c1", Name: "calculator", Args: map[string]any{"expression": "1+1"}, StartedAt: now}})
		tr.Observe(event.Event{Type: event.ToolCallCompleted, RunID: "r1", CreatedAt: now, Tool: &event.ToolCall{ID: "c1", Name: "calculator", Result: "2", StartedAt: now, Duration: time.Millisecond}})
	}
	tr.Observe(event.Event{Type: event.ModelRequestCompleted, RunID: "r1", CreatedAt: now, Model: "gpt-4o-mini", Provider: "openai",
		Metrics: &event.Metrics{InputTokens: 10, OutputTokens: 5, Duration: time.Millisecond}, Exchange: x})
	tr.StoreSpan("store.finish_run", now, now, nil)
	return tr.Finish(now.Add(2*time.Millisecond), telemetry.StatusOK, "", "", event.Metrics{InputTokens: 10, OutputTokens: 5})
}

// BenchmarkExport measures what OTLP export costs per run: joining the
// caller's trace (on the run's path), then the batch's conversion,
// protobuf encoding and HTTP POST to a loopback collector that discards it
// (the exporter goroutine's share), in batches of 256 runs; for a run of
// root, model request and store write, and one with a tool call too.
func BenchmarkExport(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Close() })
	for _, tc := range []struct {
		name string
		tool bool
	}{{"instant", false}, {"tool", true}} {
		b.Run(tc.name, func(b *testing.B) {
			exp, err := New(b.Context(), Options{Endpoint: "http://" + ln.Addr().String(), Protocol: ProtocolHTTP})
			require.NoError(b, err)
			spans := runSpans(tc.tool)
			const batch = 256
			queued := make([]telemetry.Span, 0, batch*len(spans))
			b.ReportAllocs()
			cpu0 := cpuTime(b)
			for i := 0; b.Loop(); i++ {
				queued = append(queued, join(spans)...)
				if (i+1)%batch == 0 {
					if err := exp.sink.Write(b.Context(), queued); err != nil {
						b.Fatal(err)
					}
					queued = queued[:0]
				}
			}
			// CPU of the whole process (the collector's reading included)
			// varies less than wall time on a shared machine.
			b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-µs/run")
		})
	}
}

// cpuTime returns the CPU time the process used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
