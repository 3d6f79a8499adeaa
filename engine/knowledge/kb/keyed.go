package kb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/reader"
)

// Keyed is a document an event source names by its own id (a Kafka
// message's id): putting it again with other content replaces it.
type Keyed struct {
	KnowledgeID string
	// Key is the source's id of the document, stored as its source
	// ("kafka:<id>"): Sources (the YAML sync) never sees it.
	Key      string
	Name     string
	Content  []byte
	Metadata map[string]any
}

// keyedID is a keyed document's id: a hash of its key, metadata and
// content, so that a replay of the same message finds the document it made,
// and two keys with the same text stay two documents.
func keyedID(k Keyed) (string, error) {
	md, err := json.Marshal(k.Metadata) // map keys sorted: a stable encoding
	if err != nil {
		return "", fmt.Errorf("%w: metadata: %w", ErrInvalid, err)
	}
	buf := make([]byte, 0, len(k.Key)+len(md)+len(k.Content)+2)
	buf = append(append(append(append(append(buf, k.Key...), 0), md...), 0), k.Content...)
	return knowledge.DocumentID(k.KnowledgeID, buf), nil
}

// Put makes the keyed document hold k's content and metadata, ingested and
// searchable when it returns (it does not go through the Queue: an event
// source acknowledges its message only after the index write). A put of
// what the document already holds changes nothing (changed false); other
// content replaces the document and its chunks. An ingestion that fails
// leaves no document under the key and returns the reason.
func (s *Service) Put(ctx context.Context, k Keyed) (changed bool, err error) {
	if !s.has(k.KnowledgeID) {
		return false, fmt.Errorf("knowledge base %q: %w", k.KnowledgeID, knowledge.ErrNotFound)
	}
	if k.Key == "" {
		return false, fmt.Errorf("%w: a keyed document needs a key", ErrInvalid)
	}
	if int64(len(k.Content)) > s.opts.MaxBytes {
		return false, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(k.Content), s.opts.MaxBytes)
	}
	if k.Name == "" {
		k.Name = k.Key
	}
	typ, err := reader.Detect(k.Name, k.Content)
	if err != nil {
		return false, err
	}
	id, err := keyedID(k)
	if err != nil {
		return false, err
	}
	existing, err := s.opts.Documents.BySource(ctx, k.KnowledgeID, k.Key)
	if err != nil {
		return false, fmt.Errorf("looking up document %s: %w", k.Key, err)
	}
	found := false
	for _, d := range existing {
		if d.ID == id && d.Status == knowledge.StatusCompleted {
			found = true
			continue
		}
		if d.ID == id && s.ingesting(id) {
			// This very version is being ingested here (a redelivery
			// while the first put runs, or a reload's resume of it):
			// deleting it would cancel that ingestion. The caller tries
			// again, and then finds it finished.
			return false, fmt.Errorf("ingesting %s: %w", k.Key, errBusy)
		}
		// An older version, or this one left unfinished or failed: the
		// old version goes first, so a crash before the new one is
		// written leaves the key empty until the message is replayed,
		// never with two versions.
		if err := s.Delete(ctx, d.ID); err != nil && !errors.Is(err, knowledge.ErrNotFound) {
			return false, fmt.Errorf("replacing document %s: %w", k.Key, err)
		}
	}
	if found {
		return false, nil
	}
	now := s.opts.Now().UTC()
	d := &knowledge.Document{ID: id, KnowledgeID: k.KnowledgeID, Name: k.Name, Type: typ, Source: k.Key, Metadata: k.Metadata,
		Size: int64(len(k.Content)), Status: knowledge.StatusProcessing, CreatedAt: now, UpdatedAt: now}
	_, created, err := s.opts.Documents.Create(ctx, d, k.Content)
	if err != nil {
		return false, fmt.Errorf("storing document %s: %w", k.Key, err)
	}
	// A document just created has no chunks yet (any left by an earlier
	// attempt went with its row, deleted above): its ingestion needs no
	// clearing, nor to read back what is in hand.
	var f *fresh
	if created {
		f = &fresh{doc: d, content: k.Content}
	}
	got, err := s.ingestDocument(ctx, id, f)
	if errors.Is(err, errBusy) {
		// Started elsewhere in this process since the look-up above: that
		// ingestion owns the document, so nothing is deleted here.
		return false, fmt.Errorf("ingesting %s: %w", k.Key, errBusy)
	}
	if err != nil {
		return false, err
	}
	if got == nil {
		// Another ingestion of the same document (a replica given the
		// partition in a rebalance) finished it first, or it was deleted.
		if got, err = s.opts.Documents.Get(ctx, id); err != nil {
			return false, fmt.Errorf("reading the result of ingesting %s: %w", k.Key, err)
		}
	}
	if got.Status != knowledge.StatusCompleted {
		msg := got.Message
		if err := s.Delete(context.WithoutCancel(ctx), id); err != nil && !errors.Is(err, knowledge.ErrNotFound) {
			s.log.Warn("removing a document that failed", "document", k.Key, "err", err)
		}
		if got.Status == knowledge.StatusProcessing {
			return false, fmt.Errorf("ingesting %s: knowledge base %q: %w", k.Key, k.KnowledgeID, knowledge.ErrNotFound)
		}
		return false, fmt.Errorf("ingesting %s: %s", k.Key, msg)
	}
	return true, nil
}

// Remove deletes the keyed document of a knowledge base, and reports
// whether there was one: removing a key that holds nothing is a no-op.
func (s *Service) Remove(ctx context.Context, knowledgeID, key string) (bool, error) {
	if !s.has(knowledgeID) {
		return false, fmt.Errorf("knowledge base %q: %w", knowledgeID, knowledge.ErrNotFound)
	}
	existing, err := s.opts.Documents.BySource(ctx, knowledgeID, key)
	if err != nil {
		return false, fmt.Errorf("looking up document %s: %w", key, err)
	}
	for _, d := range existing {
		if err := s.Delete(ctx, d.ID); err != nil && !errors.Is(err, knowledge.ErrNotFound) {
			return false, fmt.Errorf("deleting document %s: %w", key, err)
		}
	}
	return len(existing) > 0, nil
}
