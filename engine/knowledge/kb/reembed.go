package kb

import (
	"context"
	"errors"
	"fmt"

	"github.com/troupehq/troupe/engine/knowledge"
)

// Vectors from two embedders are not comparable, even of one length: a
// query embedded by the new one would be scored against the old one's
// vectors and find noise. So a base whose embedder changed is re-embedded:
// every document's chunks are removed and the document is ingested again.

// staleVectors says why the vectors of a base just opened were made by
// another embedder, or "". prev is the base it replaces, nil when the base
// is new to this process: then only a dimension the stored vectors do not
// have gives the change away (the embedder's identity is not persisted).
func (s *Service) staleVectors(prev, b *base) string {
	if prev != nil {
		if from, to := prev.spec.Embedder, b.spec.Embedder; from.Key() != to.Key() {
			return fmt.Sprintf("the embedder changed from %s to %s", from.String(), to.String())
		}
		return ""
	}
	if b.external {
		return ""
	}
	have, want := s.embedded.Dimension(b.spec.Name), b.embedder.Dimension()
	if have > 0 && want > 0 && have != want {
		return fmt.Sprintf("its vectors have %d dimensions and embedder %s makes %d", have, b.spec.Embedder.String(), want)
	}
	return ""
}

// reembedBases re-embeds the bases Configure found stale.
func (s *Service) reembedBases(ctx context.Context) {
	s.mu.Lock()
	pending := s.reembed
	s.reembed = nil
	s.mu.Unlock()
	for name, why := range pending {
		if err := s.reembedBase(ctx, name, why); err != nil {
			if ctx.Err() == nil {
				s.log.Error("re-embedding knowledge base", "knowledge", name, "err", err)
			}
			// Try again on the next sync rather than leave old vectors.
			s.mu.Lock()
			if s.reembed == nil {
				s.reembed = map[string]string{}
			}
			s.reembed[name] = why
			s.mu.Unlock()
		}
	}
}

// reembedPage is how many documents are listed at once.
const reembedPage = 500

// reembedBase removes every chunk of a base's documents, then queues each
// document's ingestion again. All chunks go first: a store that fixes a
// base's dimension by its vectors (the embedded one) accepts the new
// dimension only once none of the old vectors is left.
func (s *Service) reembedBase(ctx context.Context, name, why string) error {
	b, err := s.acquire(name)
	if errors.Is(err, knowledge.ErrNotFound) {
		return nil // removed meanwhile
	}
	if err != nil {
		return err
	}
	defer b.release(s.log)
	var docs []knowledge.Document
	for page := 1; ; page++ {
		list, total, err := s.opts.Documents.List(ctx, knowledge.DocumentQuery{KnowledgeID: name, Limit: reembedPage, Page: page, SortBy: "created_at", SortOrder: "asc"})
		if err != nil {
			return fmt.Errorf("listing documents: %w", err)
		}
		docs = append(docs, list...)
		if len(list) < reembedPage || len(docs) >= total {
			break
		}
	}
	s.log.Info("re-embedding knowledge base", "knowledge", name, "reason", why, "documents", len(docs))
	for _, d := range docs {
		if err := b.store.DeleteDocument(ctx, name, d.ID); err != nil {
			return fmt.Errorf("removing the chunks of %s: %w", d.Name, err)
		}
	}
	for i := range docs {
		d := &docs[i]
		if d.Status == knowledge.StatusProcessing {
			continue // queued already; resume makes sure
		}
		d.Status, d.Message, d.Progress, d.Chunks = knowledge.StatusProcessing, "", 0, 0
		d.UpdatedAt = s.opts.Now().UTC()
		if err := s.opts.Documents.Update(ctx, d); err != nil {
			return fmt.Errorf("marking %s for re-embedding: %w", d.Name, err)
		}
		if err := s.requeue(ctx, d.ID); err != nil {
			return err
		}
	}
	return nil
}
