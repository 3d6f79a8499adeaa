package embedded

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/troupehq/troupe/engine/knowledge"
)

// MemoryRepository is a knowledge.ChunkRepository in memory, for tests and for running
// without a database. It is safe for concurrent use.
type MemoryRepository struct {
	mu      sync.RWMutex
	records map[string]knowledge.ChunkRecord // by chunk id
}

var _ knowledge.ChunkRepository = (*MemoryRepository)(nil)

// NewMemoryRepository returns an empty repository.
func NewMemoryRepository() *MemoryRepository {
	return &MemoryRepository{records: map[string]knowledge.ChunkRecord{}}
}

// Load streams the records ordered by knowledge base and chunk id, without
// their texts.
func (m *MemoryRepository) Load(ctx context.Context, fn func(knowledge.ChunkRecord) error) error {
	m.mu.RLock()
	recs := slices.Collect(maps.Values(m.records))
	m.mu.RUnlock()
	slices.SortFunc(recs, func(a, b knowledge.ChunkRecord) int {
		return cmp.Or(cmp.Compare(a.Chunk.KnowledgeID, b.Chunk.KnowledgeID), cmp.Compare(a.Chunk.ID, b.Chunk.ID))
	})
	for _, r := range recs {
		if err := ctx.Err(); err != nil {
			return err
		}
		r.Chunk.Text = ""
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// Put stores copies of the records' vectors and metadata.
func (m *MemoryRepository) Put(ctx context.Context, records []knowledge.ChunkRecord) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	copied := make([]knowledge.ChunkRecord, len(records))
	for i, r := range records {
		r.Dense = slices.Clone(r.Dense)
		r.Sparse = maps.Clone(r.Sparse)
		r.Chunk.Metadata = maps.Clone(r.Chunk.Metadata)
		copied[i] = r
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range copied {
		m.records[r.Chunk.ID] = r
	}
	return nil
}

// DeleteDocument deletes a document's chunks.
func (m *MemoryRepository) DeleteDocument(ctx context.Context, knowledgeID, documentID string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var ids []string
	for id, r := range m.records {
		if r.Chunk.KnowledgeID == knowledgeID && r.Chunk.DocumentID == documentID {
			ids = append(ids, id)
			delete(m.records, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// Texts returns chunk texts by id.
func (m *MemoryRepository) Texts(ctx context.Context, ids []string) (map[string]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make(map[string]string, len(ids))
	for _, id := range ids {
		if r, ok := m.records[id]; ok {
			out[id] = r.Chunk.Text
		}
	}
	return out, nil
}

// Len is the number of stored chunks.
func (m *MemoryRepository) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.records)
}
