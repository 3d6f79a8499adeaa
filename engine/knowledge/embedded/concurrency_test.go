package embedded

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/bm25"
)

// TestConcurrentSearchesAndWrites runs searches in every mode, statistics
// snapshots and their use while documents are upserted, re-upserted and
// deleted (run it with -race).
func TestConcurrentSearchesAndWrites(t *testing.T) {
	repo := NewMemoryRepository()
	s := open(t, repo)
	words := vocabulary(200)
	seed := rand.New(rand.NewPCG(11, 12))
	for d := range 20 {
		dd := doc{id: fmt.Sprintf("doc%02d", d), meta: map[string]any{"group": float64(d % 3)}}
		for range 5 {
			dd.texts = append(dd.texts, randText(seed, words, 20))
			dd.vecs = append(dd.vecs, randVec(seed, 32))
		}
		upsert(t, s, kb, dd)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errs := make(chan error, 16)
	fail := func(err error) {
		select {
		case errs <- err:
		default:
		}
		cancel()
	}

	var readers, writers sync.WaitGroup
	searches := make([]int, 4)
	for w := range searches {
		readers.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 99))
			modes := []string{knowledge.ModeVector, knowledge.ModeKeyword, knowledge.ModeHybrid}
			for i := 0; ctx.Err() == nil; i++ {
				st := s.Stats(kb)
				text := randText(r, words, 3)
				q := knowledge.Query{Mode: modes[i%3], Text: text, Vector: randVec(r, 32), Sparse: st.Query(text), TopK: 8}
				if i%4 == 0 {
					q.Filters = knowledge.Filters{"group": []any{0, 1}}
				}
				hits, err := s.Search(ctx, kb, q)
				if errors.Is(err, context.Canceled) {
					return
				}
				if err != nil {
					fail(err)
					return
				}
				seen := map[string]bool{}
				for _, h := range hits {
					if seen[h.ID] || len(hits) > 8 || (q.Filters != nil && !q.Filters.Match(h.Metadata)) {
						fail(fmt.Errorf("bad hits for %+v: %v", q, ids(hits)))
						return
					}
					seen[h.ID] = true
				}
				_ = s.Count(kb)
				searches[w]++
			}
		})
	}
	for w := range 2 {
		writers.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range 150 {
				if ctx.Err() != nil {
					return
				}
				d := fmt.Sprintf("doc%02d", r.IntN(30))
				if i%5 == 4 {
					if err := s.DeleteDocument(ctx, kb, d); err != nil {
						fail(err)
					}
					continue
				}
				st := s.Stats(kb)
				chunks := make([]knowledge.Chunk, 1+r.IntN(5))
				dense := make([][]float32, len(chunks))
				sparse := make([]map[uint32]float32, len(chunks))
				for j := range chunks {
					text := randText(r, words, 20)
					chunks[j] = knowledge.Chunk{ID: knowledge.ChunkID(d, j), DocumentID: d, Index: j, Text: text,
						Metadata: map[string]any{"group": float64(r.IntN(3))}}
					dense[j] = randVec(r, 32)
					sparse[j], _ = bm25.Doc(text, st.AvgDL())
				}
				if err := s.Upsert(ctx, kb, chunks, dense, sparse); err != nil {
					fail(err)
				}
			}
		})
	}
	writers.Wait()
	cancel()
	readers.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for _, n := range searches {
		require.Positive(t, n)
	}
	require.Equal(t, repo.Len(), s.Count(kb))
	restarted := open(t, repo)
	require.Equal(t, s.Stats(kb), restarted.Stats(kb))
}
