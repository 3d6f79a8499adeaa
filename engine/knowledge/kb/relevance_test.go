package kb_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/bm25"
	"github.com/troupehq/troupe/engine/knowledge/kb"
)

// Floors of the labelled retrieval set over agents.d/docs, just under what
// was measured (see TestDocsRelevance): a change that ranks worse fails.
var docsFloors = map[string]struct{ recall5, mrr float64 }{
	"vector":        {0.95, 0.85},
	"keyword":       {0.95, 0.90},
	"hybrid":        {0.95, 0.87},
	"hybrid+rerank": {0.95, 0.87},
}

// labelled is a question of testdata/docs_questions.yaml.
type labelled struct {
	Q       string `yaml:"q"`
	Doc     string `yaml:"doc"`
	Section string `yaml:"section"`
}

// fakeReranker is a /rerank server on loopback. Each document scores
// score(query, document); the reply has the Cohere and Jina shape, or
// TEI's when tei is set; delay holds every reply.
type fakeReranker struct {
	score func(query, doc string) float64
	tei   bool
	delay time.Duration
	calls chan []string // the documents of each request, when not nil
}

func (f *fakeReranker) start(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/rerank" || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		var req struct {
			Model     string   `json:"model"`
			Query     string   `json:"query"`
			Documents []string `json:"documents"`
			Texts     []string `json:"texts"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Model != "rerank-test" || !slices.Equal(req.Documents, req.Texts) {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if f.calls != nil {
			f.calls <- req.Documents
		}
		if f.delay > 0 {
			select {
			case <-time.After(f.delay):
			case <-r.Context().Done():
				return
			}
		}
		type res struct {
			index int
			score float64
		}
		scored := make([]res, len(req.Documents))
		for i, d := range req.Documents {
			scored[i] = res{i, f.score(req.Query, d)}
		}
		// Best first, as the real servers answer.
		slices.SortStableFunc(scored, func(a, b res) int { return cmpFloat(b.score, a.score) })
		field := "relevance_score"
		if f.tei {
			field = "score"
		}
		out := make([]map[string]any, len(scored))
		for i, r := range scored {
			out[i] = map[string]any{"index": r.index, field: r.score}
		}
		w.Header().Set("Content-Type", "application/json")
		if f.tei {
			_ = json.NewEncoder(w).Encode(out)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"results": out})
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/v1"
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// overlap is the fake reranker's relevance: the share of the query's
// distinct terms the document contains.
func overlap(query, doc string) float64 {
	have := map[string]bool{}
	for _, t := range bm25.Terms(doc) {
		have[t] = true
	}
	q := slices.Compact(slices.Sorted(slices.Values(bm25.Terms(query))))
	n := 0
	for _, t := range q {
		if have[t] {
			n++
		}
	}
	if len(q) == 0 {
		return 0
	}
	return float64(n) / float64(len(q))
}

// docsService ingests agents.d/docs into base "docs" (a section per chunk)
// and, when rerankURL is set, base "docs-rr" with rerank: through a Model
// at rerankURL, and returns the service.
func docsService(t *testing.T, rerankURL string, timeout string) *kb.Service {
	t.Helper()
	src := "kind: Knowledge\nname: docs\nchunking: {strategy: markdown, size: 64, overlap: 0}\n" +
		"---\nkind: Knowledge\nname: docs-strict\nchunking: {strategy: markdown, size: 64, overlap: 0}\nsearch: {min_score: 0.4}\n"
	if rerankURL != "" {
		src += "---\nkind: Knowledge\nname: docs-rr\nchunking: {strategy: markdown, size: 64, overlap: 0}\n" +
			"rerank: {model: reranker, timeout: " + timeout + "}\n" +
			"---\nkind: Model\nname: reranker\nprovider: openai\nmodel: rerank-test\nbase_url: " + rerankURL + "\n"
	}
	s, err := kb.New(t.Context(), kb.Options{Documents: kb.NewMemoryDocuments(), Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))})
	require.NoError(t, err)
	specs := knowledgeSpecs(t, src)
	s.Configure(t.Context(), specs)
	stop := runService(s)
	t.Cleanup(stop)
	paths, err := filepath.Glob(filepath.Join("..", "..", "..", "agents.d", "docs", "*.md"))
	require.NoError(t, err)
	require.NotEmpty(t, paths)
	slices.Sort(paths)
	for _, k := range specs {
		for _, p := range paths {
			data, err := os.ReadFile(p)
			require.NoError(t, err)
			d, _, err := s.Submit(t.Context(), kb.Upload{KnowledgeID: k.Name, Name: filepath.Base(p), Content: data})
			require.NoError(t, err)
			require.Eventually(t, func() bool {
				d, err = s.Get(t.Context(), d.ID)
				return err == nil && d.Status != knowledge.StatusProcessing
			}, 30*time.Second, 2*time.Millisecond)
			require.Equal(t, knowledge.StatusCompleted, d.Status, d.Message)
		}
	}
	return s
}

// TestDocsRelevance reports recall@1, recall@5 and MRR of every mode (and
// of hybrid search reranked by a loopback /rerank server scoring term
// overlap) on the labelled set over agents.d/docs, and fails when one drops
// below its floor. A hit is right when it is the labelled section of the
// labelled document.
func TestDocsRelevance(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "docs_questions.yaml"))
	require.NoError(t, err)
	var qs []labelled
	require.NoError(t, yaml.Unmarshal(raw, &qs))
	require.NotEmpty(t, qs)
	url := (&fakeReranker{score: overlap}).start(t)
	s := docsService(t, url, "5s")

	type row struct{ name, base, mode string }
	rows := []row{
		{"vector", "docs", knowledge.ModeVector},
		{"keyword", "docs", knowledge.ModeKeyword},
		{"hybrid", "docs", knowledge.ModeHybrid},
		{"hybrid+rerank", "docs-rr", knowledge.ModeHybrid},
	}
	var table strings.Builder
	fmt.Fprintf(&table, "agents.d/docs, %d questions, local embedder:\n  %-14s %9s %9s %7s\n", len(qs), "mode", "recall@1", "recall@5", "MRR@10")
	for _, r := range rows {
		var r1, r5, mrr float64
		for _, q := range qs {
			hits, err := s.Search(t.Context(), []string{r.base}, q.Q, r.mode, 10, nil)
			require.NoError(t, err)
			for _, h := range hits {
				require.GreaterOrEqual(t, h.Score, 0.0)
				require.LessOrEqual(t, h.Score, 1.0)
			}
			rank := slices.IndexFunc(hits, func(h knowledge.Hit) bool {
				return h.Document == q.Doc && strings.HasSuffix(h.Heading, q.Section)
			})
			if rank == 0 {
				r1++
			}
			if rank >= 0 && rank < 5 {
				r5++
			}
			if rank >= 0 {
				mrr += 1 / float64(rank+1)
			} else {
				t.Logf("%s: %q: %s > %s not in the top 10", r.name, q.Q, q.Doc, q.Section)
			}
		}
		n := float64(len(qs))
		r1, r5, mrr = r1/n, r5/n, mrr/n
		fmt.Fprintf(&table, "  %-14s %9.3f %9.3f %7.3f\n", r.name, r1, r5, mrr)
		floor := docsFloors[r.name]
		require.GreaterOrEqual(t, r5, floor.recall5, "%s recall@5", r.name)
		require.GreaterOrEqual(t, mrr, floor.mrr, "%s MRR", r.name)
	}
	// For reference: reciprocal rank fusion of the same two lists, the
	// hybrid ranking before scores became readable.
	var r5, mrr float64
	for _, q := range qs {
		v, err := s.Search(t.Context(), []string{"docs"}, q.Q, knowledge.ModeVector, 50, nil)
		require.NoError(t, err)
		k, err := s.Search(t.Context(), []string{"docs"}, q.Q, knowledge.ModeKeyword, 50, nil)
		require.NoError(t, err)
		hits := knowledge.Fuse(10, v, k)
		rank := slices.IndexFunc(hits, func(h knowledge.Hit) bool {
			return h.Document == q.Doc && strings.HasSuffix(h.Heading, q.Section)
		})
		if rank >= 0 && rank < 5 {
			r5++
		}
		if rank >= 0 {
			mrr += 1 / float64(rank+1)
		}
	}
	fmt.Fprintf(&table, "  %-14s %9s %9.3f %7.3f (reference)\n", "hybrid RRF", "", r5/float64(len(qs)), mrr/float64(len(qs)))
	t.Log(table.String())
	require.Zero(t, s.RerankFallbacks(), "every search was reranked")
}

// TestMinScore checks that min_score drops exactly the hits scoring below
// it, in every mode, per query and as a base's default, and that every
// score is within [0, 1].
func TestMinScore(t *testing.T) {
	s := docsService(t, "", "")
	zero := 0.0
	for _, mode := range []string{knowledge.ModeVector, knowledge.ModeKeyword, knowledge.ModeHybrid} {
		t.Run(mode, func(t *testing.T) {
			all, err := s.SearchWith(t.Context(), kb.SearchRequest{KnowledgeIDs: []string{"docs"}, Query: "retry a failing model with fallbacks", Mode: mode, TopK: 10})
			require.NoError(t, err)
			// Without min_score top_k is filled (keyword search: with
			// every chunk that has a query term).
			require.GreaterOrEqual(t, len(all), 5)
			for _, h := range all {
				require.GreaterOrEqual(t, h.Score, 0.0)
				require.LessOrEqual(t, h.Score, 1.0)
			}
			require.Greater(t, all[0].Score, all[len(all)-1].Score)
			cut := all[2].Score
			var want []knowledge.Hit
			for _, h := range all {
				if h.Score >= cut {
					want = append(want, h)
				}
			}
			got, err := s.SearchWith(t.Context(), kb.SearchRequest{KnowledgeIDs: []string{"docs"}, Query: "retry a failing model with fallbacks", Mode: mode, TopK: 10, MinScore: &cut})
			require.NoError(t, err)
			require.Equal(t, want, got)
			require.Less(t, len(got), len(all))

			// The base's search.min_score (0.4) applies unless the query
			// sets its own.
			strict, err := s.SearchWith(t.Context(), kb.SearchRequest{KnowledgeIDs: []string{"docs-strict"}, Query: "retry a failing model with fallbacks", Mode: mode, TopK: 10})
			require.NoError(t, err)
			for _, h := range strict {
				require.GreaterOrEqual(t, h.Score, 0.4)
			}
			require.Less(t, len(strict), len(all))
			loose, err := s.SearchWith(t.Context(), kb.SearchRequest{KnowledgeIDs: []string{"docs-strict"}, Query: "retry a failing model with fallbacks", Mode: mode, TopK: 10, MinScore: &zero})
			require.NoError(t, err)
			require.Len(t, loose, len(all))
		})
	}
	bad := 1.5
	_, err := s.SearchWith(t.Context(), kb.SearchRequest{KnowledgeIDs: []string{"docs"}, Query: "x", MinScore: &bad})
	require.ErrorContains(t, err, "min_score 1.5 is out of range")
}

// TestKeywordScoreMeaning checks the documented keyword score: a query
// whose every term a chunk contains scores near 1, one with none of them 0.
func TestKeywordScoreMeaning(t *testing.T) {
	s := docsService(t, "", "")
	hits, err := s.Search(t.Context(), []string{"docs"}, "retries fallbacks", knowledge.ModeKeyword, 10, nil)
	require.NoError(t, err)
	require.Len(t, hits, 1, "one chunk has these words")
	require.Equal(t, "models.md", hits[0].Document)
	require.InDelta(t, 1.0, hits[0].Score, 0.35)
	hits, err = s.Search(t.Context(), []string{"docs"}, "kubernetes", knowledge.ModeKeyword, 10, nil)
	require.NoError(t, err)
	require.Empty(t, hits)
}

// TestRerank checks that a base with rerank: orders its hits by the
// reranker's relevance and reports it as the score, with both reply shapes,
// and that a reranker slower than rerank.timeout leaves the search order
// and is counted.
func TestRerank(t *testing.T) {
	ollama := func(_, doc string) float64 {
		if strings.Contains(strings.ToLower(doc), "ollama") {
			return 0.9
		}
		return 0.2
	}
	const query = "install and run the server"
	for _, tei := range []bool{false, true} {
		t.Run(fmt.Sprintf("tei=%v", tei), func(t *testing.T) {
			f := &fakeReranker{score: ollama, tei: tei, calls: make(chan []string, 10)}
			s := docsService(t, f.start(t), "5s")
			plain, err := s.Search(t.Context(), []string{"docs"}, query, knowledge.ModeHybrid, 5, nil)
			require.NoError(t, err)
			require.NotContains(t, strings.ToLower(plain[0].Text), "ollama", "the search alone ranks another chunk first")
			hits, err := s.Search(t.Context(), []string{"docs-rr"}, query, knowledge.ModeHybrid, 5, nil)
			require.NoError(t, err)
			require.Len(t, hits, 5)
			require.Contains(t, hits[0].Text, "Ollama")
			require.InDelta(t, 0.9, hits[0].Score, 1e-9)
			for _, h := range hits[1:] {
				require.InDelta(t, 0.2, h.Score, 1e-9)
			}
			// Every chunk was a candidate (10 < the default 20), not only
			// the top 5.
			require.Len(t, <-f.calls, 10)
			require.Zero(t, s.RerankFallbacks())
		})
	}
	t.Run("timeout", func(t *testing.T) {
		f := &fakeReranker{score: ollama, delay: 5 * time.Second}
		s := docsService(t, f.start(t), "100ms")
		start := time.Now()
		hits, err := s.Search(t.Context(), []string{"docs-rr"}, query, knowledge.ModeHybrid, 5, nil)
		require.NoError(t, err)
		require.Less(t, time.Since(start), 2*time.Second)
		plain, err := s.Search(t.Context(), []string{"docs"}, query, knowledge.ModeHybrid, 5, nil)
		require.NoError(t, err)
		type seen struct {
			doc, heading string
			score        float64
		}
		view := func(hs []knowledge.Hit) []seen {
			var out []seen
			for _, h := range hs {
				if h.Score > 0 { // ties at 0 follow chunk ids, which differ by base
					out = append(out, seen{h.Document, h.Heading, h.Score})
				}
			}
			return out
		}
		require.Equal(t, view(plain), view(hits), "the search order and scores")
		require.EqualValues(t, 1, s.RerankFallbacks())
	})
}

// TestConfigureFollowsAChangedRerankModel: the rerank Model is resolved
// per snapshot, so a reload where only the Model changed (its base_url)
// hands Configure an unchanged Knowledge document; the next search must
// still reach the new reranker.
func TestConfigureFollowsAChangedRerankModel(t *testing.T) {
	t.Parallel()
	first := &fakeReranker{score: func(string, string) float64 { return 0.5 }, calls: make(chan []string, 10)}
	second := &fakeReranker{score: func(string, string) float64 { return 0.5 }, calls: make(chan []string, 10)}
	src := func(url string) string {
		return "kind: Knowledge\nname: docs\nrerank: {model: reranker}\n" +
			"---\nkind: Model\nname: reranker\nprovider: openai\nmodel: rerank-test\nbase_url: " + url + "\n"
	}
	s, err := kb.New(t.Context(), kb.Options{Documents: kb.NewMemoryDocuments()})
	require.NoError(t, err)
	s.Configure(t.Context(), knowledgeSpecs(t, src(first.start(t))))
	stop := runService(s)
	defer stop()
	_, _, err = s.Submit(t.Context(), kb.Upload{KnowledgeID: "docs", Name: "billing.md", Content: markdownDoc("billing", 2)})
	require.NoError(t, err)
	hits, err := s.Search(t.Context(), []string{"docs"}, "billing widgets", knowledge.ModeHybrid, 3, nil)
	require.NoError(t, err)
	require.NotEmpty(t, hits)
	require.NotEmpty(t, <-first.calls)

	s.Configure(t.Context(), knowledgeSpecs(t, src(second.start(t))))
	_, err = s.Search(t.Context(), []string{"docs"}, "billing widgets", knowledge.ModeHybrid, 3, nil)
	require.NoError(t, err)
	require.Len(t, second.calls, 1, "the search reached the new model's reranker")
	require.Empty(t, first.calls, "not the old one")
	require.Zero(t, s.RerankFallbacks())
}
