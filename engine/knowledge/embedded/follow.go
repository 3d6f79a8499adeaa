package embedded

import (
	"context"
	"fmt"
	"time"

	"github.com/troupehq/troupe/engine/knowledge"
)

// ChangeFeed is what a knowledge.ChunkRepository shared by several processes
// (replicas on one database) offers so that each process's index follows the
// writes of the others: a log of the documents whose chunks changed, ordered
// by a sequence number that only grows, appended in the transaction that
// changed them. store.Knowledge implements it. Its methods are called from
// one goroutine (Follow) while the Store's other methods run.
type ChangeFeed interface {
	// LastChange returns the sequence number of the latest change, 0 when
	// there is none. Open reads it before loading, so that Follow replays
	// everything that commits after the load began.
	LastChange(ctx context.Context) (int64, error)
	// Changes calls fn for the changes after seq after, in order, at most
	// limit of them. A change names the document only: its chunks as
	// stored now are the document's state.
	Changes(ctx context.Context, after int64, limit int, fn func(seq int64, knowledgeID, documentID string) error) error
	// LoadDocument streams the stored chunks of one document (texts not
	// needed) to fn.
	LoadDocument(ctx context.Context, knowledgeID, documentID string, fn func(knowledge.ChunkRecord) error) error
}

// changeBatch bounds the changes one poll reads.
const changeBatch = 500

// Follow applies, every interval, the changes other processes made to the
// repository since the last poll: each changed document's chunks are
// replaced in the index by those stored now (none for a deleted document),
// so no full reload is needed. The Store's own writes come back through the
// feed too and are applied again, which changes nothing. Follow returns nil
// at once when the repository offers no ChangeFeed, and when ctx ends; the
// caller owns it (kb.Service.Follow).
func (s *Store) Follow(ctx context.Context, interval time.Duration) error {
	if s.feed == nil {
		return nil
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if _, err := s.Sync(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("following knowledge changes from other replicas", "err", err)
		}
	}
}

// Sync applies the changes recorded since the last Sync (or Open), and
// returns how many it applied.
func (s *Store) Sync(ctx context.Context) (int, error) {
	if s.feed == nil {
		return 0, nil
	}
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	applied := 0
	for {
		type doc struct{ kb, id string }
		var docs []doc
		seen := map[doc]bool{}
		last := s.cursor
		err := s.feed.Changes(ctx, s.cursor, changeBatch, func(seq int64, knowledgeID, documentID string) error {
			last = seq
			if d := (doc{knowledgeID, documentID}); !seen[d] {
				seen[d] = true
				docs = append(docs, d)
			}
			return nil
		})
		if err != nil {
			return applied, fmt.Errorf("reading knowledge changes: %w", err)
		}
		if last == s.cursor {
			return applied, nil
		}
		for _, d := range docs {
			if err := s.reloadDocument(ctx, d.kb, d.id); err != nil {
				return applied, err
			}
			applied++
		}
		s.cursor = last
	}
}

// reloadDocument replaces a document's chunks in the index with those the
// repository holds. It holds the base's write lock across the read, as
// Upsert does across its write, so that it never puts back an older state
// over a newer local write.
func (s *Store) reloadDocument(ctx context.Context, knowledgeID, documentID string) error {
	x := s.index(knowledgeID, true)
	x.wmu.Lock()
	defer x.wmu.Unlock()
	var records []knowledge.ChunkRecord
	err := s.feed.LoadDocument(ctx, knowledgeID, documentID, func(r knowledge.ChunkRecord) error {
		r.Chunk.Text = "" // never held in memory
		records = append(records, r)
		return nil
	})
	if err != nil {
		return fmt.Errorf("loading the chunks of document %s: %w", documentID, err)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.deleteDocument(documentID, nil)
	skipped := 0
	for i := range records {
		r := &records[i]
		dim := len(r.Dense)
		if dim != 0 && x.live() == 0 && x.dim != dim {
			x.state = newState() // as Upsert: an emptied base takes a new dimension
		}
		if dim == 0 || x.dim != 0 && dim != x.dim {
			skipped++
			continue
		}
		x.add(&r.Chunk, r.Dense, r.Sparse, r.Len)
	}
	x.maybeCompact()
	if skipped > 0 {
		s.log.Warn("knowledge chunks skipped: their vector dimension differs, re-ingest the documents",
			"knowledge", knowledgeID, "document", documentID, "chunks", skipped, "dimension", x.dim)
	}
	return nil
}
