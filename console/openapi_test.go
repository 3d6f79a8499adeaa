package console_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/console"
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
	require.Contains(t, page, "curl -N -X POST "+ts.url+"/agents/calc/runs")
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

// consolePage reports whether a route serves the browser console (pages,
// their forms and static assets) rather than the API the document
// describes.
func consolePage(path string) bool {
	return path == "/" || path == "/ui" || strings.HasPrefix(path, "/ui/") || strings.HasPrefix(path, "/static/") || path == "/favicon.ico"
}

// documents reports whether the OpenAPI path docPath describes the gin
// route path: literal segments equal, a route's :param or *param matching a
// {param} or any concrete segment (the per-agent run endpoints).
func documents(docPath, route string) bool {
	d, r := strings.Split(docPath, "/"), strings.Split(route, "/")
	if len(d) != len(r) {
		return false
	}
	for i := range r {
		param := strings.HasPrefix(r[i], ":") || strings.HasPrefix(r[i], "*")
		if param || d[i] == r[i] {
			continue
		}
		return false
	}
	return true
}

// TestOpenAPICoversEveryRoute fails when the server registers an API route
// that /openapi.json does not document. It walks whatever routes the
// server's gin engine has, so routes added anywhere (in later packages
// too) are held to it.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	t.Parallel()
	ts := startServer(t) // knowledge, traces and Prometheus metrics all on
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	ts.json(http.MethodGet, "/openapi.json", "", "", http.StatusOK, &doc)
	var missing []string
	routes := console.Routes(ts.srv)
	require.NotEmpty(t, routes)
	for _, r := range routes {
		if consolePage(r.Path) {
			continue
		}
		found := false
		for p, ops := range doc.Paths {
			if _, ok := ops[strings.ToLower(r.Method)]; ok && documents(p, r.Path) {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, r.Method+" "+r.Path)
		}
	}
	require.Empty(t, missing, "routes the OpenAPI document leaves out")

	for _, tc := range []struct {
		doc, route string
		want       bool
	}{
		{"/agents/{agent_id}", "/agents/:id", true},
		{"/agents/calc/runs", "/agents/:id/runs", true},
		{"/agents/calc/runs", "/agents/:id", false},
		{"/sessions", "/sessions/:id", false},
		{"/v1/models", "/models", false},
	} {
		require.Equal(t, tc.want, documents(tc.doc, tc.route), "%s documents %s", tc.doc, tc.route)
	}
}

// TestOpenAPISchemasMatchResponses: the schemas are generated from the wire
// types, so every field a real response carries is in its schema.
func TestOpenAPISchemasMatchResponses(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]any `json:"properties"`
				Required   []string       `json:"required"`
			} `json:"schemas"`
		} `json:"components"`
	}
	ts.json(http.MethodGet, "/openapi.json", "", "", http.StatusOK, &doc)

	var run map[string]any
	ts.json(http.MethodPost, "/agents/calc/runs", "", `{"message":"calc: 6*7","stream":false}`, http.StatusOK, &run)
	var runs []map[string]any
	ts.json(http.MethodGet, "/sessions/"+run["session_id"].(string)+"/runs", "", "", http.StatusOK, &runs)
	var agent, session map[string]any
	ts.json(http.MethodGet, "/agents/calc", "", "", http.StatusOK, &agent)
	ts.json(http.MethodGet, "/sessions/"+run["session_id"].(string), "", "", http.StatusOK, &session)
	var config, kbConfig, completion map[string]any
	ts.json(http.MethodGet, "/config", "", "", http.StatusOK, &config)
	ts.json(http.MethodGet, "/knowledge/config", "", "", http.StatusOK, &kbConfig)
	ts.json(http.MethodPost, "/v1/chat/completions", "", `{"model":"calc","messages":[{"role":"user","content":"calc: 6*7"}]}`, http.StatusOK, &completion)
	tests := []struct {
		schema string
		body   map[string]any
	}{
		{"Run", run},
		{"Run", runs[0]},
		{"ToolCall", run["tools"].([]any)[0].(map[string]any)},
		{"Metrics", run["metrics"].(map[string]any)},
		{"Agent", agent},
		{"Model", agent["model"].(map[string]any)},
		{"Session", session},
		{"Config", config},
		{"ConfigAgent", config["agents"].([]any)[0].(map[string]any)},
		{"ConfigTeam", config["teams"].([]any)[0].(map[string]any)},
		{"ConfigFile", config["files"].([]any)[0].(map[string]any)},
		{"ObjectStatus", config["objects"].([]any)[0].(map[string]any)},
		{"Reload", config["reload"].(map[string]any)},
		{"KnowledgeConfig", kbConfig},
		{"KnowledgeBase", kbConfig["knowledge_bases"].([]any)[0].(map[string]any)},
		{"Chunking", kbConfig["knowledge_bases"].([]any)[0].(map[string]any)["chunking"].(map[string]any)},
		{"ChatCompletion", completion},
		{"ChatChoice", completion["choices"].([]any)[0].(map[string]any)},
		{"ChatUsage", completion["usage"].(map[string]any)},
	}
	for _, tc := range tests {
		s, ok := doc.Components.Schemas[tc.schema]
		require.True(t, ok, tc.schema)
		for k := range tc.body {
			require.Contains(t, s.Properties, k, "%s has %s", tc.schema, k)
		}
		for _, k := range s.Required {
			require.Contains(t, tc.body, k, "%s always has %s", tc.schema, k)
		}
	}
}
