package kb

import (
	"context"
	"fmt"
	"time"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/rerank"
	"github.com/troupehq/troupe/spec"
)

// SearchRequest is one search of one or more knowledge bases.
type SearchRequest struct {
	KnowledgeIDs []string
	Query        string
	Mode         string // "" uses each base's search.mode
	TopK         int    // 0 uses each base's search.top_k
	Filters      knowledge.Filters
	// MinScore drops hits scoring below it (0 to 1, see knowledge's score
	// documentation; after reranking, the reranker's relevance); nil uses
	// each base's search.min_score.
	MinScore *float64
}

// Reranker scores texts against a query: one relevance from 0 to 1 per
// text, in order. Implementations are safe for concurrent use.
type Reranker interface {
	Rerank(ctx context.Context, query string, texts []string) ([]float64, error)
}

var _ Reranker = (*rerank.Client)(nil)

// newReranker builds the reranker a base's rerank: names, from its Model.
func (s *Service) newReranker(k *spec.Knowledge) (Reranker, error) {
	if s.opts.NewReranker != nil {
		return s.opts.NewReranker(k)
	}
	m := k.Rerank.ModelSpec()
	if m == nil {
		return nil, fmt.Errorf("rerank model %q is not a Model document", k.Rerank.Model)
	}
	return rerank.New(rerank.Options{BaseURL: m.BaseURL, Model: m.Model, APIKey: m.APIKey, Headers: m.Headers, HTTPClient: s.opts.RerankHTTPClient}), nil
}

// rerank reorders hits by the base's reranker, best first, each scored with
// its relevance. When the reranker fails or exceeds rerank.timeout the hits
// keep their search order and scores: a slow reranker must not fail the
// search, only make it less sharp; the fallback is logged and counted
// (RerankFallbacks).
func (s *Service) rerank(ctx context.Context, k *spec.Knowledge, query string, hits []knowledge.Hit) []knowledge.Hit {
	if len(hits) == 0 {
		return hits
	}
	r, err := s.newReranker(k)
	if err == nil {
		texts := make([]string, len(hits))
		for i, h := range hits {
			texts[i] = h.Text
		}
		rctx, cancel := context.WithTimeout(ctx, time.Duration(k.Rerank.Timeout))
		var scores []float64
		scores, err = r.Rerank(rctx, query, texts)
		cancel()
		if err == nil && len(scores) != len(hits) {
			err = fmt.Errorf("%d scores for %d hits", len(scores), len(hits))
		}
		if err == nil {
			out := make([]knowledge.Hit, len(hits))
			for i, h := range hits {
				h.Score = scores[i]
				out[i] = h
			}
			knowledge.SortHits(out)
			return out
		}
	}
	s.rerankFallbacks.Add(1)
	s.log.Warn("reranking failed; keeping the search order", "knowledge", k.Name, "model", k.Rerank.Model, "err", err)
	return hits
}

// RerankFallbacks counts the searches whose reranking failed or timed out
// and kept the search order, since the service started.
func (s *Service) RerankFallbacks() int64 { return s.rerankFallbacks.Load() }

// cutBelow drops the hits scoring below least (nil or 0: none).
func cutBelow(hits []knowledge.Hit, least *float64) []knowledge.Hit {
	if least == nil || *least <= 0 {
		return hits
	}
	out := hits[:0]
	for _, h := range hits {
		if h.Score >= *least {
			out = append(out, h)
		}
	}
	return out
}
