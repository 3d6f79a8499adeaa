package kb

import (
	"context"
	"sync"
	"time"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/embedded"
)

// FollowInterval is how often Follow applies the knowledge changes other
// replicas made: a document ingested or deleted through one is searchable
// (or gone) on every other within about this long.
const FollowInterval = time.Second

// Follow keeps this process in step with the knowledge that other processes
// on the same database change, until ctx ends: the embedded vector store
// applies the chunks they write and delete (see embedded.Store.Follow), and
// Milvus-backed bases, whose chunks every replica shares already, reload
// the keyword statistics they weigh keywords with, which every replica's
// ingestions update. The caller owns it, beside Run.
func (s *Service) Follow(ctx context.Context) error {
	var wg sync.WaitGroup
	var err error
	wg.Go(func() { err = s.embedded.Follow(ctx, FollowInterval) })
	t := time.NewTicker(FollowInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return err
		case <-t.C:
			s.refreshStats(ctx)
		}
	}
}

// refreshStats reloads the keyword statistics of the Milvus-backed bases. A
// statistics change this process made while the load ran wins: it is newer.
func (s *Service) refreshStats(ctx context.Context) {
	s.mu.RLock()
	var external []*base
	for _, b := range s.bases {
		if b.external {
			external = append(external, b)
		}
	}
	s.mu.RUnlock()
	for _, b := range external {
		b.statsMu.Lock()
		gen := b.statsGen
		b.statsMu.Unlock()
		st, err := s.opts.Stats.LoadStats(ctx, b.spec.Name)
		if err != nil || st == nil {
			if err != nil && ctx.Err() == nil {
				s.log.Warn("reloading keyword statistics; keeping the ones in memory", "knowledge", b.spec.Name, "err", err)
			}
			continue
		}
		b.statsMu.Lock()
		if b.statsGen == gen {
			b.stats = st
		}
		b.statsMu.Unlock()
	}
}

// Backend lends the embedder and vector store of a configured knowledge base
// for one use (user memories indexed with a knowledge base's embedder, in its
// store: Milvus when it is a milvus base); the caller calls release when
// done, so that a reload that replaces the base closes its store after.
func (s *Service) Backend(name string) (e knowledge.Embedder, st knowledge.VectorStore, release func(), err error) {
	b, err := s.acquire(name)
	if err != nil {
		return nil, nil, nil, err
	}
	return b.embedder, b.store, func() { b.release(s.log) }, nil
}

// Embedded returns the embedded vector store every embedded knowledge base
// shares, persisted in SQL and followed across replicas: user memories index
// themselves in it under a knowledge id no spec can name (engine/memory).
func (s *Service) Embedded() *embedded.Store { return s.embedded }
