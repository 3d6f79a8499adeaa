package kb_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/bm25"
	"github.com/troupehq/troupe/engine/knowledge/embed"
	"github.com/troupehq/troupe/engine/knowledge/embedded"
	"github.com/troupehq/troupe/engine/knowledge/kb"
	"github.com/troupehq/troupe/spec"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// specs loads Knowledge documents from YAML written into dir.
func specs(t *testing.T, dir, src string) []*spec.Knowledge {
	t.Helper()
	path := filepath.Join(dir, "kb.yaml")
	require.NoError(t, os.WriteFile(path, []byte(src), 0o644))
	set, err := spec.NewLoader(spec.LoaderOptions{Env: func(string) (string, bool) { return "", false }}).Load(dir)
	require.NoError(t, err)
	require.Empty(t, set.Diagnostics().Errors())
	var out []*spec.Knowledge
	for _, k := range set.Keys() {
		if kn := set.Knowledge(k.Name); kn != nil && k.Kind == spec.KindKnowledge {
			out = append(out, kn)
		}
	}
	return out
}

const docsKB = "kind: Knowledge\nname: docs\nchunking: {strategy: markdown, size: 60, overlap: 10}\n"

// gate is an embedder that can pause: when paused, calls block until resumed
// or their context ends.
type gate struct {
	knowledge.Embedder
	mu         sync.Mutex
	paused     chan struct{}
	calls      atomic.Int64
	pauseAfter int64
}

func (g *gate) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	n := g.calls.Add(1)
	g.mu.Lock()
	p := g.paused
	g.mu.Unlock()
	if p != nil && n > g.pauseAfter {
		select {
		case <-p:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.Embedder.Embed(ctx, texts)
}

func (g *gate) resume() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.paused != nil {
		close(g.paused)
		g.paused = nil
	}
}

type env struct {
	docs      *kb.MemoryDocuments
	chunks    *embedded.MemoryRepository
	gate      *gate
	maxChunks int    // kb.Options.MaxChunks
	jobsDB    string // the job engine's SQLite file, kept across restarts
}

func newEnv() *env {
	return &env{docs: kb.NewMemoryDocuments(), chunks: embedded.NewMemoryRepository(),
		gate: &gate{Embedder: embed.NewLocal(embed.LocalOptions{Dimension: kb.LocalDimension})}}
}

// start opens a service over the env's repositories, with a job engine on
// the env's job database, and runs both until the returned stop is called.
func (e *env) start(t *testing.T, ks []*spec.Knowledge) (*kb.Service, func()) {
	t.Helper()
	if e.jobsDB == "" {
		e.jobsDB = filepath.Join(t.TempDir(), "jobs.db")
	}
	j := newJobEngine(t, e.jobsDB)
	s, err := kb.New(t.Context(), kb.Options{Documents: e.docs, Chunks: e.chunks, Stats: e.docs, MaxChunks: e.maxChunks, Queue: j.queue(),
		NewEmbedder: func(*spec.Knowledge) (knowledge.Embedder, error) { return e.gate, nil }})
	require.NoError(t, err)
	s.Configure(t.Context(), ks)
	return s, j.run(s)
}

func waitStatus(t *testing.T, s *kb.Service, id, status string) *knowledge.Document {
	t.Helper()
	var d *knowledge.Document
	require.Eventually(t, func() bool {
		var err error
		d, err = s.Get(context.Background(), id)
		return err == nil && d.Status == status
	}, 10*time.Second, 5*time.Millisecond, "document %s never reached %s (last: %+v)", id, status, d)
	return d
}

func markdownDoc(topic string, sections int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s guide\n\n", topic)
	for i := range sections {
		fmt.Fprintf(&b, "## %s part %d\n\nThe %s procedure step %d explains how to configure %s widgets, adjust %s settings and verify the %s result carefully before continuing.\n\n", topic, i, topic, i, topic, topic, topic)
	}
	return []byte(b.String())
}

func TestUploadIngestSearchAndDedup(t *testing.T) {
	t.Parallel()
	e := newEnv()
	s, stop := e.start(t, specs(t, t.TempDir(), docsKB))
	defer stop()
	d, created, err := s.Submit(t.Context(), kb.Upload{KnowledgeID: "docs", Name: "billing.md", Content: markdownDoc("billing", 5), Metadata: map[string]any{"team": "finance"}})
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, knowledge.StatusProcessing, d.Status)
	require.Equal(t, "markdown", d.Type)
	d2, _, err := s.Submit(t.Context(), kb.Upload{KnowledgeID: "docs", Name: "passwords.md", Content: markdownDoc("password", 5)})
	require.NoError(t, err)
	done := waitStatus(t, s, d.ID, knowledge.StatusCompleted)
	require.Greater(t, done.Chunks, 1)
	require.InDelta(t, 1.0, done.Progress, 1e-9)
	waitStatus(t, s, d2.ID, knowledge.StatusCompleted)

	again, created, err := s.Submit(t.Context(), kb.Upload{KnowledgeID: "docs", Name: "copy.md", Content: markdownDoc("billing", 5)})
	require.NoError(t, err)
	require.False(t, created, "the same bytes are the same document")
	require.Equal(t, d.ID, again.ID)

	for _, mode := range []string{knowledge.ModeVector, knowledge.ModeKeyword, knowledge.ModeHybrid} {
		hits, err := s.Search(t.Context(), []string{"docs"}, "how do I reset my password", mode, 3, nil)
		require.NoError(t, err, mode)
		require.NotEmpty(t, hits, mode)
		require.Equal(t, "passwords.md", hits[0].Document, mode)
		require.NotEmpty(t, hits[0].Text)
	}
	hits, err := s.Search(t.Context(), []string{"docs"}, "configure widgets", knowledge.ModeHybrid, 10, knowledge.Filters{"team": "finance"})
	require.NoError(t, err)
	require.NotEmpty(t, hits)
	for _, h := range hits {
		require.Equal(t, "billing.md", h.Document, "filters restrict by metadata")
	}

	_, _, err = s.Submit(t.Context(), kb.Upload{KnowledgeID: "docs", Name: "logo.png", Content: []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")})
	require.ErrorIs(t, err, kb.ErrUnsupported)
	_, _, err = s.Submit(t.Context(), kb.Upload{KnowledgeID: "nope", Name: "a.txt", Content: []byte("x")})
	require.ErrorIs(t, err, knowledge.ErrNotFound)
}

// TestCrashResume stops ingestion midway (cancelling the service as a crash
// would), reopens everything over the same repositories, and checks every
// document completes with exactly its chunks and no duplicates.
func TestCrashResume(t *testing.T) {
	t.Parallel()
	e := newEnv()
	e.gate.paused, e.gate.pauseAfter = make(chan struct{}), 4
	ks := specs(t, t.TempDir(), docsKB)
	s1, stop1 := e.start(t, ks)
	var ids []string
	for i := range 6 {
		d, _, err := s1.Submit(t.Context(), kb.Upload{KnowledgeID: "docs", Name: fmt.Sprintf("doc%d.md", i), Content: markdownDoc(fmt.Sprintf("topic%d", i), 150)})
		require.NoError(t, err)
		ids = append(ids, d.ID)
	}
	require.Eventually(t, func() bool { return e.gate.calls.Load() > 5 }, 5*time.Second, time.Millisecond)
	stop1() // the crash: workers stop mid-document
	pending, err := e.docs.Pending(t.Context())
	require.NoError(t, err)
	require.NotEmpty(t, pending, "some documents were interrupted")
	midway := false
	for _, d := range pending {
		midway = midway || (d.Chunks > 0 && d.Progress < 1)
	}
	require.True(t, midway, "a document was interrupted after some of its chunks were written")

	e.gate.resume()
	s2, stop2 := e.start(t, ks)
	defer stop2()
	total := 0
	for _, id := range ids {
		d := waitStatus(t, s2, id, knowledge.StatusCompleted)
		total += d.Chunks
	}
	var stored int
	seen := map[string]bool{}
	require.NoError(t, e.chunks.Load(t.Context(), func(r knowledge.ChunkRecord) error {
		require.False(t, seen[r.Chunk.ID], "duplicate chunk %s", r.Chunk.ID)
		seen[r.Chunk.ID] = true
		stored++
		return nil
	}))
	require.Equal(t, total, stored, "exactly the expected chunks, no duplicates")
}

func TestDeleteWhileIngesting(t *testing.T) {
	t.Parallel()
	e := newEnv()
	e.gate.paused, e.gate.pauseAfter = make(chan struct{}), 0
	s, stop := e.start(t, specs(t, t.TempDir(), docsKB))
	defer stop()
	d, _, err := s.Submit(t.Context(), kb.Upload{KnowledgeID: "docs", Name: "big.md", Content: markdownDoc("big", 60)})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return e.gate.calls.Load() >= 1 }, 5*time.Second, time.Millisecond, "ingestion is embedding")
	require.NoError(t, s.Delete(t.Context(), d.ID))
	e.gate.resume()
	_, err = s.Get(t.Context(), d.ID)
	require.ErrorIs(t, err, knowledge.ErrNotFound)
	require.Eventually(t, func() bool {
		n := 0
		_ = e.chunks.Load(t.Context(), func(knowledge.ChunkRecord) error { n++; return nil })
		return n == 0
	}, 5*time.Second, 5*time.Millisecond, "no chunk of the deleted document remains")
}

func TestFailedDocumentAndRetry(t *testing.T) {
	t.Parallel()
	e := newEnv()
	s, stop := e.start(t, specs(t, t.TempDir(), docsKB))
	defer stop()
	d, _, err := s.Submit(t.Context(), kb.Upload{KnowledgeID: "docs", Name: "broken.pdf", Content: []byte("%PDF-1.4\nthis is not really a pdf")})
	require.NoError(t, err)
	failed := waitStatus(t, s, d.ID, knowledge.StatusFailed)
	require.NotEmpty(t, failed.Message)
	require.Equal(t, 1, failed.Attempts)
	_, err = s.Retry(t.Context(), d.ID)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		got, err := s.Get(t.Context(), d.ID)
		return err == nil && got.Status == knowledge.StatusFailed && got.Attempts == 2
	}, 5*time.Second, 5*time.Millisecond)
}

// TestChunkBounds checks the two bounds on what one document may cost:
// chunk sizes outside the allowed range are refused at submission, and a
// document that would make more chunks than allowed fails with a message
// saying what to do, with nothing stored.
func TestChunkBounds(t *testing.T) {
	t.Parallel()
	e := newEnv()
	e.maxChunks = 5
	s, stop := e.start(t, specs(t, t.TempDir(), docsKB))
	defer stop()

	tests := []struct {
		name          string
		size, overlap int
		want          string
	}{
		{"size 1", 1, 0, "chunk size 1 is out of range: use 32 to 8192 tokens"},
		{"size too large", 100_000, 0, "chunk size 100000 is out of range: use 32 to 8192 tokens"},
		{"overlap not below size", 64, 64, "overlap 64 must be smaller than size 64"},
		{"negative overlap", 64, -1, "chunk overlap -1 must not be negative"},
		{"unknown strategy", 0, 0, `chunking strategy "words"`},
	}
	for _, tt := range tests {
		u := kb.Upload{KnowledgeID: "docs", Name: "a.txt", Content: []byte("some text " + tt.name), ChunkSize: tt.size, ChunkOverlap: tt.overlap}
		if tt.size == 0 {
			u.ChunkStrategy = "words"
		}
		_, _, err := s.Submit(t.Context(), u)
		require.ErrorIs(t, err, kb.ErrInvalid, tt.name)
		require.ErrorContains(t, err, tt.want, tt.name)
	}

	d, _, err := s.Submit(t.Context(), kb.Upload{KnowledgeID: "docs", Name: "long.md", Content: markdownDoc("billing", 40), ChunkSize: 32})
	require.NoError(t, err)
	failed := waitStatus(t, s, d.ID, knowledge.StatusFailed)
	require.Contains(t, failed.Message, "more than 5 chunks of 32 tokens")
	require.Contains(t, failed.Message, "use a larger chunk size or split the document")
	require.Zero(t, failed.Chunks)
}

func TestSourcesSync(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "docs"), 0o755))
	write := func(name string, content []byte) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "docs", name), content, 0o644))
	}
	write("a.md", markdownDoc("alpha", 2))
	write("b.md", markdownDoc("beta", 2))
	ks := specs(t, dir, docsKB+"sources: [docs/*.md]\n")
	e := newEnv()
	s, stop := e.start(t, ks)
	defer stop()
	list := func() map[string]knowledge.Document {
		out := map[string]knowledge.Document{}
		require.Eventually(t, func() bool {
			docs, _, err := s.List(t.Context(), knowledge.DocumentQuery{KnowledgeID: "docs", Limit: 100})
			require.NoError(t, err)
			clear(out)
			for _, d := range docs {
				if d.Status != knowledge.StatusCompleted {
					return false
				}
				out[d.Name] = d
			}
			return true
		}, 10*time.Second, 10*time.Millisecond)
		return out
	}
	require.Eventually(t, func() bool { return len(list()) == 2 }, 10*time.Second, 10*time.Millisecond)
	before := list()

	write("b.md", markdownDoc("gamma", 2)) // changed
	require.NoError(t, os.Remove(filepath.Join(dir, "docs", "a.md")))
	write("c.md", markdownDoc("delta", 2)) // new
	s.Configure(t.Context(), ks)
	require.Eventually(t, func() bool {
		l := list()
		_, hasA := l["a.md"]
		return len(l) == 2 && !hasA && l["b.md"].ID != before["b.md"].ID && l["c.md"].ID != ""
	}, 10*time.Second, 10*time.Millisecond)
	hits, err := s.Search(t.Context(), []string{"docs"}, "alpha procedure", knowledge.ModeKeyword, 5, nil)
	require.NoError(t, err)
	for _, h := range hits {
		require.NotEqual(t, "a.md", h.Document, "a removed source leaves no chunks")
	}
}

// TestMilvusLearnsARemoteEmbeddersDimension checks that a Milvus base whose
// embedder is remote (openai/…, ollama/…, whose dimension is unknown until a
// first request) opens its collection with the dimension the embedder
// reports, learned with one request to the OpenAI-wire embeddings API.
func TestMilvusLearnsARemoteEmbeddersDimension(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		var req struct {
			Input []string `json:"input"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		type item struct {
			Object    string    `json:"object"`
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		}
		items := make([]item, len(req.Input))
		for i := range items {
			items[i] = item{Object: "embedding", Index: i, Embedding: []float32{0.6, 0.8, 0}}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": items, "model": "m",
			"usage": map[string]int{"prompt_tokens": 1, "total_tokens": 1}})
	}))
	defer srv.Close()

	opened := make(chan int, 1)
	docs := kb.NewMemoryDocuments()
	s, err := kb.New(t.Context(), kb.Options{Documents: docs, Chunks: embedded.NewMemoryRepository(), Stats: docs,
		NewEmbedder: func(*spec.Knowledge) (knowledge.Embedder, error) {
			return embed.NewOpenAI(embed.OpenAIOptions{Model: "m", BaseURL: srv.URL, Retries: -1}), nil
		},
		NewMilvus: func(ctx context.Context, k *spec.Knowledge, dimension int) (knowledge.VectorStore, error) {
			opened <- dimension
			return embedded.Open(ctx, embedded.NewMemoryRepository(), embedded.Options{})
		}})
	require.NoError(t, err)
	s.Configure(t.Context(), specs(t, t.TempDir(), "kind: Knowledge\nname: remote\nembedder: ollama/nomic-embed-text\nstore: {type: milvus, address: 127.0.0.1:19530}\n"))
	select {
	case d := <-opened:
		require.Equal(t, 3, d, "the collection gets the embedder's dimension")
	default:
		t.Fatal("the Milvus store was never opened")
	}
	require.EqualValues(t, 1, requests.Load(), "one probe request")
	_, err = s.Search(t.Context(), []string{"remote"}, "anything", "", 3, nil)
	require.NoError(t, err, "the base is available")
}

// TestSearchEmbedsTheQueryOncePerEmbedder checks that a search over several
// bases with the same embedder embeds the query once, not once per base.
func TestSearchEmbedsTheQueryOncePerEmbedder(t *testing.T) {
	e := newEnv()
	s, stop := e.start(t, specs(t, t.TempDir(), docsKB+"---\nkind: Knowledge\nname: more\n"))
	defer stop()
	before := e.gate.calls.Load()
	_, err := s.Search(t.Context(), []string{"docs", "more"}, "widgets", knowledge.ModeHybrid, 3, nil)
	require.NoError(t, err)
	require.EqualValues(t, 1, e.gate.calls.Load()-before)
}

// closingStore is a Milvus-like store that holds a connection: it counts
// Close calls, and its searches can be held at a gate.
type closingStore struct {
	knowledge.VectorStore
	name    string
	closes  atomic.Int64
	inUse   atomic.Int64
	entered chan struct{}
	gate    chan struct{}
}

func (c *closingStore) Search(ctx context.Context, id string, q knowledge.Query) ([]knowledge.Hit, error) {
	c.inUse.Add(1)
	defer c.inUse.Add(-1)
	if c.gate != nil {
		c.entered <- struct{}{}
		<-c.gate
	}
	return c.VectorStore.Search(ctx, id, q)
}

func (c *closingStore) Close() error {
	if c.inUse.Load() > 0 {
		panic("store " + c.name + " closed while a search was using it")
	}
	c.closes.Add(1)
	return nil
}

// TestReloadClosesReplacedStores checks that a knowledge base whose spec
// changes or disappears closes its Milvus store (a gRPC connection), but
// only once the searches still using it are done; an unchanged base keeps
// its store, and Close closes the rest.
func TestReloadClosesReplacedStores(t *testing.T) {
	var mu sync.Mutex
	opened := map[string]*closingStore{}
	var gated atomic.Bool
	docs := kb.NewMemoryDocuments()
	s, err := kb.New(t.Context(), kb.Options{Documents: docs, Chunks: embedded.NewMemoryRepository(), Stats: docs,
		NewMilvus: func(ctx context.Context, k *spec.Knowledge, dimension int) (knowledge.VectorStore, error) {
			inner, err := embedded.Open(ctx, embedded.NewMemoryRepository(), embedded.Options{})
			if err != nil {
				return nil, err
			}
			c := &closingStore{VectorStore: inner, name: k.Store.Collection}
			if gated.Load() {
				c.entered, c.gate = make(chan struct{}), make(chan struct{})
			}
			mu.Lock()
			opened[c.name] = c
			mu.Unlock()
			return c, nil
		}})
	require.NoError(t, err)
	dir := t.TempDir()
	base := func(collection string) string {
		return "kind: Knowledge\nname: docs\nstore: {type: milvus, address: 127.0.0.1:19530, collection: " + collection + "}\n"
	}
	store := func(name string) *closingStore {
		mu.Lock()
		defer mu.Unlock()
		require.Contains(t, opened, name)
		return opened[name]
	}

	gated.Store(true)
	s.Configure(t.Context(), specs(t, dir, base("first")))
	gated.Store(false)
	first := store("first")
	searched := make(chan error, 1)
	go func() {
		_, err := s.Search(context.Background(), []string{"docs"}, "webhooks", "", 3, nil)
		searched <- err
	}()
	<-first.entered

	// The spec changes while a search is using the first store.
	s.Configure(t.Context(), specs(t, dir, base("second")))
	second := store("second")
	require.Zero(t, first.closes.Load(), "closed under a running search")
	close(first.gate)
	require.NoError(t, <-searched)
	require.EqualValues(t, 1, first.closes.Load(), "closed once its last search ended")

	// The same spec again keeps the store; a search uses the new one.
	s.Configure(t.Context(), specs(t, dir, base("second")))
	require.Zero(t, second.closes.Load())
	_, err = s.Search(t.Context(), []string{"docs"}, "webhooks", "", 3, nil)
	require.NoError(t, err)

	// A base that disappears closes at once when unused.
	s.Configure(t.Context(), nil)
	require.EqualValues(t, 1, second.closes.Load())

	s.Configure(t.Context(), specs(t, dir, base("third")))
	third := store("third")
	s.Close()
	require.EqualValues(t, 1, third.closes.Load(), "Close closes the remaining stores")
	require.EqualValues(t, 1, first.closes.Load(), "never closed twice")
	require.EqualValues(t, 1, second.closes.Load(), "never closed twice")
}

// TestExternalKeywordStatsCountEachChunkOnce checks the BM25 statistics the
// service keeps for a Milvus-backed base: a document ingested again replaces
// its share instead of adding it twice, a deleted document takes its share
// out, and a restarted service reads back what it saved.
func TestExternalKeywordStatsCountEachChunkOnce(t *testing.T) {
	docs := kb.NewMemoryDocuments()
	open := func() (*kb.Service, func()) {
		s, err := kb.New(t.Context(), kb.Options{Documents: docs, Stats: docs,
			NewMilvus: func(ctx context.Context, k *spec.Knowledge, dimension int) (knowledge.VectorStore, error) {
				return embedded.Open(ctx, embedded.NewMemoryRepository(), embedded.Options{})
			}})
		require.NoError(t, err)
		s.Configure(t.Context(), specs(t, t.TempDir(), "kind: Knowledge\nname: docs\nstore: {type: milvus, address: 127.0.0.1:19530}\n"))
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { _ = s.Run(ctx); close(done) }()
		return s, func() { cancel(); <-done; s.Close() }
	}
	term := func(word string) uint32 { return bm25.TermID(bm25.Terms(word)[0]) }
	total := func() bm25.Stats {
		st, err := docs.LoadStats(t.Context(), "docs")
		require.NoError(t, err)
		require.NotNil(t, st)
		return st.Clone()
	}
	upload := func(s *kb.Service, name string, content []byte) *knowledge.Document {
		d, _, err := s.Submit(t.Context(), kb.Upload{KnowledgeID: "docs", Name: name, Content: content})
		require.NoError(t, err)
		return waitStatus(t, s, d.ID, knowledge.StatusCompleted)
	}

	s, stop := open()
	billing := upload(s, "billing.md", markdownDoc("billing", 6))
	onlyBilling := total()
	require.Equal(t, billing.Chunks, onlyBilling.N)
	require.Positive(t, onlyBilling.DF[term("billing")])

	// Ingesting the same document again counts its chunks once.
	_, err := s.Retry(t.Context(), billing.ID)
	require.NoError(t, err)
	waitStatus(t, s, billing.ID, knowledge.StatusCompleted)
	require.Equal(t, onlyBilling, total())

	shipping := upload(s, "shipping.md", markdownDoc("shipping", 4))
	both := total()
	require.Equal(t, billing.Chunks+shipping.Chunks, both.N)
	stop()

	// A restarted service goes on from the saved statistics.
	s, stop = open()
	defer stop()
	require.NoError(t, s.Delete(t.Context(), billing.ID))
	onlyShipping := total()
	require.Equal(t, shipping.Chunks, onlyShipping.N)
	require.NotContains(t, onlyShipping.DF, term("billing"), "the deleted document's terms are gone")
	require.Equal(t, both.DF[term("shipping")], onlyShipping.DF[term("shipping")])

	// What is left is exactly what shipping.md alone would have counted.
	require.NoError(t, s.Delete(t.Context(), shipping.ID))
	empty := total()
	require.Zero(t, empty.N)
	require.Zero(t, empty.TotalLen)
	require.Empty(t, empty.DF)
}

// holdingDocs holds the ingestion of a document after its last progress
// update, when every chunk is written and only its keyword share remains to
// be counted.
type holdingDocs struct {
	*kb.MemoryDocuments
	once       sync.Once
	held, hold chan struct{}
}

func (h *holdingDocs) Update(ctx context.Context, d *knowledge.Document) error {
	err := h.MemoryDocuments.Update(ctx, d)
	if d.Status == knowledge.StatusProcessing && d.Progress == 1 {
		h.once.Do(func() { close(h.held); <-h.hold })
	}
	return err
}

// TestDeleteBeforeKeywordShareIsCounted checks the race between deleting a
// document of a Milvus-backed base and its ingestion counting its keyword
// share: the deletion takes the share out first, and the ingestion, which it
// cancelled, must not put it back.
func TestDeleteBeforeKeywordShareIsCounted(t *testing.T) {
	docs := &holdingDocs{MemoryDocuments: kb.NewMemoryDocuments(), held: make(chan struct{}), hold: make(chan struct{})}
	j := newJobEngine(t, "")
	s, err := kb.New(t.Context(), kb.Options{Documents: docs, Stats: docs.MemoryDocuments, Queue: j.queue(),
		NewMilvus: func(ctx context.Context, k *spec.Knowledge, dimension int) (knowledge.VectorStore, error) {
			return embedded.Open(ctx, embedded.NewMemoryRepository(), embedded.Options{})
		}})
	require.NoError(t, err)
	s.Configure(t.Context(), specs(t, t.TempDir(), "kind: Knowledge\nname: docs\nstore: {type: milvus, address: 127.0.0.1:19530}\n"))
	stop := j.run(s)
	defer func() { stop(); s.Close() }()

	d, _, err := s.Submit(t.Context(), kb.Upload{KnowledgeID: "docs", Name: "billing.md", Content: markdownDoc("billing", 4)})
	require.NoError(t, err)
	<-docs.held
	require.NoError(t, s.Delete(t.Context(), d.ID))
	close(docs.hold)
	require.NoError(t, s.Wait(t.Context()))

	st, err := docs.LoadStats(t.Context(), "docs")
	require.NoError(t, err)
	if st != nil {
		require.Zero(t, st.N, "the deleted document's chunks are not counted")
		require.Empty(t, st.DF)
	}
	share, err := docs.LoadDocumentStats(t.Context(), "docs", d.ID)
	require.NoError(t, err)
	require.Nil(t, share)
}

// TestExternalKeywordStatsFollowOtherReplicas: two services (two replicas)
// share a Milvus-backed base and its statistics. Documents ingested through
// one change the keyword weights the other searches with within about
// FollowInterval: both then score the same chunks the same.
func TestExternalKeywordStatsFollowOtherReplicas(t *testing.T) {
	docs := kb.NewMemoryDocuments()
	shared, err := embedded.Open(t.Context(), embedded.NewMemoryRepository(), embedded.Options{})
	require.NoError(t, err)
	const yaml = "kind: Knowledge\nname: docs\nstore: {type: milvus, address: 127.0.0.1:19530}\n"
	open := func(q kb.Queue) *kb.Service {
		s, err := kb.New(t.Context(), kb.Options{Documents: docs, Stats: docs, Queue: q,
			NewMilvus: func(context.Context, *spec.Knowledge, int) (knowledge.VectorStore, error) { return shared, nil }})
		require.NoError(t, err)
		s.Configure(t.Context(), specs(t, t.TempDir(), yaml))
		return s
	}
	j := newJobEngine(t, "")
	a := open(j.queue())
	stopA := j.run(a)
	defer stopA()
	b := open(nil) // configured before any document: empty statistics
	ctx, cancel := context.WithCancel(t.Context())
	followed := make(chan error, 1)
	go func() { followed <- b.Follow(ctx) }()
	defer func() { cancel(); require.NoError(t, <-followed) }()

	for _, d := range []struct {
		name     string
		sections int
	}{{"billing.md", 6}, {"shipping.md", 3}} {
		up, _, err := a.Submit(t.Context(), kb.Upload{KnowledgeID: "docs", Name: d.name, Content: markdownDoc(strings.TrimSuffix(d.name, ".md"), d.sections)})
		require.NoError(t, err)
		waitStatus(t, a, up.ID, knowledge.StatusCompleted)
	}
	scores := func(s *kb.Service) []float64 {
		hits, err := s.Search(t.Context(), []string{"docs"}, "billing procedure", knowledge.ModeKeyword, 5, nil)
		require.NoError(t, err)
		require.NotEmpty(t, hits)
		out := make([]float64, len(hits))
		for i, h := range hits {
			out[i] = h.Score
		}
		return out
	}
	want := scores(a)
	require.Eventually(t, func() bool { return slices.Equal(want, scores(b)) }, 3*kb.FollowInterval+time.Second, 50*time.Millisecond,
		"b searches with a's keyword statistics")
}

// TestResumeLeavesARunningIngestionAlone: without a job queue an upload is
// ingested by the caller, and a reload's resume lists it as unfinished
// while that runs. Ingesting it a second time would clear the first
// ingestion's chunks under searches and write them again with other
// keyword weights; resume leaves it to the ingestion under way.
func TestResumeLeavesARunningIngestionAlone(t *testing.T) {
	t.Parallel()
	e := newEnv()
	e.gate.paused = make(chan struct{})
	ks := specs(t, t.TempDir(), docsKB)
	s, err := kb.New(t.Context(), kb.Options{Documents: e.docs, Chunks: e.chunks, Stats: e.docs,
		NewEmbedder: func(*spec.Knowledge) (knowledge.Embedder, error) { return e.gate, nil }})
	require.NoError(t, err)
	s.Configure(t.Context(), ks)
	stop := runService(s)
	defer stop()

	submitted := make(chan error, 1)
	go func() {
		_, _, err := s.Submit(context.Background(), kb.Upload{KnowledgeID: "docs", Name: "billing.md", Content: markdownDoc("billing", 2)})
		submitted <- err
	}()
	require.Eventually(t, func() bool { return e.gate.calls.Load() >= 1 }, 5*time.Second, time.Millisecond, "the upload's ingestion embeds")
	s.Configure(t.Context(), ks) // a reload: its resume finds the document processing
	require.Never(t, func() bool { return e.gate.calls.Load() > 1 }, 300*time.Millisecond, 5*time.Millisecond, "a second ingestion of the same document started")
	e.gate.resume()
	require.NoError(t, <-submitted)
	docs, _, err := s.List(t.Context(), knowledge.DocumentQuery{KnowledgeID: "docs"})
	require.NoError(t, err)
	require.Len(t, docs, 1)
	require.Equal(t, knowledge.StatusCompleted, docs[0].Status)
	require.EqualValues(t, 1, e.gate.calls.Load(), "one ingestion, one embedding batch")
}

// TestSearchWithNoBasesFindsNothing: a server without knowledge bases
// searches an empty list (console search, /knowledge/search); that finds
// nothing rather than failing.
func TestSearchWithNoBasesFindsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv()
	s, stop := e.start(t, specs(t, t.TempDir(), docsKB))
	defer stop()
	for _, ids := range [][]string{nil, {}} {
		hits, err := s.SearchWith(t.Context(), kb.SearchRequest{KnowledgeIDs: ids, Query: "widgets", Mode: knowledge.ModeHybrid, TopK: 3})
		require.NoError(t, err)
		require.Empty(t, hits)
	}
}

// TestPutWhileTheSameDocumentIsIngesting: a second put of a keyed document
// whose ingestion is still running in this process (a Kafka redelivery
// after a rebalance) neither deletes the document — cancelling that
// ingestion — nor reports the base missing: it says the document is busy,
// and the first put finishes the document.
func TestPutWhileTheSameDocumentIsIngesting(t *testing.T) {
	t.Parallel()
	e := newEnv()
	e.gate.paused = make(chan struct{})
	s, stop := e.start(t, specs(t, t.TempDir(), docsKB))
	defer stop()
	k := kb.Keyed{KnowledgeID: "docs", Key: "kafka:billing", Name: "billing.md", Content: markdownDoc("billing", 2)}
	first := make(chan error, 1)
	go func() {
		_, err := s.Put(context.Background(), k)
		first <- err
	}()
	require.Eventually(t, func() bool { return e.gate.calls.Load() >= 1 }, 5*time.Second, time.Millisecond, "the first put embeds")

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	changed, err := s.Put(ctx, k)
	require.Error(t, err)
	require.True(t, kb.Busy(err), "got %v", err)
	require.NotErrorIs(t, err, knowledge.ErrNotFound)
	require.False(t, changed)
	docs, _, err := s.List(t.Context(), knowledge.DocumentQuery{KnowledgeID: "docs"})
	require.NoError(t, err)
	require.Len(t, docs, 1, "the document under ingestion stays")
	require.Equal(t, knowledge.StatusProcessing, docs[0].Status)

	e.gate.resume()
	require.NoError(t, <-first, "the first put's ingestion was left alone")
	waitStatus(t, s, docs[0].ID, knowledge.StatusCompleted)
	changed, err = s.Put(t.Context(), k)
	require.NoError(t, err, "once the ingestion ends, the retry finds the document done")
	require.False(t, changed)
	require.EqualValues(t, 1, e.gate.calls.Load(), "one ingestion, one embedding batch")
}
