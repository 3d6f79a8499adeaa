package mcp

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	sdkmcp "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/spec"
)

func TestStreamableHTTP(t *testing.T) {
	ms := newMemServer(t)
	handler := sdkmcp.NewStreamableHTTPHandler(func(*http.Request) *sdkmcp.Server { return ms.server }, nil)
	var (
		mu   sync.Mutex
		seen []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		handler.ServeHTTP(w, r)
	}))
	// Registered before newPool, so it runs after the pool has closed: the
	// client sessions say goodbye (DELETE) to a server that is still up, and
	// the server ends its side of them instead of keeping them open.
	t.Cleanup(srv.Close)

	log, logs := testLogger(t)
	p := newPool(t, Options{Logger: log})
	ts := p.Acquire(&spec.Tool{
		Meta:    spec.Meta{Name: "remote"},
		Type:    spec.ToolMCP,
		URL:     srv.URL + "/mcp",
		Headers: map[string]string{"authorization": "Bearer s3cret"},
		Allow:   []string{"add"},
	})
	tools, err := ts.Tools(t.Context())
	require.NoError(t, err)
	require.Equal(t, []string{"remote_add"}, names(tools))
	out, err := tools[0].Call(t.Context(), json.RawMessage(`{"a":20,"b":22}`))
	require.NoError(t, err)
	require.Equal(t, "42", out)
	p.Release(ts)

	mu.Lock()
	require.NotEmpty(t, seen)
	for _, h := range seen {
		require.Equal(t, "Bearer s3cret", h, "every request carries the configured header")
	}
	mu.Unlock()

	// A refused connection is reported with context, but without header values.
	bad := p.Acquire(&spec.Tool{
		Meta:    spec.Meta{Name: "remote"},
		Type:    spec.ToolMCP,
		URL:     srv.URL + "/mcp?token=querysecret",
		Headers: map[string]string{"Authorization": "Bearer wrong-token"},
	})
	_, err = bad.Tools(t.Context())
	require.ErrorContains(t, err, `connecting to MCP server "remote" (`+srv.URL+`/mcp): `)
	require.NotContains(t, err.Error(), "wrong-token")
	require.NotContains(t, logs.String(), "wrong-token")

	// Errors from net/http quote the URL: its query is left out.
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	unreachable := p.Acquire(&spec.Tool{Meta: spec.Meta{Name: "gone"}, Type: spec.ToolMCP, URL: gone.URL + "/mcp?token=querysecret"})
	_, err = unreachable.Tools(t.Context())
	require.ErrorContains(t, err, `connecting to MCP server "gone" (`+gone.URL+`/mcp): `)
	require.NotContains(t, err.Error(), "querysecret")
	require.NotContains(t, logs.String(), "querysecret")
	require.NotContains(t, logs.String(), "s3cret")
}
