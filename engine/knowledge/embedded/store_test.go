package embedded

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/bm25"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const kb = "docs"

// doc is a test document: its chunks' texts and vectors.
type doc struct {
	id    string
	meta  map[string]any
	texts []string
	vecs  [][]float32
}

func norm(v []float32) []float32 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(float64(x) / math.Sqrt(s))
	}
	return out
}

func randVec(r *rand.Rand, dim int) []float32 {
	v := make([]float32, dim)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return norm(v)
}

// upsert writes a document the way the ingestion pipeline does: document
// weights computed with the store's current average length.
func upsert(t testing.TB, s *Store, knowledgeID string, d doc) {
	t.Helper()
	st := s.Stats(knowledgeID)
	avgdl := st.AvgDL()
	chunks := make([]knowledge.Chunk, len(d.texts))
	sparse := make([]map[uint32]float32, len(d.texts))
	for i, text := range d.texts {
		chunks[i] = knowledge.Chunk{
			ID: knowledge.ChunkID(d.id, i), KnowledgeID: knowledgeID, DocumentID: d.id, Document: d.id + ".md",
			Index: i, Text: text, Page: i + 1, Heading: "Guide > " + d.id, Metadata: d.meta,
		}
		sparse[i], _ = bm25.Doc(text, avgdl)
	}
	require.NoError(t, s.Upsert(context.Background(), knowledgeID, chunks, d.vecs, sparse))
}

func open(t testing.TB, repo knowledge.ChunkRepository) *Store {
	t.Helper()
	s, err := Open(context.Background(), repo, Options{})
	require.NoError(t, err)
	return s
}

func search(t testing.TB, s *Store, q knowledge.Query) []knowledge.Hit {
	t.Helper()
	hits, err := s.Search(context.Background(), kb, q)
	require.NoError(t, err)
	return hits
}

func ids(hits []knowledge.Hit) []string {
	out := make([]string, len(hits))
	for i, h := range hits {
		out[i] = h.ID
	}
	return out
}

// fixture is a small corpus with 4-dimensional vectors whose order against
// the query axes is easy to see.
func fixture(t *testing.T) (*Store, *MemoryRepository) {
	repo := NewMemoryRepository()
	s := open(t, repo)
	upsert(t, s, kb, doc{id: "install", meta: map[string]any{"lang": "go", "year": 2024, "draft": false},
		texts: []string{"Installing the server is quick", "After you installed it, configure the port"},
		vecs:  [][]float32{norm([]float32{1, 0, 0, 0}), norm([]float32{0.8, 0.6, 0, 0})}})
	upsert(t, s, kb, doc{id: "usage", meta: map[string]any{"lang": "rust", "year": 2023.0},
		texts: []string{"Usage: run the binary with a config file", "Logs go to standard error"},
		vecs:  [][]float32{norm([]float32{0, 1, 0, 0}), norm([]float32{0, 0, 1, 0})}})
	upsert(t, s, kb, doc{id: "faq", meta: map[string]any{"lang": "go", "tags": "faq"},
		texts: []string{"Why does the install fail? Check the port and the installs log", "Nothing else"},
		vecs:  [][]float32{norm([]float32{0.6, 0, 0, 0.8}), norm([]float32{0, 0, 0, 1})}})
	return s, repo
}

func TestVectorSearch(t *testing.T) {
	s, _ := fixture(t)
	hits := search(t, s, knowledge.Query{Mode: knowledge.ModeVector, Vector: norm([]float32{1, 0, 0, 0}), TopK: 3})
	require.Equal(t, []string{"install-00000", "install-00001", "faq-00000"}, ids(hits))
	require.InDelta(t, 1.0, hits[0].Score, 1e-6)
	require.InDelta(t, 0.8, hits[1].Score, 1e-6)
	require.InDelta(t, 0.6, hits[2].Score, 1e-6)

	h := hits[0]
	require.Equal(t, "Installing the server is quick", h.Text)
	require.Equal(t, kb, h.KnowledgeID)
	require.Equal(t, "install", h.DocumentID)
	require.Equal(t, "install.md", h.Document)
	require.Equal(t, 0, h.Index)
	require.Equal(t, 1, h.Page)
	require.Equal(t, "Guide > install", h.Heading)
	require.Equal(t, map[string]any{"lang": "go", "year": 2024, "draft": false}, h.Metadata)

	// Hits own their metadata.
	h.Metadata["lang"] = "changed"
	hits = search(t, s, knowledge.Query{Mode: knowledge.ModeVector, Vector: norm([]float32{1, 0, 0, 0}), TopK: 1})
	require.Equal(t, "go", hits[0].Metadata["lang"])

	hits = search(t, s, knowledge.Query{Mode: knowledge.ModeVector, Vector: norm([]float32{0, 0, 0.1, 1}), TopK: 2})
	require.Equal(t, []string{"faq-00001", "faq-00000"}, ids(hits))

	// Without texts: the same hits, their texts never read.
	bare := search(t, s, knowledge.Query{Mode: knowledge.ModeVector, Vector: norm([]float32{1, 0, 0, 0}), TopK: 3, WithoutText: true})
	require.Equal(t, []string{"install-00000", "install-00001", "faq-00000"}, ids(bare))
	require.Empty(t, bare[0].Text)
	require.Equal(t, "install", bare[0].DocumentID)
	require.Equal(t, "go", bare[0].Metadata["lang"])
}

func TestKeywordSearch(t *testing.T) {
	s, _ := fixture(t)
	st := s.Stats(kb)
	require.Equal(t, 6, st.N)

	// "install" matches installing, installed, install and installs.
	q := knowledge.Query{Mode: knowledge.ModeKeyword, Text: "how to install", TopK: 10}
	q.Sparse = st.Query(q.Text)
	hits := search(t, s, q)
	require.ElementsMatch(t, []string{"install-00000", "install-00001", "faq-00000"}, ids(hits))
	// faq-00000 has the term twice: it ranks first.
	require.Equal(t, "faq-00000", hits[0].ID)
	require.True(t, slices.IsSortedFunc(hits, func(a, b knowledge.Hit) int { return -cmpFloat(a.Score, b.Score) }))

	// Scores are the BM25 dot products.
	want := map[string]float64{}
	repo := s.repo.(*MemoryRepository)
	for _, r := range repo.records {
		var score float64
		for id, qw := range q.Sparse {
			score += float64(qw) * float64(r.Sparse[id])
		}
		if score > 0 {
			want[r.Chunk.ID] = score
		}
	}
	require.Len(t, want, 3)
	for _, h := range hits {
		require.InDelta(t, want[h.ID], h.Score, 1e-5, h.ID)
	}

	// Without Sparse the store computes the query vector from Text.
	q.Sparse = nil
	require.Equal(t, hits, search(t, s, q))
	// An empty mode without a vector is keyword.
	q.Mode = ""
	require.Equal(t, hits, search(t, s, q))

	// Terms nobody has: no hits.
	require.Empty(t, search(t, s, knowledge.Query{Mode: knowledge.ModeKeyword, Text: "kubernetes"}))
	require.Empty(t, search(t, s, knowledge.Query{Mode: knowledge.ModeKeyword}))
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

func TestHybridSearch(t *testing.T) {
	s, _ := fixture(t)
	st := s.Stats(kb)
	vec := norm([]float32{0, 0.2, 1, 0})
	text := "install port"
	base := knowledge.Query{Text: text, Vector: vec, Sparse: st.Query(text), TopK: 4}

	vq, kq, hq := base, base, base
	vq.Mode, vq.TopK = knowledge.ModeVector, 50
	kq.Mode, kq.TopK = knowledge.ModeKeyword, 50
	hq.Mode = knowledge.ModeHybrid
	// The lists cover every chunk, so fusing them here scores every
	// candidate on both sides, as the store does.
	want := knowledge.FuseScores(4, knowledge.IDFMass(base.Sparse), search(t, s, vq), search(t, s, kq))
	got := search(t, s, hq)
	require.Equal(t, ids(want), ids(got))
	require.Len(t, got, 4)
	for i := range got {
		require.InDelta(t, want[i].Score, got[i].Score, 1e-6)
		require.InDelta(t, 0.5, got[i].Score, 0.5, "a readable score")
	}
	// The best chunk matches both; the vector's nearest chunk
	// (usage-00001) is in the fused list although no keyword matches it.
	require.Equal(t, "install-00001", ids(got)[0])
	require.Contains(t, ids(got), "usage-00001")

	// An empty mode with a vector is hybrid.
	hq.Mode = ""
	require.Equal(t, got, search(t, s, hq))
}

func TestFilters(t *testing.T) {
	s, _ := fixture(t)
	st := s.Stats(kb)
	vec := norm([]float32{1, 1, 1, 1})
	cases := []struct {
		filters knowledge.Filters
		docs    []string
	}{
		{knowledge.Filters{"lang": "go"}, []string{"install", "faq"}},
		{knowledge.Filters{"lang": []any{"rust", "python"}}, []string{"usage"}},
		{knowledge.Filters{"lang": []any{"rust", "go"}}, []string{"install", "usage", "faq"}},
		{knowledge.Filters{"year": 2024.0}, []string{"install"}}, // stored as int
		{knowledge.Filters{"year": 2023}, []string{"usage"}},     // stored as float64
		{knowledge.Filters{"year": []any{2023, 2024.0}}, []string{"install", "usage"}},
		{knowledge.Filters{"lang": "go", "tags": "faq"}, []string{"faq"}},
		{knowledge.Filters{"draft": false}, []string{"install"}},
		{knowledge.Filters{"missing": "x"}, nil},
		{knowledge.Filters{"lang": "cobol"}, nil},
		{knowledge.Filters{}, []string{"install", "usage", "faq"}},
	}
	for _, c := range cases {
		for _, mode := range []string{knowledge.ModeVector, knowledge.ModeKeyword, knowledge.ModeHybrid} {
			text := "the install port binary logs config error nothing"
			q := knowledge.Query{Mode: mode, Text: text, Vector: vec, Sparse: st.Query(text), TopK: 10, Filters: c.filters}
			hits := search(t, s, q)
			var docs []string
			for _, h := range hits {
				if !slices.Contains(docs, h.DocumentID) {
					docs = append(docs, h.DocumentID)
				}
				require.True(t, c.filters.Match(h.Metadata), "%s %v: %s", mode, c.filters, h.ID)
			}
			require.ElementsMatch(t, c.docs, docs, "%s %v", mode, c.filters)
		}
	}
}

func TestReupsertReplaces(t *testing.T) {
	s, repo := fixture(t)
	before := s.Stats(kb)
	require.Equal(t, 6, s.Count(kb))

	// Re-ingest the install document with new text and vectors.
	upsert(t, s, kb, doc{id: "install", meta: map[string]any{"lang": "zig"},
		texts: []string{"Deploy with the container image", "Then scale it horizontally"},
		vecs:  [][]float32{norm([]float32{0, 0, 0.1, 1}), norm([]float32{0, 0, 1, 1})}})
	require.Equal(t, 6, s.Count(kb))
	require.Equal(t, 6, repo.Len())
	after := s.Stats(kb)
	require.Equal(t, before.N, after.N)
	require.NotContains(t, after.DF, bm25.TermID("quick"))
	require.Equal(t, 1, after.DF[bm25.TermID("deploy")])
	require.Equal(t, 3, before.DF[bm25.TermID("install")])
	require.Equal(t, 1, after.DF[bm25.TermID("install")])

	hits := search(t, s, knowledge.Query{Mode: knowledge.ModeVector, Vector: norm([]float32{0, 0, 0.1, 1}), TopK: 10})
	require.Len(t, hits, 6) // no duplicates
	require.Equal(t, "install-00000", hits[0].ID)
	require.Equal(t, "Deploy with the container image", hits[0].Text)
	require.Equal(t, map[string]any{"lang": "zig"}, hits[0].Metadata)
	require.Equal(t, []string{"install-00000"}, ids(search(t, s, knowledge.Query{Mode: knowledge.ModeKeyword, Text: "container"})))
	require.NotContains(t, ids(search(t, s, knowledge.Query{Mode: knowledge.ModeKeyword, Text: "quick server"})), "install-00000")
	hits = search(t, s, knowledge.Query{Mode: knowledge.ModeVector, Vector: norm([]float32{1, 0, 0, 0}), Filters: knowledge.Filters{"lang": "go"}, TopK: 10})
	require.Equal(t, []string{"faq-00000", "faq-00001"}, ids(hits))

	// The same id twice in one batch: the last one wins.
	v := norm([]float32{1, 2, 3, 4})
	c := knowledge.Chunk{ID: "dup", DocumentID: "dup", Text: "first"}
	c2 := c
	c2.Text = "second"
	require.NoError(t, s.Upsert(context.Background(), kb, []knowledge.Chunk{c, c2}, [][]float32{v, v}, nil))
	require.Equal(t, 7, s.Count(kb))
	hits = search(t, s, knowledge.Query{Mode: knowledge.ModeVector, Vector: v, TopK: 1})
	require.Equal(t, "second", hits[0].Text)
}

func TestDeleteDocument(t *testing.T) {
	s, repo := fixture(t)
	ctx := context.Background()
	require.NoError(t, s.DeleteDocument(ctx, kb, "install"))
	require.Equal(t, 4, s.Count(kb))
	require.Equal(t, 4, repo.Len())
	for _, mode := range []string{knowledge.ModeVector, knowledge.ModeKeyword, knowledge.ModeHybrid} {
		hits := search(t, s, knowledge.Query{Mode: mode, Text: "installing the server", Vector: norm([]float32{1, 0, 0, 0}), TopK: 10})
		for _, h := range hits {
			require.NotEqual(t, "install", h.DocumentID, mode)
		}
	}
	// The statistics are those of the remaining documents.
	ref := open(t, NewMemoryRepository())
	for _, d := range []string{"usage", "faq"} {
		var texts []string
		for _, r := range repo.records {
			if r.Chunk.DocumentID == d {
				texts = append(texts, r.Chunk.Text)
			}
		}
		slices.Sort(texts)
		upsert(t, ref, kb, doc{id: d, texts: texts, vecs: [][]float32{norm([]float32{1, 0, 0, 0}), norm([]float32{1, 0, 0, 0})}})
	}
	require.Equal(t, ref.Stats(kb), s.Stats(kb))

	// Deleting an unknown document, or in an unknown knowledge base, is fine.
	require.NoError(t, s.DeleteDocument(ctx, kb, "nope"))
	require.NoError(t, s.DeleteDocument(ctx, "other", "nope"))

	// Deleting everything empties the index; a new dimension is then accepted.
	require.NoError(t, s.DeleteDocument(ctx, kb, "usage"))
	require.NoError(t, s.DeleteDocument(ctx, kb, "faq"))
	require.Zero(t, s.Count(kb))
	require.Equal(t, bm25.Stats{DF: map[uint32]int{}}, s.Stats(kb))
	require.Empty(t, search(t, s, knowledge.Query{Mode: knowledge.ModeHybrid, Text: "port", Vector: norm([]float32{1, 0, 0, 0})}))
	upsert(t, s, kb, doc{id: "wide", texts: []string{"eight dimensions"}, vecs: [][]float32{norm([]float32{1, 1, 1, 1, 1, 1, 1, 1})}})
	require.Equal(t, 1, s.Count(kb))
}

func TestTopK(t *testing.T) {
	repo := NewMemoryRepository()
	s := open(t, repo)
	r := rand.New(rand.NewPCG(1, 2))
	for d := range 10 {
		dd := doc{id: fmt.Sprintf("d%02d", d)}
		for i := range 10 {
			dd.texts = append(dd.texts, fmt.Sprintf("common words chunk %d of document %d", i, d))
			dd.vecs = append(dd.vecs, randVec(r, 16))
		}
		upsert(t, s, kb, dd)
	}
	q := randVec(r, 16)
	for _, mode := range []string{knowledge.ModeVector, knowledge.ModeKeyword, knowledge.ModeHybrid} {
		require.Len(t, search(t, s, knowledge.Query{Mode: mode, Text: "common chunk", Vector: q, TopK: 7}), 7, mode)
		require.Len(t, search(t, s, knowledge.Query{Mode: mode, Text: "common chunk", Vector: q}), DefaultTopK, mode)
		require.Len(t, search(t, s, knowledge.Query{Mode: mode, Text: "common chunk", Vector: q, TopK: 500}), 100, mode)
	}
	// Equal keyword scores are ordered by document then position.
	hits := search(t, s, knowledge.Query{Mode: knowledge.ModeKeyword, Text: "common", TopK: 12})
	require.Equal(t, "d00-00000", hits[0].ID)
	require.Equal(t, "d01-00001", hits[11].ID)
}

func TestErrors(t *testing.T) {
	s, _ := fixture(t)
	ctx := context.Background()
	v := norm([]float32{1, 0, 0, 0})
	_, err := s.Search(ctx, kb, knowledge.Query{Mode: "fuzzy", Vector: v})
	require.ErrorContains(t, err, "unknown search mode")
	_, err = s.Search(ctx, kb, knowledge.Query{Mode: knowledge.ModeVector, Text: "x"})
	require.ErrorContains(t, err, "without a query vector")
	_, err = s.Search(ctx, kb, knowledge.Query{Mode: knowledge.ModeHybrid, Vector: []float32{1, 0}})
	require.ErrorContains(t, err, "dimension 2")

	c := knowledge.Chunk{ID: "x", DocumentID: "x", Text: "x"}
	require.ErrorContains(t, s.Upsert(ctx, kb, []knowledge.Chunk{c}, [][]float32{{1, 0}}, nil), "dimension 4")
	require.ErrorContains(t, s.Upsert(ctx, kb, []knowledge.Chunk{c}, nil, nil), "dense vectors")
	require.ErrorContains(t, s.Upsert(ctx, kb, []knowledge.Chunk{c, c}, [][]float32{{1}, {1, 0}}, nil), "dimension")
	require.ErrorContains(t, s.Upsert(ctx, kb, []knowledge.Chunk{c}, [][]float32{v}, []map[uint32]float32{{}, {}}), "sparse")
	require.ErrorContains(t, s.Upsert(ctx, kb, []knowledge.Chunk{{}}, [][]float32{v}, nil), "without an id")
	require.ErrorContains(t, s.Upsert(ctx, kb, []knowledge.Chunk{c}, [][]float32{{1, float32(math.NaN()), 0, 0}}, nil), "NaN")
	require.Equal(t, 6, s.Count(kb))

	// Unknown knowledge bases are empty.
	hits, err := s.Search(ctx, "unknown", knowledge.Query{Mode: knowledge.ModeVector, Vector: v})
	require.NoError(t, err)
	require.Empty(t, hits)
	require.Zero(t, s.Count("unknown"))

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = s.Search(cancelled, kb, knowledge.Query{Mode: knowledge.ModeVector, Vector: v})
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, s.Upsert(cancelled, kb, []knowledge.Chunk{c}, [][]float32{v}, nil), context.Canceled)
	require.Equal(t, 6, s.Count(kb)) // nothing reached memory
}

// TestKnowledgeBasesAreSeparate checks that bases share nothing.
func TestKnowledgeBasesAreSeparate(t *testing.T) {
	s, _ := fixture(t)
	upsert(t, s, "other", doc{id: "o", texts: []string{"install elsewhere"}, vecs: [][]float32{norm([]float32{1, 0})}})
	require.Equal(t, 1, s.Count("other"))
	require.Equal(t, 6, s.Count(kb))
	hits, err := s.Search(context.Background(), "other", knowledge.Query{Mode: knowledge.ModeHybrid, Text: "install", Vector: norm([]float32{1, 0})})
	require.NoError(t, err)
	require.Equal(t, []string{"o-00000"}, ids(hits))
	require.Equal(t, "other", hits[0].KnowledgeID)
}

// history applies a mix of upserts, re-upserts and deletes, enough to
// trigger compactions.
func history(t *testing.T, s *Store, r *rand.Rand, words []string) {
	for step := range 200 {
		d := fmt.Sprintf("doc%02d", r.IntN(40))
		if step%7 == 6 {
			require.NoError(t, s.DeleteDocument(context.Background(), kb, d))
			continue
		}
		dd := doc{id: d, meta: map[string]any{"group": float64(r.IntN(3)), "kind": []string{"a", "b"}[r.IntN(2)]}}
		for range 1 + r.IntN(6) {
			dd.texts = append(dd.texts, randText(r, words, 5+r.IntN(30)))
			dd.vecs = append(dd.vecs, randVec(r, 24))
		}
		upsert(t, s, kb, dd)
	}
}

func randText(r *rand.Rand, words []string, n int) string {
	b := make([]byte, 0, n*8)
	for i := range n {
		if i > 0 {
			b = append(b, ' ')
		}
		// Zipf-like: low ranks are much more frequent.
		b = append(b, words[int(float64(len(words))*math.Pow(r.Float64(), 3))]...)
	}
	return string(b)
}

func vocabulary(n int) []string {
	r := rand.New(rand.NewPCG(7, 7))
	words := make([]string, n)
	const letters = "abcdefghijklmnopqrstuvwxyz"
	for i := range words {
		w := make([]byte, 4+r.IntN(6))
		for j := range w {
			w[j] = letters[r.IntN(len(letters))]
		}
		words[i] = string(w)
	}
	return words
}

// brute is the reference: every live record scored directly.
func brute(repo *MemoryRepository, q knowledge.Query) []knowledge.Hit {
	var hits []knowledge.Hit
	for _, r := range repo.records {
		if !q.Filters.Match(r.Chunk.Metadata) {
			continue
		}
		var score float64
		if q.Mode == knowledge.ModeVector {
			score = float64(dotGeneric(q.Vector, r.Dense))
		} else {
			for id, w := range q.Sparse {
				score += float64(w) * float64(r.Sparse[id])
			}
			if score <= 0 {
				continue
			}
		}
		hits = append(hits, knowledge.Hit{Chunk: r.Chunk, Score: score})
	}
	knowledge.SortHits(hits)
	return hits[:min(len(hits), q.TopK)]
}

// withCodes runs f with new indexes keeping int8 codes or not.
func withCodes(t *testing.T, f func(t *testing.T)) {
	for _, codes := range []bool{true, false} {
		t.Run(fmt.Sprintf("codes=%v", codes), func(t *testing.T) {
			defer func(saved bool) { useCodes = saved }(useCodes)
			useCodes = codes
			f(t)
		})
	}
}

func TestAgainstBruteForceAndRestart(t *testing.T) { withCodes(t, testAgainstBruteForceAndRestart) }

func testAgainstBruteForceAndRestart(t *testing.T) {
	repo := NewMemoryRepository()
	s := open(t, repo)
	r := rand.New(rand.NewPCG(3, 4))
	words := vocabulary(300)
	history(t, s, r, words)
	require.Equal(t, repo.Len(), s.Count(kb))

	restarted := open(t, repo)
	require.Equal(t, s.Count(kb), restarted.Count(kb))
	require.Equal(t, s.Stats(kb), restarted.Stats(kb))

	for i := range 30 {
		text := randText(r, words, 1+r.IntN(4))
		st := s.Stats(kb)
		q := knowledge.Query{Text: text, Vector: randVec(r, 24), Sparse: st.Query(text), TopK: 1 + r.IntN(15)}
		if i%3 == 0 {
			q.Filters = knowledge.Filters{"group": []any{0, 2}, "kind": "a"}
		}
		for _, mode := range []string{knowledge.ModeVector, knowledge.ModeKeyword, knowledge.ModeHybrid} {
			q.Mode = mode
			got := search(t, s, q)
			again := search(t, restarted, q)
			require.Equal(t, got, again, "restart changed the results of %s %q", mode, text)
			if mode == knowledge.ModeHybrid {
				continue
			}
			want := brute(repo, q)
			require.Len(t, got, len(want), mode)
			for j := range want {
				require.InDelta(t, want[j].Score, got[j].Score, 1e-4, "%s rank %d", mode, j)
				if j+1 < len(want) && math.Abs(want[j].Score-want[j+1].Score) > 1e-4 && (j == 0 || math.Abs(want[j].Score-want[j-1].Score) > 1e-4) {
					require.Equal(t, want[j].ID, got[j].ID, "%s rank %d", mode, j)
				}
			}
		}
	}
}

// TestTextsFetchedForHitsOnly checks that the index holds no texts: they are
// read from the repository for the returned hits only.
func TestTextsFetchedForHitsOnly(t *testing.T) {
	repo := &countingRepo{MemoryRepository: NewMemoryRepository()}
	s := open(t, repo)
	r := rand.New(rand.NewPCG(5, 6))
	words := vocabulary(100)
	for d := range 20 {
		dd := doc{id: fmt.Sprintf("d%d", d)}
		for range 5 {
			dd.texts = append(dd.texts, randText(r, words, 20))
			dd.vecs = append(dd.vecs, randVec(r, 8))
		}
		upsert(t, s, kb, dd)
	}
	hits := search(t, s, knowledge.Query{Mode: knowledge.ModeHybrid, Text: words[0] + " " + words[1], Vector: randVec(r, 8), TopK: 3})
	require.Len(t, hits, 3)
	require.Equal(t, [][]string{ids(hits)}, repo.asked)
	for _, h := range hits {
		require.NotEmpty(t, h.Text)
	}
}

type countingRepo struct {
	*MemoryRepository
	asked [][]string
}

func (c *countingRepo) Texts(ctx context.Context, ids []string) (map[string]string, error) {
	c.asked = append(c.asked, slices.Clone(ids))
	return c.MemoryRepository.Texts(ctx, ids)
}

func TestDotKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	for n := range 130 {
		a, b := make([]float32, n), make([]float32, n)
		var want float64
		for i := range a {
			a[i], b[i] = float32(r.NormFloat64()), float32(r.NormFloat64())
			want += float64(a[i]) * float64(b[i])
		}
		require.InDelta(t, want, dot(a, b), 1e-4, "n=%d", n)
		require.InDelta(t, want, dotGeneric(a, b), 1e-4, "n=%d", n)

		codes := make([]int8, n)
		scale := quantize(codes, b)
		want = 0
		for i := range a {
			want += float64(a[i]) * float64(codes[i])
			// Each code is within half a step of the value.
			require.LessOrEqual(t, math.Abs(float64(b[i])-float64(scale)*float64(codes[i])), float64(scale)/2*1.0001)
		}
		require.InDelta(t, want, dotCodes(a, codes), 1e-3, "n=%d", n)
		require.InDelta(t, want, dotCodesGeneric(a, codes), 1e-3, "n=%d", n)
	}
	zero := make([]int8, 4)
	require.Zero(t, quantize(zero, make([]float32, 4)))
}

// TestCodesScanIsExact compares the int8-first scan with the float32 scan on
// vectors crowded together (near duplicates, exact duplicates), where the
// codes alone would misorder them.
func TestCodesScanIsExact(t *testing.T) {
	repo := NewMemoryRepository()
	r := rand.New(rand.NewPCG(21, 22))
	const dim = 64
	centers := [][]float32{randVec(r, dim), randVec(r, dim), randVec(r, dim)}
	var recs []knowledge.ChunkRecord
	for i := range 3000 {
		c := centers[i%3]
		v := make([]float32, dim)
		noise := []float64{1e-4, 1e-3, 1e-2, 0}[i%4]
		for j := range v {
			v[j] = c[j] + float32(noise*r.NormFloat64())
		}
		id := fmt.Sprintf("c%05d", i)
		recs = append(recs, knowledge.ChunkRecord{Chunk: knowledge.Chunk{ID: id, KnowledgeID: kb, DocumentID: fmt.Sprintf("d%03d", i/10), Index: i % 10, Text: id,
			Metadata: map[string]any{"odd": i%2 == 1}}, Dense: norm(v)})
	}
	require.NoError(t, repo.Put(context.Background(), recs))
	defer func(saved bool) { useCodes = saved }(useCodes)
	useCodes = true
	coded := open(t, repo)
	useCodes = false
	plain := open(t, repo)
	require.True(t, coded.kbs[kb].quant)
	require.False(t, plain.kbs[kb].quant)
	for i := range 60 {
		q := randVec(r, dim)
		if i%2 == 0 {
			q = norm(append([]float32(nil), centers[i%3]...))
		}
		query := knowledge.Query{Mode: knowledge.ModeVector, Vector: q, TopK: []int{1, 10, 57, 400}[i%4]}
		if i%5 == 0 {
			query.Filters = knowledge.Filters{"odd": true}
		}
		require.Equal(t, search(t, plain, query), search(t, coded, query), "query %d", i)
	}
}

func TestCompactionBoundsSlots(t *testing.T) {
	s := open(t, NewMemoryRepository())
	r := rand.New(rand.NewPCG(1, 1))
	for range 100 {
		upsert(t, s, kb, doc{id: "d", texts: []string{"one", "two", "three"}, vecs: [][]float32{randVec(r, 8), randVec(r, 8), randVec(r, 8)}})
		x := s.index(kb, false)
		require.LessOrEqual(t, len(x.ids), 4)
		require.Len(t, x.tstart, len(x.ids)+1)
		require.Equal(t, len(x.ids)*8, len(x.vecs))
	}
	require.Equal(t, 3, s.Count(kb))
	st := s.Stats(kb)
	require.Equal(t, 3, st.N)
	require.Len(t, st.DF, 3)
	require.Equal(t, []string{"d-00001"}, ids(search(t, s, knowledge.Query{Mode: knowledge.ModeKeyword, Text: "two"})))
}

func TestOpenSkipsOtherDimensions(t *testing.T) {
	repo := NewMemoryRepository()
	ctx := context.Background()
	require.NoError(t, repo.Put(ctx, []knowledge.ChunkRecord{
		{Chunk: knowledge.Chunk{ID: "a", KnowledgeID: kb, DocumentID: "a", Text: "alpha"}, Dense: norm([]float32{1, 0}), Len: 1},
		{Chunk: knowledge.Chunk{ID: "b", KnowledgeID: kb, DocumentID: "b", Text: "beta"}, Dense: norm([]float32{1, 0, 0}), Len: 1},
		{Chunk: knowledge.Chunk{ID: "c", KnowledgeID: "other", DocumentID: "c", Text: "gamma"}, Dense: norm([]float32{1, 0, 0}), Len: 1},
	}))
	s := open(t, repo)
	require.Equal(t, 1, s.Count(kb))
	require.Equal(t, 1, s.Count("other"))

	boom := errors.New("boom")
	_, err := Open(ctx, failingLoad{repo, boom}, Options{})
	require.ErrorIs(t, err, boom)
	_, err = Open(ctx, nil, Options{})
	require.Error(t, err)
}

type failingLoad struct {
	*MemoryRepository
	err error
}

func (f failingLoad) Load(ctx context.Context, fn func(knowledge.ChunkRecord) error) error {
	return f.err
}

func TestMetadataInterningAndOddFilters(t *testing.T) {
	s := open(t, NewMemoryRepository())
	r := rand.New(rand.NewPCG(4, 4))
	for d := range 6 {
		upsert(t, s, kb, doc{id: fmt.Sprintf("d%d", d), meta: map[string]any{"team": []string{"a", "b"}[d%2], "tags": []any{"x", "y"}},
			texts: []string{"some text", "more text"}, vecs: [][]float32{randVec(r, 8), randVec(r, 8)}})
	}
	// Equal metadata is stored once, whichever document it came with.
	require.Len(t, s.index(kb, false).metas, 2)

	q := knowledge.Query{Mode: knowledge.ModeHybrid, Text: "text", Vector: randVec(r, 8), TopK: 20}
	q.Filters = knowledge.Filters{"team": "b"}
	hits := search(t, s, q)
	require.Len(t, hits, 6)
	for _, h := range hits {
		require.Equal(t, "b", h.Metadata["team"])
	}
	// A list inside a list filter compares structurally: every chunk has
	// tags [x y].
	q.Filters = knowledge.Filters{"tags": []any{[]any{"x", "y"}}}
	require.Len(t, search(t, s, q), 12)
	q.Filters = knowledge.Filters{"tags": []any{[]any{"y", "x"}}}
	require.Empty(t, search(t, s, q))
}

func TestKernelSelection(t *testing.T) {
	require.Equal(t, dotCodesImpl != nil, useCodes)
	require.Equal(t, useCodes, newIndex().quant)
}

// TestFiltersWithoutMetadata: when no chunk has metadata, a filter matches
// nothing (it once compiled to the filter that matches everything).
func TestFiltersWithoutMetadata(t *testing.T) {
	s := open(t, NewMemoryRepository())
	upsert(t, s, kb, doc{id: "plain", texts: []string{"Installing the server is quick"}, vecs: [][]float32{norm([]float32{1, 0, 0, 0})}})
	st := s.Stats(kb)
	for _, mode := range []string{knowledge.ModeVector, knowledge.ModeKeyword, knowledge.ModeHybrid} {
		text := "installing the server"
		q := knowledge.Query{Mode: mode, Text: text, Vector: norm([]float32{1, 0, 0, 0}), Sparse: st.Query(text), TopK: 10}
		require.Len(t, search(t, s, q), 1, mode)
		q.Filters = knowledge.Filters{"source": "learning"}
		require.Empty(t, search(t, s, q), mode)
	}
}
