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
	embedder knowledge.Embedder
	store    knowledge.VectorStore

	mu    sync.Mutex
	stats *bm25.Stats
}

// counter is what the embedded store offers to tell an empty or stale index.
type counter interface {
	Count(knowledgeID string) int
}

// NewIndex returns an index of memories in store, embedded by embedder.
func NewIndex(embedder knowledge.Embedder, store knowledge.VectorStore) *Index {
	return &Index{embedder: embedder, store: store, stats: &bm25.Stats{DF: map[uint32]int{}}}
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
	dense, err := x.embedder.Embed(ctx, texts)
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
	if err := x.store.Upsert(ctx, ReservedKnowledgeID, chunks, dense, sparse); err != nil {
		return fmt.Errorf("indexing memories: %w", err)
	}
	return nil
}

// remove drops memories from the index.
func (x *Index) remove(ctx context.Context, ms []Memory) error {
	for i := range ms {
		if err := x.store.DeleteDocument(ctx, ReservedKnowledgeID, ms[i].ID); err != nil {
			return fmt.Errorf("removing memory %s from the index: %w", ms[i].ID, err)
		}
		w, dl := bm25.Doc(indexText(&ms[i]), 0)
		x.mu.Lock()
		x.stats.Remove(w, dl)
		x.mu.Unlock()
	}
	return nil
}

// search returns the hits of the memories of userID (and of agentID or of
// no agent, when agentID is set) best matching query, with their fused
// scores.
func (x *Index) search(ctx context.Context, userID, agentID, query string, n int) ([]knowledge.Hit, error) {
	v, err := x.embedder.Embed(ctx, []string{query})
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
	// Hybrid: the store ranks a dense and a keyword list and fuses them by
	// reciprocal rank (knowledge.Fuse on the embedded store, its RRF
	// ranker on Milvus), in one request.
	hits, err := x.store.Search(ctx, ReservedKnowledgeID, knowledge.Query{
		Text: query, Vector: v[0], Sparse: sparse, Mode: knowledge.ModeHybrid, TopK: n, Filters: filters,
	})
	if err != nil {
		return nil, fmt.Errorf("searching memories: %w", err)
	}
	return hits, nil
}

// count is the number of memories in the index, -1 when the store cannot
// tell.
func (x *Index) count() int {
	if c, ok := x.store.(counter); ok {
		return c.Count(ReservedKnowledgeID)
	}
	return -1
}

// resetStats replaces the statistics (Sync builds them from SQL).
func (x *Index) resetStats(s *bm25.Stats) {
	x.mu.Lock()
	x.stats = s
	x.mu.Unlock()
}
