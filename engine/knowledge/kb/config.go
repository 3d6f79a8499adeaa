package kb

import (
	"context"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/chunk"
	"github.com/troupehq/troupe/engine/knowledge/reader"
	"github.com/troupehq/troupe/engine/tool/builtin"
)

// Config describes what ingestion supports, for GET /knowledge/config.
type Config struct {
	Readers   []reader.Info `json:"readers"`
	Chunkers  []string      `json:"chunkers"`
	Stores    []string      `json:"vector_dbs"`
	Embedders []string      `json:"embedders"`
	MaxBytes  int64         `json:"max_upload_bytes"`
}

// Config returns the supported readers, chunkers, stores and embedders.
func (s *Service) Config() Config {
	stores := []string{"embedded"}
	if s.opts.NewMilvus != nil {
		stores = append(stores, "milvus")
	}
	return Config{Readers: reader.Readers(), Chunkers: chunk.Strategies, Stores: stores,
		Embedders: []string{"local", "openai/<model>", "ollama/<model>"}, MaxBytes: s.opts.MaxBytes}
}

// MaxBytes is the size limit of one document.
func (s *Service) MaxBytes() int64 { return s.opts.MaxBytes }

// Searcher adapts the service to the knowledge_search tool.
func (s *Service) Searcher() builtin.KnowledgeSearcher { return searcher{s} }

type searcher struct{ s *Service }

func (a searcher) Search(ctx context.Context, kbs []string, query string, topK int, filters map[string]any) ([]builtin.Hit, error) {
	hits, err := a.s.Search(ctx, kbs, query, "", topK, knowledge.Filters(filters))
	if err != nil {
		return nil, err
	}
	out := make([]builtin.Hit, len(hits))
	for i, h := range hits {
		md := map[string]any{"chunk_id": h.ID, "knowledge_id": h.KnowledgeID, "chunk_index": h.Index}
		if h.Page > 0 {
			md["page"] = h.Page
		}
		if h.Heading != "" {
			md["heading"] = h.Heading
		}
		for k, v := range h.Metadata {
			md[k] = v
		}
		out[i] = builtin.Hit{DocumentID: h.DocumentID, DocumentName: h.Document, Text: h.Text, Score: h.Score, Metadata: md}
	}
	return out, nil
}
