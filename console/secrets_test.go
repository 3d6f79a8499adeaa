package console_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestToolSecretsNotReflected: an upstream that echoes the Authorization
// header the HTTP tool sent (in a 401 body, or in a normal answer) must not
// put the credential into the run: not into the events, the stored run, the
// trace or the final answer (the echo model repeats tool results).
func TestToolSecretsNotReflected(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-upstream-token-4f9a"
	tests := []struct {
		name   string
		status int
	}{
		{"error body", http.StatusUnauthorized},
		{"result body", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				fmt.Fprintf(w, "you sent Authorization: %s; token %s", r.Header.Get("Authorization"),
					strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
			}))
			t.Cleanup(upstream.Close)
			ts := startServer(t, withSpecs(fmt.Sprintf(`kind: Tool
name: lookup
description: Looks things up.
type: http
url: %s/v1/lookup
headers:
  Authorization: Bearer %s
allowed_hosts: [127.0.0.1]
---
kind: Agent
name: prober
description: Calls lookup.
model: echo
tools: [lookup]
`, upstream.URL, secret)))

			body := `{"message":"go\n/call lookup {}","stream":true,"session_id":"","user_id":"u1"}`
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.url+"/agents/prober/runs", strings.NewReader(body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			sse, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode, string(sse))
			require.Contains(t, string(sse), "[redacted]", "the upstream's echo reached the run, redacted")
			require.NotContains(t, string(sse), secret)
			traceID := resp.Header.Get("X-Trace-Id")
			require.NotEmpty(t, traceID)

			frames := readFrames(t, strings.NewReader(string(sse)))
			sessionID, _ := frames[0].Data["session_id"].(string)
			require.NotEmpty(t, sessionID)
			status, runs, _ := ts.do(http.MethodGet, "/sessions/"+sessionID+"/runs", "", "", "")
			require.Equal(t, http.StatusOK, status, runs)
			require.Contains(t, runs, "[redacted]")
			require.NotContains(t, runs, secret)

			var trace string
			require.Eventually(t, func() bool {
				status, trace, _ = ts.do(http.MethodGet, "/traces/"+traceID, "", "", "")
				return status == http.StatusOK && strings.Contains(trace, "tool.call lookup")
			}, 10*time.Second, 20*time.Millisecond)
			require.NotContains(t, trace, secret)

			status, page, _ := ts.do(http.MethodGet, "/console/sessions/"+sessionID, "", "", "")
			if status == http.StatusOK {
				require.NotContains(t, page, secret)
			}
		})
	}
}
