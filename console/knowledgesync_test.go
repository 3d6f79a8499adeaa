package console_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/stretchr/testify/require"
)

// handbookKB is a knowledge base over Markdown files beside the specs.
const handbookKB = `
---
kind: Knowledge
name: handbook
sources: [handbook/*.md]
chunking: {strategy: recursive, size: 120, overlap: 20}
`

// syncCounts is the answer of POST /knowledge/{id}/sync.
type syncCounts struct {
	KnowledgeID string `json:"knowledge_id"`
	Added       int    `json:"added"`
	Updated     int    `json:"updated"`
	Deleted     int    `json:"deleted"`
	Unchanged   int    `json:"unchanged"`
	Failed      int    `json:"failed"`
}

// handbookDocs lists the handbook's documents by name once none is
// processing.
func handbookDocs(t *testing.T, ts *testServer) map[string]string {
	t.Helper()
	var list struct {
		Data []map[string]any `json:"data"`
	}
	ts.json(http.MethodGet, "/knowledge/content?knowledge_id=handbook&limit=50", adminKey, "", http.StatusOK, &list)
	out := map[string]string{}
	for _, d := range list.Data {
		if d["status"] != "completed" {
			return nil
		}
		out[d["name"].(string)] = d["id"].(string)
	}
	return out
}

// TestKnowledgeSyncRoute checks POST /knowledge/{id}/sync: it needs
// knowledge:write, knows only configured bases, and counts what it found;
// files written under the glob meanwhile are ingested by the watch without
// it, and a sync right after finds them unchanged.
func TestKnowledgeSyncRoute(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withKeys(keys), withSpecs(handbookKB))
	dir := filepath.Join(ts.dir, "handbook")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for i, topic := range []string{"onboarding laptops", "expense reports"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("page%d.md", i)), []byte("# "+topic+"\n\nHow "+topic+" work here.\n"), 0o644))
	}
	require.Eventually(t, func() bool { return len(handbookDocs(t, ts)) == 2 }, 5*time.Second, 20*time.Millisecond,
		"the watch ingests files added under the glob, with no YAML change")

	tests := []struct {
		name, path, key string
		status          int
		want            syncCounts
	}{
		{name: "unchanged", path: "/knowledge/handbook/sync", key: adminKey, status: http.StatusOK, want: syncCounts{KnowledgeID: "handbook", Unchanged: 2}},
		{name: "unknown base", path: "/knowledge/nope/sync", key: adminKey, status: http.StatusNotFound},
		{name: "read-only key", path: "/knowledge/handbook/sync", key: readerKey, status: http.StatusForbidden},
		{name: "no key", path: "/knowledge/handbook/sync", status: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, _ := ts.do(http.MethodPost, tt.path, tt.key, "", "")
			require.Equal(t, tt.status, status, body)
			if tt.status != http.StatusOK {
				return
			}
			var got syncCounts
			require.NoError(t, json.Unmarshal([]byte(body), &got))
			require.Equal(t, tt.want, got)
		})
	}
}

// TestConsoleSyncNow checks the knowledge page's "Sync now" form: a base to
// pick and a button, posting to a route that answers what changed and tells
// the page to count again.
func TestConsoleSyncNow(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withSpecs(handbookKB))
	_, body := ts.page("GET", "/ui/knowledge", "", nil)
	form := doc(t, body).Find("[data-testid=sync-form]")
	require.Equal(t, "/ui/knowledge/sync", form.AttrOr("hx-post", ""))
	var bases []string
	form.Find("option").Each(func(_ int, s *goquery.Selection) { bases = append(bases, s.AttrOr("value", "")) })
	require.Equal(t, []string{"docs", "handbook"}, bases)
	require.Equal(t, 1, form.Find("[data-testid=sync-now]").Length())
	require.Equal(t, 1, form.Find("#sync-result[data-testid=sync-result]").Length())

	resp, body := ts.page("POST", "/ui/knowledge/sync", "", url.Values{"knowledge_id": {"handbook"}}, "HX-Request", "true")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.Equal(t, "troupe-docs", resp.Header.Get("HX-Trigger"))
	require.Equal(t, "Synced handbook: 0 added, 0 updated, 0 deleted, 0 unchanged.", strings.Join(strings.Fields(body), " "))

	resp, body = ts.page("POST", "/ui/knowledge/sync", "", url.Values{"knowledge_id": {"nope"}}, "HX-Request", "true")
	require.Equal(t, http.StatusNotFound, resp.StatusCode, body)
}

// TestUploadByURLHonoursAllowedHosts checks uploads by URL through the API:
// a knowledge base listing 127.0.0.1 in allowed_hosts fetches a loopback
// page, while the egress guard refuses it for a base without, before any
// connection, saying which field to set.
func TestUploadByURLHonoursAllowedHosts(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		_, _ = w.Write([]byte("# Intranet\n\nThe intranet page about parking permits.\n"))
	}))
	t.Cleanup(srv.Close)
	ts := startServer(t, withSpecs("\n---\nkind: Knowledge\nname: intranet\nallowed_hosts: [127.0.0.1]\n"))
	tests := []struct {
		base    string
		status  int
		detail  string
		fetches int64
	}{
		{base: "docs", status: http.StatusUnprocessableEntity, detail: "loopback addresses are blocked; add 127.0.0.1 to allowed_hosts of knowledge docs to permit it"},
		{base: "intranet", status: http.StatusAccepted, fetches: 1},
	}
	for _, tt := range tests {
		t.Run(tt.base, func(t *testing.T) {
			before := hits.Load()
			form := url.Values{"knowledge_id": {tt.base}, "url": {srv.URL + "/parking.md"}}
			status, body, _ := ts.do(http.MethodPost, "/knowledge/content", "", "application/x-www-form-urlencoded", form.Encode())
			require.Equal(t, tt.status, status, body)
			require.Equal(t, tt.fetches, hits.Load()-before)
			var out map[string]any
			require.NoError(t, json.Unmarshal([]byte(body), &out))
			if tt.detail != "" {
				require.Contains(t, out["detail"], tt.detail)
				return
			}
			require.Equal(t, "parking.md", out["name"])
			waitCompleted(t, ts, out["id"].(string))
		})
	}
}
