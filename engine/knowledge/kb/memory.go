package kb

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/bm25"
)

// MemoryDocuments keeps documents in memory: for tests and for one-shot
// commands that run without a database. Safe for concurrent use.
type MemoryDocuments struct {
	MemoryStats

	mu      sync.Mutex
	docs    map[string]*knowledge.Document
	content map[string][]byte
	// bySource indexes documents by knowledge base and source, so that a
	// keyed document (Kafka) is found without a scan.
	bySource map[[2]string]map[string]bool
}

var (
	_ knowledge.Documents  = (*MemoryDocuments)(nil)
	_ knowledge.StatsStore = (*MemoryDocuments)(nil)
)

// NewMemoryDocuments returns an empty document store.
func NewMemoryDocuments() *MemoryDocuments {
	return &MemoryDocuments{docs: map[string]*knowledge.Document{}, content: map[string][]byte{}, bySource: map[[2]string]map[string]bool{}}
}

func clone(d *knowledge.Document) *knowledge.Document {
	c := *d
	c.Metadata = maps.Clone(d.Metadata)
	return &c
}

// Create implements Documents.
func (m *MemoryDocuments) Create(_ context.Context, d *knowledge.Document, content []byte) (*knowledge.Document, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.docs[d.ID]; ok {
		return clone(old), false, nil
	}
	m.docs[d.ID] = clone(d)
	m.content[d.ID] = slices.Clone(content)
	key := [2]string{d.KnowledgeID, d.Source}
	if m.bySource[key] == nil {
		m.bySource[key] = map[string]bool{}
	}
	m.bySource[key][d.ID] = true
	return clone(d), true, nil
}

// Get implements Documents.
func (m *MemoryDocuments) Get(_ context.Context, id string) (*knowledge.Document, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.docs[id]
	if !ok {
		return nil, fmt.Errorf("document %q: %w", id, knowledge.ErrNotFound)
	}
	return clone(d), nil
}

// Content implements Documents.
func (m *MemoryDocuments) Content(_ context.Context, id string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.content[id]
	if !ok {
		return nil, fmt.Errorf("document %q: %w", id, knowledge.ErrNotFound)
	}
	return c, nil
}

// List implements Documents.
func (m *MemoryDocuments) List(_ context.Context, q knowledge.DocumentQuery) ([]knowledge.Document, int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var all []knowledge.Document
	for _, d := range m.docs {
		if (q.KnowledgeID == "" || d.KnowledgeID == q.KnowledgeID) && (q.Status == "" || d.Status == q.Status) {
			all = append(all, *clone(d))
		}
	}
	slices.SortFunc(all, func(a, b knowledge.Document) int {
		c := 0
		switch q.SortBy {
		case "name":
			c = strings.Compare(a.Name, b.Name)
		case "size":
			c = cmp.Compare(a.Size, b.Size)
		case "updated_at":
			c = a.UpdatedAt.Compare(b.UpdatedAt)
		default:
			c = a.CreatedAt.Compare(b.CreatedAt)
		}
		if q.SortOrder != "asc" {
			c = -c
		}
		return cmp.Or(c, strings.Compare(a.ID, b.ID))
	})
	limit, page := q.Limit, q.Page
	if limit <= 0 {
		limit = 20
	}
	if page <= 0 {
		page = 1
	}
	start := min((page-1)*limit, len(all))
	return all[start:min(start+limit, len(all))], len(all), nil
}

// Counts implements Documents.
func (m *MemoryDocuments) Counts(context.Context) (map[string]map[string]int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]map[string]int{}
	for _, d := range m.docs {
		if out[d.KnowledgeID] == nil {
			out[d.KnowledgeID] = map[string]int{}
		}
		out[d.KnowledgeID][d.Status]++
	}
	return out, nil
}

// Update implements Documents.
func (m *MemoryDocuments) Update(_ context.Context, d *knowledge.Document) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.docs[d.ID]; !ok {
		return fmt.Errorf("document %q: %w", d.ID, knowledge.ErrNotFound)
	}
	m.docs[d.ID] = clone(d)
	return nil
}

// Delete implements Documents.
func (m *MemoryDocuments) Delete(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.docs[id]
	if !ok {
		return fmt.Errorf("document %q: %w", id, knowledge.ErrNotFound)
	}
	key := [2]string{d.KnowledgeID, d.Source}
	delete(m.bySource[key], id)
	if len(m.bySource[key]) == 0 {
		delete(m.bySource, key)
	}
	delete(m.docs, id)
	delete(m.content, id)
	return nil
}

// Pending implements Documents.
func (m *MemoryDocuments) Pending(ctx context.Context) ([]knowledge.Document, error) {
	docs, _, err := m.List(ctx, knowledge.DocumentQuery{Status: knowledge.StatusProcessing, Limit: 1 << 30, SortOrder: "asc"})
	return docs, err
}

// Sources implements Documents.
func (m *MemoryDocuments) Sources(_ context.Context, knowledgeID string) (map[string]knowledge.Document, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]knowledge.Document{}
	for _, d := range m.docs {
		if d.KnowledgeID == knowledgeID && (strings.HasPrefix(d.Source, "file:") || strings.HasPrefix(d.Source, "url:")) {
			out[d.Source] = *clone(d)
		}
	}
	return out, nil
}

// BySource implements Documents.
func (m *MemoryDocuments) BySource(_ context.Context, knowledgeID, source string) ([]knowledge.Document, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []knowledge.Document
	for id := range m.bySource[[2]string{knowledgeID, source}] {
		out = append(out, *clone(m.docs[id]))
	}
	slices.SortFunc(out, func(a, b knowledge.Document) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// MemoryStats keeps keyword statistics in memory: for tests and one-shot
// commands. The zero value is ready; safe for concurrent use.
type MemoryStats struct {
	mu    sync.Mutex
	total map[string]*bm25.Stats    // by knowledge base
	docs  map[[2]string]*bm25.Stats // by knowledge base and document
}

var _ knowledge.StatsStore = (*MemoryStats)(nil)

func cloneStats(s *bm25.Stats) *bm25.Stats {
	if s == nil {
		return nil
	}
	c := s.Clone()
	return &c
}

// LoadStats implements StatsStore.
func (m *MemoryStats) LoadStats(_ context.Context, knowledgeID string) (*bm25.Stats, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return cloneStats(m.total[knowledgeID]), nil
}

// LoadDocumentStats implements StatsStore.
func (m *MemoryStats) LoadDocumentStats(_ context.Context, knowledgeID, documentID string) (*bm25.Stats, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return cloneStats(m.docs[[2]string{knowledgeID, documentID}]), nil
}

// ReplaceDocumentStats implements StatsStore.
func (m *MemoryStats) ReplaceDocumentStats(_ context.Context, knowledgeID, documentID string, share *bm25.Stats) (*bm25.Stats, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.total == nil {
		m.total, m.docs = map[string]*bm25.Stats{}, map[[2]string]*bm25.Stats{}
	}
	key := [2]string{knowledgeID, documentID}
	next := bm25.Stats{DF: map[uint32]int{}}
	if t := m.total[knowledgeID]; t != nil {
		next = t.Clone()
	}
	next.Subtract(m.docs[key])
	next.Merge(share)
	m.total[knowledgeID] = cloneStats(&next)
	if share == nil {
		delete(m.docs, key)
	} else {
		m.docs[key] = cloneStats(share)
	}
	return &next, nil
}
