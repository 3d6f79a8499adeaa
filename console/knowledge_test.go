package console_test

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func upload(t *testing.T, ts *testServer, key string, fields map[string]string, file string) (int, map[string]any) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for k, v := range fields {
		require.NoError(t, w.WriteField(k, v))
	}
	if file != "" {
		data, err := os.ReadFile(file)
		require.NoError(t, err)
		fw, err := w.CreateFormFile("file", filepath.Base(file))
		require.NoError(t, err)
		_, err = fw.Write(data)
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	status, body, _ := ts.do(http.MethodPost, "/knowledge/content?knowledge_id=docs", key, w.FormDataContentType(), b.String())
	var out map[string]any
	_ = json.Unmarshal([]byte(body), &out)
	return status, out
}

func waitCompleted(t *testing.T, ts *testServer, id string) map[string]any {
	t.Helper()
	var st map[string]any
	require.Eventually(t, func() bool {
		ts.json(http.MethodGet, "/knowledge/content/"+id+"/status", "", "", http.StatusOK, &st)
		require.NotEqual(t, "failed", st["status"], st)
		return st["status"] == "completed"
	}, 15*time.Second, 10*time.Millisecond)
	return st
}

func search(t *testing.T, ts *testServer, query, mode string) []map[string]any {
	t.Helper()
	var res struct {
		Data []map[string]any `json:"data"`
	}
	body, _ := json.Marshal(map[string]any{"query": query, "knowledge_id": "docs", "search_type": mode, "max_results": 3})
	ts.json(http.MethodPost, "/knowledge/search", "", string(body), http.StatusOK, &res)
	return res.Data
}

// TestKnowledgeRoundTrip uploads each supported file type, waits for it to be
// ingested, and finds a passage unique to it.
func TestKnowledgeRoundTrip(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	samples := map[string]string{
		"guide.md":     "Homebrew install troupe macOS",
		"notes.txt":    "Ship the knowledge base feature in April",
		"products.csv": "Sturdy widget ships in two boxes",
		"catalog.json": "shop currency EUR, city Lyon",
		"page.html":    "drinks made to order opening hours",
		"manual.pdf":   "Hybrid search combines vector similarity with keyword ranking",
	}
	ids := map[string]string{}
	for file := range samples {
		status, out := upload(t, ts, "", map[string]string{"description": "sample " + file, "metadata": `{"sample": true}`}, filepath.Join("..", "engine", "knowledge", "reader", "testdata", file))
		require.Equal(t, http.StatusAccepted, status, out)
		require.Equal(t, "processing", out["status"])
		require.Equal(t, file, out["name"])
		ids[file] = out["id"].(string)
	}
	for file, query := range samples {
		st := waitCompleted(t, ts, ids[file])
		require.Greater(t, st["chunks"], 0.0, file)
		for _, mode := range []string{"vector", "keyword", "hybrid"} {
			hits := search(t, ts, query, mode)
			require.NotEmpty(t, hits, "%s %s", file, mode)
			var top []any
			for _, h := range hits {
				top = append(top, h["content_id"])
			}
			if mode == "keyword" {
				require.Equal(t, ids[file], top[0], "%s: keyword search ranks it first", file)
			} else {
				require.Contains(t, top, ids[file], "%s: %s search finds it in the top 3", file, mode)
			}
		}
	}
	pdf := search(t, ts, "Chapter 2 Configuration TROUPE_EMBEDDER", "hybrid")
	require.Equal(t, 2.0, pdf[0]["page"], "PDF chunks know their page")

	// Same bytes again: the same document, not a new one.
	status, out := upload(t, ts, "", nil, filepath.Join("..", "engine", "knowledge", "reader", "testdata", "notes.txt"))
	require.Equal(t, http.StatusAccepted, status)
	require.Equal(t, ids["notes.txt"], out["id"])
	var list struct {
		Data []map[string]any `json:"data"`
		Meta map[string]any   `json:"meta"`
	}
	ts.json(http.MethodGet, "/knowledge/content?knowledge_id=docs&limit=100", "", "", http.StatusOK, &list)
	require.EqualValues(t, 6, list.Meta["total_count"])

	// An agent searches the knowledge base and reports what it used.
	frames, _ := ts.stream("/agents/helpdesk/runs", "", "application/json", `{"message":"When does the knowledge base feature ship?"}`)
	done := frames[len(frames)-1]
	require.Equal(t, "RunCompleted", done.Event)
	refs := done.Data["references"].([]any)
	require.NotEmpty(t, refs)
	require.Equal(t, ids["notes.txt"], refs[0].(map[string]any)["document_id"])
	require.Equal(t, "notes.txt", refs[0].(map[string]any)["document_name"])
	var runs []map[string]any
	ts.json(http.MethodGet, "/sessions/"+done.Data["session_id"].(string)+"/runs", "", "", http.StatusOK, &runs)
	require.Equal(t, refs, runs[0]["references"], "the stored run keeps its references")

	// Patch, delete (vectors too).
	ts.json(http.MethodPatch, "/knowledge/content/"+ids["notes.txt"], "", `{"name":"meeting-notes.txt"}`, http.StatusOK, &out)
	require.Equal(t, "meeting-notes.txt", out["name"])
	ts.json(http.MethodDelete, "/knowledge/content/"+ids["notes.txt"], "", "", http.StatusNoContent, nil)
	ts.json(http.MethodGet, "/knowledge/content/"+ids["notes.txt"], "", "", http.StatusNotFound, nil)
	for _, h := range search(t, ts, samples["notes.txt"], "keyword") {
		require.NotEqual(t, ids["notes.txt"], h["content_id"], "deleted documents leave no chunks behind")
	}
}

func TestKnowledgeUploadErrors(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withKeys(keys))
	status, out := upload(t, ts, adminKey, nil, filepath.Join("..", "engine", "knowledge", "reader", "testdata", "logo.png"))
	require.Equal(t, http.StatusUnsupportedMediaType, status, out)
	require.Contains(t, out["detail"], "markdown")
	status, out = upload(t, ts, adminKey, map[string]string{"text_content": strings.Repeat("x", 10)}, "")
	require.Equal(t, http.StatusAccepted, status, out)
	status, _ = upload(t, ts, adminKey, map[string]string{}, "")
	require.Equal(t, http.StatusUnprocessableEntity, status)
	status, _ = upload(t, ts, readerKey, map[string]string{"text_content": "x"}, "")
	require.Equal(t, http.StatusForbidden, status, "uploads need knowledge:write")
	status, out = upload(t, ts, adminKey, map[string]string{"text_content": "x", "metadata": "not json"}, "")
	require.Equal(t, http.StatusUnprocessableEntity, status, out)
	// Chunking overrides are bounded: a size of 1 made 180,000 chunks of a
	// 1 MB text.
	for _, f := range []map[string]string{
		{"text_content": "tiny chunks", "chunk_size": "1"},
		{"text_content": "huge chunks", "chunk_size": "1000000"},
		{"text_content": "overlap", "chunk_size": "64", "chunk_overlap": "64"},
		{"text_content": "strategy", "chunk_strategy": "words"},
	} {
		status, out = upload(t, ts, adminKey, f, "")
		require.Equal(t, http.StatusUnprocessableEntity, status, out)
	}
	status, out = upload(t, ts, adminKey, map[string]string{"text_content": "tiny chunks", "chunk_size": "1"}, "")
	require.Equal(t, http.StatusUnprocessableEntity, status, out)
	require.Equal(t, "invalid upload: chunk size 1 is out of range: use 32 to 8192 tokens", out["detail"])
	var cfg map[string]any
	ts.json(http.MethodGet, "/knowledge/config", adminKey, "", http.StatusOK, &cfg)
	require.NotEmpty(t, cfg["readers"])
	require.Equal(t, []any{"fixed", "recursive", "markdown"}, cfg["chunkers"])
	ts.json(http.MethodPost, "/knowledge/search", adminKey, `{"query":""}`, http.StatusUnprocessableEntity, nil)
	ts.json(http.MethodPost, "/knowledge/search", adminKey, `{"query":"x","search_type":"fuzzy"}`, http.StatusUnprocessableEntity, nil)
	// Filters that a store could not apply like the others are refused
	// whatever the store.
	for _, f := range []string{`{"a.b":"x"}`, `{"lang":null}`, `{"lang":{"k":1}}`, `{"lang":["en",["fr"]]}`} {
		ts.json(http.MethodPost, "/knowledge/search", adminKey, `{"query":"x","filters":`+f+`}`, http.StatusUnprocessableEntity, nil)
	}
	ts.json(http.MethodPost, "/knowledge/search", adminKey, `{"query":"x","filters":{"lang":["en","fr"],"year":2024}}`, http.StatusOK, nil)
	ts.json(http.MethodGet, "/knowledge/content/nope", adminKey, "", http.StatusNotFound, nil)
}
