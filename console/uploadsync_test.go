package console_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// wikiKB is a knowledge base over Markdown files beside the specs that may
// also fetch uploads by URL from loopback.
const wikiKB = `
---
kind: Knowledge
name: wiki
sources: [wiki/*.md]
allowed_hosts: [127.0.0.1]
chunking: {strategy: recursive, size: 120, overlap: 20}
`

// wikiDocs lists the wiki's documents by name (nil while one is
// processing).
func wikiDocs(t *testing.T, ts *testServer) map[string]map[string]any {
	t.Helper()
	var list struct {
		Data []map[string]any `json:"data"`
	}
	ts.json(http.MethodGet, "/knowledge/content?knowledge_id=wiki&limit=50", "", "", http.StatusOK, &list)
	out := map[string]map[string]any{}
	for _, d := range list.Data {
		if d["status"] != "completed" {
			return nil
		}
		out[d["name"].(string)] = d
	}
	return out
}

// wikiFinds reports whether a keyword search of the wiki returns a chunk
// containing word.
func wikiFinds(t *testing.T, ts *testServer, word string) bool {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": word, "knowledge_id": "wiki", "search_type": "keyword", "max_results": 5})
	require.NoError(t, err)
	var res struct {
		Data []map[string]any `json:"data"`
	}
	ts.json(http.MethodPost, "/knowledge/search", "", string(body), http.StatusOK, &res)
	for _, h := range res.Data {
		if c, _ := h["content"].(string); strings.Contains(c, word) {
			return true
		}
	}
	return false
}

// TestUploadByURLSurvivesSourceSync uploads a document by URL into a
// knowledge base whose YAML sources are a folder, then syncs the sources
// (POST /knowledge/{id}/sync, and the watch after a file is removed): the
// removed file's document is deleted, while the upload, which no YAML
// source names, keeps its document and chunks and is still found.
func TestUploadByURLSurvivesSourceSync(t *testing.T) {
	t.Parallel()
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("# Parking\n\nThe intranet page about zeppelin parking permits.\n"))
	}))
	t.Cleanup(page.Close)
	ts := startServer(t, withSpecs(wikiKB))
	dir := filepath.Join(ts.dir, "wiki")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for name, topic := range map[string]string{"laptops.md": "onboarding laptops", "expenses.md": "expense reports"} {
		// Written beside and renamed in, as editors save: the watch could
		// otherwise ingest a file created but not yet written, and the
		// complete one would then count as an update in the sync below.
		tmp := filepath.Join(dir, name+".tmp")
		require.NoError(t, os.WriteFile(tmp, []byte("# "+topic+"\n\nHow "+topic+" work here.\n"), 0o644))
		require.NoError(t, os.Rename(tmp, filepath.Join(dir, name)))
	}
	require.Eventually(t, func() bool { return len(wikiDocs(t, ts)) == 2 }, 5*time.Second, 20*time.Millisecond)

	form := url.Values{"knowledge_id": {"wiki"}, "url": {page.URL + "/parking.md"}}
	status, body, _ := ts.do(http.MethodPost, "/knowledge/content", "", "application/x-www-form-urlencoded", form.Encode())
	require.Equal(t, http.StatusAccepted, status, body)
	var up map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &up))
	id := up["id"].(string)
	waitCompleted(t, ts, id)
	docs := wikiDocs(t, ts)
	require.Len(t, docs, 3)
	chunks := docs["parking.md"]["chunks"]
	require.NotZero(t, chunks, "the upload was chunked")
	require.True(t, wikiFinds(t, ts, "zeppelin"))

	// survives checks that the upload is still there, with its chunks, and
	// found.
	survives := func(t *testing.T, step string) {
		t.Helper()
		docs := wikiDocs(t, ts)
		require.Contains(t, docs, "parking.md", "%s: the upload by URL is kept", step)
		require.Equal(t, id, docs["parking.md"]["id"], step)
		require.Equal(t, chunks, docs["parking.md"]["chunks"], step)
		require.True(t, wikiFinds(t, ts, "zeppelin"), "%s: the upload is still searchable", step)
	}

	// A sync with every source in place changes nothing.
	var got syncCounts
	ts.json(http.MethodPost, "/knowledge/wiki/sync", "", "", http.StatusOK, &got)
	require.Equal(t, syncCounts{KnowledgeID: "wiki", Unchanged: 2}, got)
	survives(t, "after POST sync")

	// A removed file: the watch deletes its document and nothing else.
	require.NoError(t, os.Remove(filepath.Join(dir, "expenses.md")))
	require.Eventually(t, func() bool {
		docs := wikiDocs(t, ts)
		_, gone := docs["expenses.md"]
		return docs != nil && !gone
	}, 5*time.Second, 20*time.Millisecond, "the watch deletes the removed file's document")
	survives(t, "after the folder change")
	require.False(t, wikiFinds(t, ts, "expense"), "the removed file is not found")

	// And a sync after it finds the rest unchanged.
	ts.json(http.MethodPost, "/knowledge/wiki/sync", "", "", http.StatusOK, &got)
	require.Equal(t, syncCounts{KnowledgeID: "wiki", Unchanged: 1}, got)
	survives(t, "after a second POST sync")
	require.Equal(t, []string{"laptops.md", "parking.md"}, slices.Sorted(maps.Keys(wikiDocs(t, ts))))
}
