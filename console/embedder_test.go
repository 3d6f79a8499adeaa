package console_test

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/knowledge/embed"
)

// embeddingsCall is what the fake embeddings API saw of one request.
type embeddingsCall struct {
	Path, Auth, Tenant string
	Model              string
	Input              []string
	Dimensions         int
}

// TestKnowledgeEmbedderThroughNamedModel: a knowledge base whose embedder
// names a Model document embeds through that Model's endpoint (base URL,
// key, headers from the environment), on an OpenAI-wire fake server on
// loopback; uploads are searchable by vector, and the query goes to the
// same endpoint.
func TestKnowledgeEmbedderThroughNamedModel(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		calls []embeddingsCall
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Model      string   `json:"model"`
			Input      []string `json:"input"`
			Dimensions int      `json:"dimensions"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Dimensions <= 0 {
			http.Error(w, `{"error":{"message":"bad request"}}`, http.StatusBadRequest)
			return
		}
		mu.Lock()
		calls = append(calls, embeddingsCall{Path: r.URL.Path, Auth: r.Header.Get("Authorization"), Tenant: r.Header.Get("X-Tenant"),
			Model: body.Model, Input: body.Input, Dimensions: body.Dimensions})
		mu.Unlock()
		vecs, _ := embed.NewLocal(embed.LocalOptions{Dimension: body.Dimensions}).Embed(r.Context(), body.Input)
		data := make([]map[string]any, len(vecs))
		for i, v := range vecs {
			data[i] = map[string]any{"object": "embedding", "index": i, "embedding": v}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data, "model": body.Model})
	}))
	t.Cleanup(srv.Close)

	ts := startServer(t, withEnv("EMBED_URL", srv.URL), withEnv("EMBED_KEY", "sk-embed-123"), withSpecs(`kind: Model
name: vectors
provider: openai
model: text-embedding-3-small
base_url: ${EMBED_URL}/v1
api_key: ${EMBED_KEY}
headers: {X-Tenant: acme}
---
kind: Knowledge
name: manuals
chunking: {strategy: recursive, size: 64, overlap: 0}
embedder: {model: vectors, dimensions: 96}
`))

	for _, text := range []string{
		"The Falcon drill comes with a five year warranty covering the motor and the battery.",
		"Boil the spaghetti in salted water for nine minutes, then drain it.",
	} {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		require.NoError(t, mw.WriteField("text_content", text))
		require.NoError(t, mw.Close())
		status, body, _ := ts.do(http.MethodPost, "/knowledge/content?knowledge_id=manuals", "", mw.FormDataContentType(), b.String())
		require.Equal(t, http.StatusAccepted, status, body)
		var doc map[string]any
		require.NoError(t, json.Unmarshal([]byte(body), &doc))
		waitCompleted(t, ts, doc["id"].(string))
	}
	mu.Lock()
	ingested := append([]embeddingsCall(nil), calls...)
	mu.Unlock()
	require.Equal(t, []embeddingsCall{
		{Path: "/v1/embeddings", Auth: "Bearer sk-embed-123", Tenant: "acme", Model: "text-embedding-3-small", Dimensions: 96,
			Input: []string{"The Falcon drill comes with a five year warranty covering the motor and the battery."}},
		{Path: "/v1/embeddings", Auth: "Bearer sk-embed-123", Tenant: "acme", Model: "text-embedding-3-small", Dimensions: 96,
			Input: []string{"Boil the spaghetti in salted water for nine minutes, then drain it."}},
	}, ingested)

	var res struct {
		Data []map[string]any `json:"data"`
	}
	ts.json(http.MethodPost, "/knowledge/search", "", `{"query":"how long is the drill warranty","knowledge_id":"manuals","search_type":"vector","max_results":1}`, http.StatusOK, &res)
	require.Len(t, res.Data, 1)
	require.Contains(t, res.Data[0]["content"], "five year warranty")
	mu.Lock()
	last := calls[len(calls)-1]
	mu.Unlock()
	require.Equal(t, []string{"how long is the drill warranty"}, last.Input)

	// The configuration names the Model document, not its key.
	status, body, _ := ts.do(http.MethodGet, "/knowledge/config", "", "", "")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, `"embedder":"vectors"`)
	require.NotContains(t, body, "sk-embed-123")
}
