package console_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestOpenAPIFollowsTheSnapshot checks the generated document and docs page
// describe one run endpoint per agent and team, with their descriptions, and
// change when the specs do.
func TestOpenAPIFollowsTheSnapshot(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	ts.json(http.MethodGet, "/openapi.json", "", "", http.StatusOK, &doc)
	require.Equal(t, "3.1.0", doc.OpenAPI)
	for _, p := range []string{"/agents/calc/runs", "/agents/writer/runs", "/agents/helpdesk/runs", "/teams/crew/runs"} {
		require.Contains(t, doc.Paths, p)
	}
	calc := doc.Paths["/agents/calc/runs"]["post"]
	require.Equal(t, "Run agent calc", calc["summary"])
	require.Contains(t, calc["description"], "Does arithmetic.")
	require.Contains(t, doc.Paths, "/v1/chat/completions")
	require.Contains(t, doc.Paths, "/sessions/{session_id}/runs")

	status, page, _ := ts.do(http.MethodGet, "/docs", "", "", "")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, page, "<code>/agents/calc/runs</code>")
	require.Contains(t, page, "curl -N -X POST http://127.0.0.1:7777/agents/calc/runs")
	require.NotContains(t, page, "<script", "the docs page needs no scripts or CDN")

	// A new agent gets its documented endpoint with the next reload.
	spec, err := os.ReadFile(filepath.Join(ts.dir, "specs.yaml"))
	require.NoError(t, err)
	added := string(spec) + "---\nkind: Agent\nname: newcomer\ndescription: Arrived by hot reload.\nmodel: echo\n"
	require.NoError(t, os.WriteFile(filepath.Join(ts.dir, "specs.yaml"), []byte(added), 0o644))
	ts.json(http.MethodPost, "/config/reload", "", "", http.StatusOK, nil)
	ts.json(http.MethodGet, "/openapi.json", "", "", http.StatusOK, &doc)
	require.Contains(t, doc.Paths["/agents/newcomer/runs"]["post"]["description"], "Arrived by hot reload.")
}

func TestModelsAndBulkDelete(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	var models []map[string]any
	ts.json(http.MethodGet, "/models", "", "", http.StatusOK, &models)
	require.Equal(t, []map[string]any{
		{"name": "echo", "model": "echo", "provider": "echo", "demo": true},
		{"name": "vendor", "model": "test-model", "provider": "openai"},
	}, models)

	var ids []string
	for range 3 {
		var run runJSON
		ts.json(http.MethodPost, "/agents/writer/runs", "", `{"message":"hi","stream":false}`, http.StatusOK, &run)
		ids = append(ids, run.SessionID)
	}
	ts.json(http.MethodDelete, "/sessions", "", `{"session_ids":["`+strings.Join(ids[:2], `","`)+`"]}`, http.StatusNoContent, nil)
	var page sessionPage
	ts.json(http.MethodGet, "/sessions", "", "", http.StatusOK, &page)
	require.Len(t, page.Data, 1)
	require.Equal(t, ids[2], page.Data[0].SessionID)
	ts.json(http.MethodDelete, "/sessions", "", `{"session_ids":[]}`, http.StatusUnprocessableEntity, nil)
}
