// Package embedded is the default knowledge.VectorStore: an in-process index
// persisted through a knowledge.ChunkRepository (the SQL store), so it survives restarts.
//
// Each knowledge base has its own index, rebuilt from the repository at Open:
// dense vectors in one contiguous []float32, compact per-chunk metadata, a
// tombstone bitmap with periodic compaction and an inverted index of BM25
// postings. Vector search is exact. On amd64 with AVX2 the index also keeps
// int8 codes of the vectors (per-vector scale): the scan reads those, and
// rescores with float32 the few chunks whose error bound does not rule them
// out of the top k, which returns the same hits as a float32 scan for a
// quarter of the memory traffic (at 100k × 384 on one core: 3 ms instead of
// 4.5 to 9 ms, depending on how busy the memory bus is).
// Chunk texts stay in the repository and are fetched for the returned hits
// only.
//
// Searches of a knowledge base run concurrently; writes to it are exclusive
// while they update memory, and serialised among themselves across the
// knowledge.ChunkRepository call (which runs with no lock that searches need).
package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"sync"
	"time"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/bm25"
)

// DefaultTopK is the number of hits of a query without TopK.
const DefaultTopK = 10

// Options configure a Store.
type Options struct {
	Logger *slog.Logger
}

// Store is the embedded vector store.
type Store struct {
	repo knowledge.ChunkRepository
	log  *slog.Logger

	mu  sync.RWMutex
	kbs map[string]*index

	// feed is repo's change feed, when it has one (see Follow).
	feed ChangeFeed
	// syncMu serialises Syncs; cursor is the last change applied.
	syncMu sync.Mutex
	cursor int64
}

var _ knowledge.VectorStore = (*Store)(nil)

// Open builds the index from everything repo holds. Records whose vector
// dimension differs from the first one of their knowledge base (the embedder
// changed without re-ingestion) are skipped with a warning.
func Open(ctx context.Context, repo knowledge.ChunkRepository, opts Options) (*Store, error) {
	if repo == nil {
		return nil, errors.New("embedded: nil repository")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{repo: repo, log: opts.Logger, kbs: map[string]*index{}}
	if f, ok := repo.(ChangeFeed); ok {
		// Before the load: a change committed while it reads is replayed
		// by the first Sync (again, if the load saw it: no harm).
		cursor, err := f.LastChange(ctx)
		if err != nil {
			return nil, fmt.Errorf("loading knowledge chunks: %w", err)
		}
		s.feed, s.cursor = f, cursor
	}
	start := time.Now()
	chunks, skipped := 0, map[string]int{}
	err := repo.Load(ctx, func(r knowledge.ChunkRecord) error {
		x := s.kbs[r.Chunk.KnowledgeID]
		if x == nil {
			x = newIndex()
			s.kbs[r.Chunk.KnowledgeID] = x
		}
		if len(r.Dense) == 0 || (x.dim != 0 && len(r.Dense) != x.dim) {
			skipped[r.Chunk.KnowledgeID]++
			return nil
		}
		c := r.Chunk
		c.Text = ""
		x.add(&c, r.Dense, r.Sparse, r.Len)
		chunks++
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("loading knowledge chunks: %w", err)
	}
	for id, x := range s.kbs {
		x.maybeCompact()
		x.trim()
		if n := skipped[id]; n > 0 {
			s.log.Warn("knowledge chunks skipped: their vector dimension differs, re-ingest the documents",
				"knowledge", id, "chunks", n, "dimension", x.dim)
		}
	}
	s.log.Info("knowledge index loaded", "bases", len(s.kbs), "chunks", chunks, "duration", time.Since(start))
	return s, nil
}

func (s *Store) index(knowledgeID string, create bool) *index {
	s.mu.RLock()
	x := s.kbs[knowledgeID]
	s.mu.RUnlock()
	if x != nil || !create {
		return x
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if x = s.kbs[knowledgeID]; x == nil {
		x = newIndex()
		s.kbs[knowledgeID] = x
	}
	return x
}

// Upsert stores chunks with their dense vectors and document-side BM25
// weights (bm25.Doc), replacing chunks with the same ids. It writes to the
// knowledge.ChunkRepository first, then updates the index. sparse may be nil (no keyword
// search for these chunks).
func (s *Store) Upsert(ctx context.Context, knowledgeID string, chunks []knowledge.Chunk, dense [][]float32, sparse []map[uint32]float32) error {
	if len(chunks) == 0 {
		return nil
	}
	if len(dense) != len(chunks) {
		return fmt.Errorf("embedded: %d chunks but %d dense vectors", len(chunks), len(dense))
	}
	if sparse != nil && len(sparse) != len(chunks) {
		return fmt.Errorf("embedded: %d chunks but %d sparse vectors", len(chunks), len(sparse))
	}
	dim := len(dense[0])
	for i, v := range dense {
		if len(v) == 0 || len(v) != dim {
			return fmt.Errorf("embedded: chunk %s has a vector of dimension %d, expected %d", chunks[i].ID, len(v), dim)
		}
		for _, f := range v {
			if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
				return fmt.Errorf("embedded: chunk %s has a vector with %v", chunks[i].ID, f)
			}
		}
	}
	records := make([]knowledge.ChunkRecord, len(chunks))
	for i, c := range chunks {
		if c.ID == "" {
			return errors.New("embedded: chunk without an id")
		}
		c.KnowledgeID = knowledgeID
		r := knowledge.ChunkRecord{Chunk: c, Dense: dense[i], Len: len(bm25.Terms(c.Text))}
		if sparse != nil {
			r.Sparse = sparse[i]
		}
		records[i] = r
	}

	x := s.index(knowledgeID, true)
	x.wmu.Lock()
	defer x.wmu.Unlock()
	x.mu.RLock()
	have, live := x.dim, x.live()
	x.mu.RUnlock()
	if have != 0 && have != dim && live > 0 {
		return fmt.Errorf("embedded: knowledge base %s holds vectors of dimension %d, got %d (re-ingest every document after changing the embedder)", knowledgeID, have, dim)
	}
	if err := s.repo.Put(ctx, records); err != nil {
		return fmt.Errorf("storing chunks: %w", err)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.live() == 0 && x.dim != dim {
		x.state = newState()
	}
	for i := range records {
		r := &records[i]
		r.Chunk.Text = "" // never held in memory
		x.add(&r.Chunk, r.Dense, r.Sparse, r.Len)
	}
	x.maybeCompact()
	return nil
}

// DeleteDocument removes every chunk of a document, from the repository and
// then from the index.
func (s *Store) DeleteDocument(ctx context.Context, knowledgeID, documentID string) error {
	x := s.index(knowledgeID, false)
	if x != nil {
		x.wmu.Lock()
		defer x.wmu.Unlock()
	}
	ids, err := s.repo.DeleteDocument(ctx, knowledgeID, documentID)
	if err != nil {
		return fmt.Errorf("deleting chunks: %w", err)
	}
	if x == nil {
		return nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.deleteDocument(documentID, ids)
	x.maybeCompact()
	return nil
}

// Search returns the best chunks for q, best first, at most q.TopK
// (DefaultTopK when 0):
//   - vector: exact inner product of q.Vector with every matching chunk;
//   - keyword: BM25, q.Sparse (bm25.Stats.Query) against the postings; when
//     q.Sparse is nil it is computed from q.Text with the index's statistics;
//   - hybrid: the union of both lists, max(TopK·4, 50) long each, ranked
//     by knowledge.HybridScore with both sides computed exactly for every
//     candidate.
//
// Vector and keyword hits carry the raw scores (cosine, BM25: callers such
// as the memory index weigh them themselves); knowledge.ScoreHits makes them
// readable. Hybrid hits carry the readable 0–1 hybrid score.
//
// An empty mode means hybrid with a vector and keyword without. Filters are
// evaluated once per distinct metadata map; a chunk that does not match is
// skipped before its vector is scored, and before ranking in keyword search.
// Hit texts are read from the repository; a hit deleted meanwhile is dropped.
func (s *Store) Search(ctx context.Context, knowledgeID string, q knowledge.Query) ([]knowledge.Hit, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	mode := q.Mode
	if mode == "" {
		mode = knowledge.ModeKeyword
		if q.Vector != nil {
			mode = knowledge.ModeHybrid
		}
	}
	switch mode {
	case knowledge.ModeVector, knowledge.ModeHybrid:
		if len(q.Vector) == 0 {
			return nil, fmt.Errorf("embedded: %s search without a query vector", mode)
		}
	case knowledge.ModeKeyword:
	default:
		return nil, fmt.Errorf("embedded: unknown search mode %q (use %s, %s or %s)", mode, knowledge.ModeVector, knowledge.ModeKeyword, knowledge.ModeHybrid)
	}
	k := q.TopK
	if k <= 0 {
		k = DefaultTopK
	}
	x := s.index(knowledgeID, false)
	if x == nil {
		return nil, nil
	}

	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	x.mu.RLock()
	hits, err := x.search(knowledgeID, q, mode, k, sc)
	x.mu.RUnlock()
	if err != nil || len(hits) == 0 || q.WithoutText {
		return hits, err
	}
	return s.withTexts(ctx, hits)
}

// search runs under x.mu.RLock.
func (x *index) search(knowledgeID string, q knowledge.Query, mode string, k int, sc *scratch) ([]knowledge.Hit, error) {
	if x.live() == 0 {
		return nil, nil
	}
	if mode != knowledge.ModeKeyword && len(q.Vector) != x.dim {
		return nil, fmt.Errorf("embedded: query vector of dimension %d, knowledge base %s has %d", len(q.Vector), knowledgeID, x.dim)
	}
	sparse := q.Sparse
	if sparse == nil && mode != knowledge.ModeVector && q.Text != "" {
		sparse = x.stats.Query(q.Text)
	}
	f := x.compileFilter(q.Filters, sc.filter)
	if f != nil {
		sc.filter = f
	}
	var hits []knowledge.Hit
	switch mode {
	case knowledge.ModeVector:
		hits = x.hits(knowledgeID, x.vector(q.Vector, k, f, sc))
	case knowledge.ModeKeyword:
		hits = x.hits(knowledgeID, x.keyword(sparse, k, f, sc))
	default:
		n := max(4*k, 50)
		vc := x.vector(q.Vector, n, f, sc)
		kc := x.keyword(sparse, n, f, sc)
		hits = x.hits(knowledgeID, x.hybrid(q.Vector, vc, kc, k, knowledge.IDFMass(sparse), sc))
	}
	for i := range hits {
		hits[i].Metadata = maps.Clone(hits[i].Metadata)
	}
	return hits, nil
}

// withTexts fills the hits' texts from the repository, dropping hits whose
// chunk is gone.
func (s *Store) withTexts(ctx context.Context, hits []knowledge.Hit) ([]knowledge.Hit, error) {
	ids := make([]string, len(hits))
	for i, h := range hits {
		ids[i] = h.ID
	}
	texts, err := s.repo.Texts(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("reading chunk texts: %w", err)
	}
	out := hits[:0]
	for _, h := range hits {
		if t, ok := texts[h.ID]; ok {
			h.Text = t
			out = append(out, h)
		}
	}
	return out, nil
}

// QueryWeights returns the BM25 query weights of text in a knowledge base
// (bm25.Stats.Query with its current statistics), read in place.
func (s *Store) QueryWeights(knowledgeID, text string) map[uint32]float32 {
	x := s.index(knowledgeID, false)
	if x == nil {
		return (&bm25.Stats{}).Query(text)
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.stats.Query(text)
}

// Stats returns a copy of the BM25 statistics of a knowledge base (for
// tests and diagnostics: searches weigh keywords in place, see Search).
func (s *Store) Stats(knowledgeID string) bm25.Stats {
	x := s.index(knowledgeID, false)
	if x == nil {
		return bm25.Stats{DF: map[uint32]int{}}
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.stats.Clone()
}

// AvgDL is the average chunk length of a knowledge base, in BM25 terms, read
// in place.
func (s *Store) AvgDL(knowledgeID string) float64 {
	x := s.index(knowledgeID, false)
	if x == nil {
		return 0
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.stats.AvgDL()
}

// Dimension is the length of the vectors a knowledge base holds, 0 when it
// holds none.
func (s *Store) Dimension(knowledgeID string) int {
	x := s.index(knowledgeID, false)
	if x == nil {
		return 0
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.live() == 0 {
		return 0
	}
	return x.dim
}

// Count is the number of chunks of a knowledge base.
func (s *Store) Count(knowledgeID string) int {
	x := s.index(knowledgeID, false)
	if x == nil {
		return 0
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.live()
}
