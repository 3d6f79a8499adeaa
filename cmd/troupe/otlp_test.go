package main

import (
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// TestServeExportsOTLP: troupe serve with --otlp-endpoint sends every run's
// spans to an OTLP/HTTP collector (an in-process one decoding the real
// protobuf), the conversation on the chat span unless --trace-content=false,
// and flushes them when it stops.
func TestServeExportsOTLP(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		flags       []string
		wantContent bool
	}{
		{"content", nil, true},
		{"no content", []string{"--trace-content=false"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var spans []*tracepb.Span
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				var req collectortrace.ExportTraceServiceRequest
				if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
					http.Error(w, "want ExportTraceServiceRequest at /v1/traces", http.StatusBadRequest)
					return
				}
				mu.Lock()
				for _, rs := range req.GetResourceSpans() {
					for _, ss := range rs.GetScopeSpans() {
						spans = append(spans, ss.GetSpans()...)
					}
				}
				mu.Unlock()
				b, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
				_, _ = w.Write(b)
			})}
			go func() { _ = srv.Serve(ln) }()
			t.Cleanup(func() { _ = srv.Close() })

			p := startServe(t, t.TempDir(), append([]string{"--otlp-endpoint", "http://" + ln.Addr().String(), "--otlp-protocol", "http/protobuf"}, tc.flags...)...)
			p.postRun(t)
			p.stop() // flushes the exporter's queue
			mu.Lock()
			defer mu.Unlock()
			byName := map[string]map[string]string{}
			for _, s := range spans {
				attrs := map[string]string{}
				for _, a := range s.GetAttributes() {
					attrs[a.GetKey()] = a.GetValue().GetStringValue()
				}
				byName[s.GetName()] = attrs
			}
			require.Contains(t, byName, "invoke_agent a")
			require.Equal(t, "a", byName["invoke_agent a"]["gen_ai.agent.name"])
			chat, ok := byName["chat echo"]
			require.True(t, ok, "spans: %v", byName)
			require.Equal(t, "chat", chat["gen_ai.operation.name"])
			_, has := chat["gen_ai.input.messages"]
			require.Equal(t, tc.wantContent, has)
			require.Contains(t, p.logs.String(), "exporting spans over OTLP")
		})
	}
}
