package kb_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/embed"
	"github.com/troupehq/troupe/engine/knowledge/embedded"
	"github.com/troupehq/troupe/engine/knowledge/kb"
	"github.com/troupehq/troupe/spec"
)

// embedRequest is what the fake embeddings server saw of one request.
type embedRequest struct {
	Path, Auth, Tenant string
	Model              string
	Input              []string
	Dimensions         int
	EncodingFormat     string
}

// embedServer is a fake embeddings API on loopback speaking the OpenAI wire
// (/v1/embeddings) and Ollama's (/api/embed). Its vectors are the local
// embedder's, so search quality is real; their length is the request's
// dimensions, else dim (or returnDim, to lie about it).
type embedServer struct {
	srv       *httptest.Server
	dim       int
	returnDim int
	mu        sync.Mutex
	fail      []int // statuses of the first requests, in order
	requests  []embedRequest
	delay     time.Duration // how long each request takes
	inFlight  int
	most      int // the most requests in flight at once
}

func newEmbedServer(t *testing.T) *embedServer {
	t.Helper()
	es := &embedServer{dim: 48}
	es.srv = httptest.NewServer(http.HandlerFunc(es.serve))
	t.Cleanup(es.srv.Close)
	return es
}

func (es *embedServer) serve(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Model          string   `json:"model"`
		Input          []string `json:"input"`
		Dimensions     int      `json:"dimensions"`
		EncodingFormat string   `json:"encoding_format"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	es.mu.Lock()
	es.requests = append(es.requests, embedRequest{Path: r.URL.Path, Auth: r.Header.Get("Authorization"), Tenant: r.Header.Get("X-Tenant"),
		Model: body.Model, Input: body.Input, Dimensions: body.Dimensions, EncodingFormat: body.EncodingFormat})
	var status int
	if len(es.fail) > 0 {
		status, es.fail = es.fail[0], es.fail[1:]
	}
	es.inFlight++
	es.most = max(es.most, es.inFlight)
	dim := es.dim
	if body.Dimensions > 0 {
		dim = body.Dimensions
	}
	if es.returnDim > 0 {
		dim = es.returnDim
	}
	es.mu.Unlock()
	time.Sleep(es.delay)
	defer func() {
		es.mu.Lock()
		es.inFlight--
		es.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "application/json")
	if status != 0 {
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(status)
		_, _ = fmt.Fprintf(w, `{"error":{"message":"try again (%d)"}}`, status)
		return
	}
	vecs, _ := embed.NewLocal(embed.LocalOptions{Dimension: dim}).Embed(r.Context(), body.Input)
	if r.URL.Path == "/api/embed" {
		_ = json.NewEncoder(w).Encode(map[string]any{"model": body.Model, "embeddings": vecs})
		return
	}
	data := make([]map[string]any, len(vecs))
	for i, v := range vecs {
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": v}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data, "model": body.Model})
}

func (es *embedServer) seen() []embedRequest {
	es.mu.Lock()
	defer es.mu.Unlock()
	return append([]embedRequest(nil), es.requests...)
}

// hostPort is the server's address without scheme, as OLLAMA_HOST is often
// written.
func (es *embedServer) hostPort() string { return strings.TrimPrefix(es.srv.URL, "http://") }

// resolved loads Knowledge documents and writes the Model documents their
// embedders name inline, as the engine's snapshot does.
func resolved(t *testing.T, src string) []*spec.Knowledge {
	t.Helper()
	dir := t.TempDir()
	ks := specs(t, dir, src)
	set, err := spec.NewLoader(spec.LoaderOptions{Env: func(string) (string, bool) { return "", false }}).Load(dir)
	require.NoError(t, err)
	for i, k := range ks {
		if name := k.Embedder.ModelName(); name != "" {
			c := *k
			c.Embedder = k.Embedder.WithModel(set.Model(name))
			ks[i] = &c
		}
	}
	return ks
}

// TestEmbedderEndpoints ingests a document through each form of embedder,
// against the fake server on loopback, and checks what the server was sent
// and that a vector search finds the document.
func TestEmbedderEndpoints(t *testing.T) {
	const doc = "# Falcon drill\n\nThe Falcon drill comes with a five year warranty covering the motor and the battery.\n\n# Pasta\n\nBoil the spaghetti in salted water for nine minutes, then drain it.\n"
	tests := []struct {
		name     string
		yaml     func(es *embedServer) string
		env      map[string]string
		fail     []int
		wantReq  embedRequest // Input is checked apart
		wantName string
	}{
		{
			name: "named model",
			yaml: func(es *embedServer) string {
				return "kind: Model\nname: vectors\nprovider: openai\nmodel: text-embedding-3-small\nbase_url: " + es.srv.URL + "/v1\napi_key: sk-embed\nheaders: {X-Tenant: acme}\n---\n" +
					"kind: Knowledge\nname: kb\nchunking: {strategy: markdown, size: 40, overlap: 0}\nembedder: {model: vectors, dimensions: 32}\n"
			},
			wantReq: embedRequest{Path: "/v1/embeddings", Auth: "Bearer sk-embed", Tenant: "acme", Model: "text-embedding-3-small", Dimensions: 32, EncodingFormat: "float"},
		},
		{
			name: "inline",
			yaml: func(es *embedServer) string {
				return "kind: Knowledge\nname: kb\nchunking: {strategy: markdown, size: 40, overlap: 0}\nembedder:\n  provider: openai\n  model: bge-small\n  base_url: " + es.srv.URL + "/v1\n  api_key: tei-key\n  headers: {X-Tenant: t2}\n"
			},
			wantReq: embedRequest{Path: "/v1/embeddings", Auth: "Bearer tei-key", Tenant: "t2", Model: "bge-small", EncodingFormat: "float"},
		},
		{
			name: "openai short form with OPENAI_BASE_URL",
			yaml: func(*embedServer) string {
				return "kind: Knowledge\nname: kb\nchunking: {strategy: markdown, size: 40, overlap: 0}\nembedder: openai/text-embedding-3-large\n"
			},
			env:     map[string]string{"OPENAI_BASE_URL": "{url}/v1", "OPENAI_API_KEY": "sk-env"},
			wantReq: embedRequest{Path: "/v1/embeddings", Auth: "Bearer sk-env", Model: "text-embedding-3-large", EncodingFormat: "float"},
		},
		{
			name: "ollama short form with OLLAMA_HOST",
			yaml: func(*embedServer) string {
				return "kind: Knowledge\nname: kb\nchunking: {strategy: markdown, size: 40, overlap: 0}\nembedder: ollama/nomic-embed-text\n"
			},
			env:     map[string]string{"OLLAMA_HOST": "{hostport}"},
			wantReq: embedRequest{Path: "/api/embed", Model: "nomic-embed-text"},
		},
		{
			name: "ollama Model document pointing chat at /v1",
			yaml: func(es *embedServer) string {
				return "kind: Model\nname: local-ollama\nprovider: ollama\nmodel: mxbai-embed-large\nbase_url: " + es.srv.URL + "/v1\n---\n" +
					"kind: Knowledge\nname: kb\nchunking: {strategy: markdown, size: 40, overlap: 0}\nembedder: local-ollama\n"
			},
			wantReq: embedRequest{Path: "/api/embed", Model: "mxbai-embed-large"},
		},
		{
			name: "retries on 429 and 5xx",
			yaml: func(es *embedServer) string {
				return "kind: Knowledge\nname: kb\nchunking: {strategy: markdown, size: 40, overlap: 0}\nembedder: {provider: openai, model: m, base_url: " + es.srv.URL + "/v1}\n"
			},
			fail:    []int{http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable},
			wantReq: embedRequest{Path: "/v1/embeddings", Model: "m", EncodingFormat: "float"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			es := newEmbedServer(t)
			es.fail = tc.fail
			env := func(k string) (string, bool) {
				v, ok := tc.env[k]
				v = strings.NewReplacer("{url}", es.srv.URL, "{hostport}", es.hostPort()).Replace(v)
				return v, ok
			}
			docs := kb.NewMemoryDocuments()
			s, err := kb.New(t.Context(), kb.Options{Documents: docs, Chunks: embedded.NewMemoryRepository(), Stats: docs, Env: env})
			require.NoError(t, err)
			defer s.Close()
			s.Configure(t.Context(), resolved(t, tc.yaml(es)))
			d, _, err := s.Submit(t.Context(), kb.Upload{KnowledgeID: "kb", Name: "manual.md", Content: []byte(doc)})
			require.NoError(t, err)
			d, err = s.Get(t.Context(), d.ID)
			require.NoError(t, err)
			require.Equal(t, knowledge.StatusCompleted, d.Status, d.Message)
			require.Equal(t, 2, d.Chunks)

			reqs := es.seen()
			require.Len(t, reqs, 1+len(tc.fail), "one request for the document's two chunks, after the retried failures")
			for _, r := range reqs {
				require.Equal(t, []string{
					"Falcon drill\n# Falcon drill\n\nThe Falcon drill comes with a five year warranty covering the motor and the battery.",
					"Pasta\n# Pasta\n\nBoil the spaghetti in salted water for nine minutes, then drain it.",
				}, r.Input, "the chunks, each with its heading, in one batch")
				r.Input = nil
				require.Equal(t, tc.wantReq, r)
			}

			hits, err := s.Search(t.Context(), []string{"kb"}, "how many years of warranty does the drill have", knowledge.ModeVector, 1, nil)
			require.NoError(t, err)
			require.Len(t, hits, 1)
			require.Contains(t, hits[0].Text, "five year warranty")
			reqs = es.seen()
			require.Equal(t, []string{"how many years of warranty does the drill have"}, reqs[len(reqs)-1].Input, "the query is embedded by the same endpoint")
		})
	}
}

// TestEmbedderDimensionMismatch: a server that returns vectors of another
// length than dimensions fails the document with a message saying what to
// change.
func TestEmbedderDimensionMismatch(t *testing.T) {
	t.Parallel()
	es := newEmbedServer(t)
	es.returnDim = 24
	docs := kb.NewMemoryDocuments()
	s, err := kb.New(t.Context(), kb.Options{Documents: docs, Chunks: embedded.NewMemoryRepository(), Stats: docs})
	require.NoError(t, err)
	defer s.Close()
	s.Configure(t.Context(), resolved(t, "kind: Knowledge\nname: kb\nembedder: {provider: openai, model: m, base_url: "+es.srv.URL+"/v1, dimensions: 64}\n"))
	d, _, err := s.Submit(t.Context(), kb.Upload{KnowledgeID: "kb", Name: "a.txt", Content: []byte("some text to embed")})
	require.NoError(t, err)
	d, err = s.Get(t.Context(), d.ID)
	require.NoError(t, err)
	require.Equal(t, knowledge.StatusFailed, d.Status)
	require.Equal(t, "embedding with openai/m: openai/m: protocol: embedding has 24 dimensions, configured dimension is 64: set the embedder's dimensions to 24, or use a model (or server) that returns 64", d.Message)
	require.Equal(t, 64, es.seen()[0].Dimensions, "the dimensions were asked for")
}

// TestEmbedderBatchBound: batch_size bounds the texts of each request, and
// concurrency the requests in flight.
func TestEmbedderBatchBound(t *testing.T) {
	t.Parallel()
	es := newEmbedServer(t)
	es.delay = 30 * time.Millisecond
	docs := kb.NewMemoryDocuments()
	s, err := kb.New(t.Context(), kb.Options{Documents: docs, Chunks: embedded.NewMemoryRepository(), Stats: docs})
	require.NoError(t, err)
	defer s.Close()
	s.Configure(t.Context(), resolved(t, "kind: Knowledge\nname: kb\nchunking: {strategy: markdown, size: 60, overlap: 0}\n"+
		"embedder: {provider: openai, model: m, base_url: "+es.srv.URL+"/v1, batch_size: 3, concurrency: 2}\n"))
	d, _, err := s.Submit(t.Context(), kb.Upload{KnowledgeID: "kb", Name: "guide.md", Content: markdownDoc("router", 10)})
	require.NoError(t, err)
	d, err = s.Get(t.Context(), d.ID)
	require.NoError(t, err)
	require.Equal(t, knowledge.StatusCompleted, d.Status, d.Message)
	require.Equal(t, 10, d.Chunks)
	var sizes []int
	for _, r := range es.seen() {
		sizes = append(sizes, len(r.Input))
	}
	require.Equal(t, []int{3, 3, 3, 1}, sortedDesc(sizes), "10 chunks in requests of at most 3")
	es.mu.Lock()
	defer es.mu.Unlock()
	require.Equal(t, 2, es.most, "two requests in flight at most")
}

func sortedDesc(xs []int) []int {
	out := append([]int(nil), xs...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] > out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestEmbedderChangeReembeds: a base whose embedder changes is re-embedded
// by the new one: the old vectors (another model, another length) are
// dropped, every document is ingested again, and search works.
func TestEmbedderChangeReembeds(t *testing.T) {
	t.Parallel()
	es := newEmbedServer(t)
	docs := kb.NewMemoryDocuments()
	chunks := embedded.NewMemoryRepository()
	s, err := kb.New(t.Context(), kb.Options{Documents: docs, Chunks: chunks, Stats: docs})
	require.NoError(t, err)
	defer s.Close()
	s.Configure(t.Context(), resolved(t, "kind: Knowledge\nname: kb\nchunking: {strategy: markdown, size: 60, overlap: 0}\n"))
	var ids []string
	for _, topic := range []string{"router", "printer"} {
		d, _, err := s.Submit(t.Context(), kb.Upload{KnowledgeID: "kb", Name: topic + ".md", Content: markdownDoc(topic, 2)})
		require.NoError(t, err)
		ids = append(ids, d.ID)
	}
	require.Empty(t, es.seen())

	s.Configure(t.Context(), resolved(t, "kind: Knowledge\nname: kb\nchunking: {strategy: markdown, size: 60, overlap: 0}\n"+
		"embedder: {provider: openai, model: m, base_url: "+es.srv.URL+"/v1}\n"))
	s.SyncSources(t.Context()) // what the run loop does after a reload
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, s.Wait(ctx))
	var embedded []string
	for _, r := range es.seen() {
		embedded = append(embedded, r.Input...)
	}
	require.Len(t, embedded, 4, "both documents' two chunks, embedded again")
	for _, id := range ids {
		d, err := s.Get(t.Context(), id)
		require.NoError(t, err)
		require.Equal(t, knowledge.StatusCompleted, d.Status, d.Message)
	}
	hits, err := s.Search(t.Context(), []string{"kb"}, "printer procedure", knowledge.ModeVector, 1, nil)
	require.NoError(t, err)
	require.Len(t, hits, 1)
	require.Contains(t, hits[0].Text, "printer")

	// Reloading the same embedder re-embeds nothing.
	before := len(es.seen())
	s.Configure(t.Context(), resolved(t, "kind: Knowledge\nname: kb\nchunking: {strategy: markdown, size: 60, overlap: 0}\n"+
		"embedder: {provider: openai, model: m, base_url: "+es.srv.URL+"/v1}\n"))
	s.SyncSources(t.Context())
	require.Len(t, es.seen(), before)

	// A restart with another embedder: the stored vectors' length (48)
	// is not the local embedder's (384), so the base is re-embedded.
	s.Close()
	s2, err := kb.New(t.Context(), kb.Options{Documents: docs, Chunks: chunks, Stats: docs})
	require.NoError(t, err)
	defer s2.Close()
	s2.Configure(t.Context(), resolved(t, "kind: Knowledge\nname: kb\nchunking: {strategy: markdown, size: 60, overlap: 0}\n"))
	s2.SyncSources(t.Context())
	require.NoError(t, s2.Wait(ctx))
	require.Len(t, es.seen(), before, "the local embedder needs no server")
	hits, err = s2.Search(t.Context(), []string{"kb"}, "router procedure", knowledge.ModeVector, 1, nil)
	require.NoError(t, err)
	require.Len(t, hits, 1)
	require.Contains(t, hits[0].Text, "router")
}
