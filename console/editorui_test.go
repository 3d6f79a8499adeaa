package console_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/web"
)

// TestEditorPageIsForAdmins: the editor page, its schema and the "Edit
// file" and "New …" links are an administrator's; only the editor page
// loads the editor's bundle, by its versioned URL.
func TestEditorPageIsForAdmins(t *testing.T) {
	const admin, reader = "sk-admin-0123456789abcdef", "sk-reader-0123456789abcdef"
	ts := startServer(t, withKeys(admin+"=admin,"+reader+"=agents:read+sessions:read"))
	addWorkflows(t, ts, admin)
	script := `src="/static/editor/editor.js?v=` + web.Versions()["editor/editor.js"] + `"`
	tests := []struct {
		name, path, key string
		status          int
		has, hasNot     []string
	}{
		{"editor", "/ui/editor?path=specs.yaml", admin, http.StatusOK,
			[]string{script, `href="/static/editor/editor.css?v=`, `data-schema="/ui/editor/schema.json?v=`, `data-testid="editor-page"`}, nil},
		{"editor refused", "/ui/editor", reader, http.StatusForbidden, nil, []string{script}},
		{"schema refused", "/ui/editor/schema.json", reader, http.StatusForbidden, nil, nil},
		{"agent", "/ui/agents/helpdesk", admin, http.StatusOK, []string{`href="/ui/editor?path=specs.yaml" class="edit-link" data-testid="edit-file"`}, []string{"editor.js"}},
		{"agent read-only", "/ui/agents/helpdesk", reader, http.StatusOK, nil, []string{`data-testid="edit-file"`}},
		{"team", "/ui/teams/crew", admin, http.StatusOK, []string{`href="/ui/editor?path=specs.yaml"`}, nil},
		{"workflow", "/ui/workflows/pipeline", admin, http.StatusOK, []string{`href="/ui/editor?path=workflows.yaml"`}, nil},
		{"workflow read-only", "/ui/workflows/pipeline", reader, http.StatusOK, nil, []string{`data-testid="edit-file"`}},
		{"config", "/ui/config", admin, http.StatusOK,
			[]string{`href="/ui/editor?path=workflows.yaml"`, `href="/ui/editor?new=agent"`, `href="/ui/editor?new=team"`, `href="/ui/editor?new=workflow"`}, nil},
		{"config read-only", "/ui/config", reader, http.StatusOK, nil, []string{`data-testid="edit-file"`, `/ui/editor?new=`}},
		{"overview", "/", admin, http.StatusOK, nil, []string{"editor.js", "editor.css"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := ts.page(http.MethodGet, tt.path, tt.key, nil, "Accept", "text/html")
			require.Equal(t, tt.status, resp.StatusCode, body)
			for _, s := range tt.has {
				require.Contains(t, body, s)
			}
			for _, s := range tt.hasNot {
				require.NotContains(t, body, s)
			}
		})
	}
}

// TestEditorSchemaIsCachedByVersion: the schema the editor completes from is
// the spec language's, with the builtin tools; at the page's versioned URL
// it is cached for good, elsewhere revalidated.
func TestEditorSchemaIsCachedByVersion(t *testing.T) {
	ts := startServer(t)
	_, page := ts.page(http.MethodGet, "/ui/editor", "", nil)
	url := between(t, page, `data-schema="`, `"`)
	require.Regexp(t, `^/ui/editor/schema\.json\?v=[0-9a-f]{12}$`, url)

	resp, body := ts.page(http.MethodGet, url, "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "public, max-age=31536000, immutable", resp.Header.Get("Cache-Control"))
	require.Equal(t, "application/schema+json", resp.Header.Get("Content-Type"))
	var schema struct {
		Properties struct {
			Kind struct {
				Enum []string `json:"enum"`
			} `json:"kind"`
		} `json:"properties"`
		Defs map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"$defs"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &schema))
	require.Contains(t, schema.Properties.Kind.Enum, "Agent")
	require.Contains(t, schema.Defs["Agent"].Properties, "model")
	require.Contains(t, string(schema.Defs["Tool"].Properties["type"]), `"calculator"`, "builtin tools are Tool types")

	resp, again := ts.page(http.MethodGet, "/ui/editor/schema.json?v=old", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "no-cache", resp.Header.Get("Cache-Control"))
	require.Equal(t, body, again)
}

// between answers the text of s between the first before and the next after.
func between(t *testing.T, s, before, after string) string {
	t.Helper()
	_, rest, ok := strings.Cut(s, before)
	require.True(t, ok, "no %q", before)
	in, _, ok := strings.Cut(rest, after)
	require.True(t, ok, "no %q after %q", after, before)
	return in
}
