package memory

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/bm25"
)

// Index is the retrieval side of memories, built from the knowledge stack:
// one chunk per memory under ReservedKnowledgeID in a knowledge.VectorStore,
// with the Embedder's dense vector and BM25 weights. It keeps the BM25
// statistics of the memories itself (rebuilt from SQL by Service.Sync), so
// it weighs query terms the same way on the embedded store and on Milvus.
// Safe for concurrent use.
type Index struct {
	backend Backend

	mu    sync.Mutex
	stats *bm25.Stats
}

// Backend lends the embedder and vector store for one operation; release
// ends the use. A knowledge base's (kb.Service.Backend) can change or go
// with a reload, so the index borrows it each time instead of keeping it.
type Backend func(ctx context.Context) (e knowledge.Embedder, st knowledge.VectorStore, release func(), err error)

// counter is what the embedded store offers to tell an empty or stale index.
type counter interface {
	Count(knowledgeID string) int
}

// NewIndex returns an index of memories in store, embedded by embedder.
func NewIndex(embedder knowledge.Embedder, store knowledge.VectorStore) *Index {
	return NewIndexOn(func(context.Context) (knowledge.Embedder, knowledge.VectorStore, func(), error) {
		return embedder, store, func() {}, nil
	})
}

// NewIndexOn returns an index of memories on a borrowed backend.
func NewIndexOn(b Backend) *Index {
	return &Index{backend: b, stats: &bm25.Stats{DF: map[uint32]int{}}}
}

// indexText is what a memory is searched by: its text and its topics, which
// name what it is about in words the text may not use.
func indexText(m *Memory) string {
	if len(m.Topics) == 0 {
		return m.Memory
	}
	return m.Memory + "\n" + strings.Join(m.Topics, ", ")
}

func chunkOf(m *Memory) knowledge.Chunk {
	return knowledge.Chunk{
		ID: m.ID, KnowledgeID: ReservedKnowledgeID, DocumentID: m.ID, Document: "memory",
		Text:     indexText(m),
		Metadata: map[string]any{"user_id": m.UserID, "agent_id": m.AgentID},
	}
}

// put indexes memories (replacing their earlier versions, whose texts old
// holds when they had some, so the statistics count each memory once).
func (x *Index) put(ctx context.Context, ms []Memory, old map[string]string) error {
	if len(ms) == 0 {
		return nil
	}
	texts := make([]string, len(ms))
	chunks := make([]knowledge.Chunk, len(ms))
	for i := range ms {
		chunks[i] = chunkOf(&ms[i])
		texts[i] = chunks[i].Text
	}
	embedder, store, release, err := x.backend(ctx)
	if err != nil {
		return fmt.Errorf("opening the memory index: %w", err)
	}
	defer release()
	dense, err := embedder.Embed(ctx, texts)
	if err != nil {
		return fmt.Errorf("embedding memories: %w", err)
	}
	sparse := make([]map[uint32]float32, len(ms))
	x.mu.Lock()
	for i, t := range texts {
		if o, ok := old[ms[i].ID]; ok {
			w, dl := bm25.Doc(o, 0)
			x.stats.Remove(w, dl)
		}
		w, dl := bm25.Doc(t, x.stats.AvgDL())
		x.stats.Add(w, dl)
		sparse[i] = w
	}
	x.mu.Unlock()
	if err := store.Upsert(ctx, ReservedKnowledgeID, chunks, dense, sparse); err != nil {
		return fmt.Errorf("indexing memories: %w", err)
	}
	return nil
}

// remove drops memories from the index.
func (x *Index) remove(ctx context.Context, ms []Memory) error {
	_, store, release, err := x.backend(ctx)
	if err != nil {
		return fmt.Errorf("opening the memory index: %w", err)
	}
	defer release()
	for i := range ms {
		if err := store.DeleteDocument(ctx, ReservedKnowledgeID, ms[i].ID); err != nil {
			return fmt.Errorf("removing memory %s from the index: %w", ms[i].ID, err)
		}
		w, dl := bm25.Doc(indexText(&ms[i]), 0)
		x.mu.Lock()
		x.stats.Remove(w, dl)
		x.mu.Unlock()
	}
	return nil
}

// candidate is a memory the index found, with its relevance in [0, 1].
type candidate struct {
	id        string
	relevance float64
}

// search returns the memories of userID (and of agentID or of no agent, when
// agentID is set) best matching query, at most n, best first.
//
// The store ranks a dense list (cosine of the embeddings) and a keyword list
// (BM25); the candidates are the best n of the two fused by reciprocal rank
// (knowledge.Fuse). Reciprocal rank keeps only ranks, so a memory far more
// similar than the next counts no more than one barely so; the relevance
// of a candidate is therefore the mean of its two scores, each divided by
// the best of its list (a list with no hit counts for nothing), which keeps
// the margins that recency must not overturn.
func (x *Index) search(ctx context.Context, userID, agentID, query string, n int) ([]candidate, error) {
	embedder, store, release, err := x.backend(ctx)
	if err != nil {
		return nil, fmt.Errorf("opening the memory index: %w", err)
	}
	defer release()
	v, err := embedder.Embed(ctx, []string{query})
	if err != nil {
		return nil, fmt.Errorf("embedding the query: %w", err)
	}
	filters := knowledge.Filters{"user_id": userID}
	if agentID != "" {
		filters["agent_id"] = []any{agentID, ""}
	}
	x.mu.Lock()
	sparse := x.stats.Query(query)
	x.mu.Unlock()
	// The texts are the SQL rows', read by Recall: the index gives ids.
	q := knowledge.Query{Text: query, Vector: v[0], Mode: knowledge.ModeVector, TopK: n, Filters: filters, WithoutText: true}
	dense, err := store.Search(ctx, ReservedKnowledgeID, q)
	if err != nil {
		return nil, fmt.Errorf("searching memories: %w", err)
	}
	var keyword []knowledge.Hit
	if len(sparse) > 0 {
		q.Mode, q.Vector, q.Sparse = knowledge.ModeKeyword, nil, sparse
		if keyword, err = store.Search(ctx, ReservedKnowledgeID, q); err != nil {
			return nil, fmt.Errorf("searching memories: %w", err)
		}
	}
	norm := func(hs []knowledge.Hit) map[string]float64 {
		out := make(map[string]float64, len(hs))
		best := 0.0
		for _, h := range hs {
			best = max(best, h.Score)
		}
		for _, h := range hs {
			if best > 0 && h.Score > 0 {
				out[h.DocumentID] = h.Score / best
			}
		}
		return out
	}
	d, k := norm(dense), norm(keyword)
	lists := 1.0
	if len(k) > 0 {
		lists = 2
	}
	fused := knowledge.Fuse(n, dense, keyword)
	out := make([]candidate, len(fused))
	for i, h := range fused {
		out[i] = candidate{id: h.DocumentID, relevance: (d[h.DocumentID] + k[h.DocumentID]) / lists}
	}
	return out, nil
}

// count is the number of memories in the index, -1 when the store cannot
// tell (Milvus: Sync then re-indexes every memory at start).
func (x *Index) count(ctx context.Context) (int, error) {
	_, store, release, err := x.backend(ctx)
	if err != nil {
		return 0, fmt.Errorf("opening the memory index: %w", err)
	}
	defer release()
	if c, ok := store.(counter); ok {
		return c.Count(ReservedKnowledgeID), nil
	}
	return -1, nil
}

// resetStats replaces the statistics (Sync builds them from SQL).
func (x *Index) resetStats(s *bm25.Stats) {
	x.mu.Lock()
	x.stats = s
	x.mu.Unlock()
}
