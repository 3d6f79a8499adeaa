package store_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/bm25"
	"github.com/troupehq/troupe/engine/knowledge/embed"
	"github.com/troupehq/troupe/engine/knowledge/kb"
	"github.com/troupehq/troupe/store"
)

func TestKnowledgeDocumentsAndChunks(t *testing.T) {
	for name, open := range dbOpeners(t) {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			k := db.Knowledge()
			ctx := t.Context()
			now := time.Now().UTC().Truncate(time.Microsecond)
			d := &knowledge.Document{ID: "doc1", KnowledgeID: "docs", Name: "a.md", Type: "markdown", Source: "file:docs/a.md",
				Metadata: map[string]any{"lang": "en"}, Size: 5, Status: knowledge.StatusProcessing, CreatedAt: now, UpdatedAt: now}
			_, created, err := k.Create(ctx, d, []byte("hello"))
			require.NoError(t, err)
			require.True(t, created)
			again, created, err := k.Create(ctx, &knowledge.Document{ID: "doc1", KnowledgeID: "docs", Name: "other.md", CreatedAt: now, UpdatedAt: now}, []byte("x"))
			require.NoError(t, err)
			require.False(t, created)
			require.Equal(t, "a.md", again.Name)
			got, err := k.Get(ctx, "doc1")
			require.NoError(t, err)
			require.Equal(t, d, got)
			content, err := k.Content(ctx, "doc1")
			require.NoError(t, err)
			require.Equal(t, "hello", string(content))

			d.Status, d.Progress, d.Chunks, d.Attempts, d.Message = knowledge.StatusFailed, 0.5, 3, 1, "boom"
			require.NoError(t, k.Update(ctx, d))
			got, _ = k.Get(ctx, "doc1")
			require.Equal(t, d, got)
			pending, err := k.Pending(ctx)
			require.NoError(t, err)
			require.Empty(t, pending)
			sources, err := k.Sources(ctx, "docs")
			require.NoError(t, err)
			require.Contains(t, sources, "file:docs/a.md")
			// A keyed (Kafka) document is found by its source, and is not a
			// YAML source the sync would remove.
			_, _, err = k.Create(ctx, &knowledge.Document{ID: "kdoc", KnowledgeID: "docs", Name: "k.txt", Type: "text", Source: "kafka:k1",
				Status: knowledge.StatusCompleted, CreatedAt: now, UpdatedAt: now}, []byte("keyed"))
			require.NoError(t, err)
			byKey, err := k.BySource(ctx, "docs", "kafka:k1")
			require.NoError(t, err)
			require.Equal(t, []string{"kdoc"}, []string{byKey[0].ID})
			require.Len(t, byKey, 1)
			noKey, err := k.BySource(ctx, "other", "kafka:k1")
			require.NoError(t, err)
			require.Empty(t, noKey)
			sources, err = k.Sources(ctx, "docs")
			require.NoError(t, err)
			require.NotContains(t, sources, "kafka:k1")
			require.NoError(t, k.Delete(ctx, "kdoc"))

			for i := range 5 {
				_, _, err := k.Create(ctx, &knowledge.Document{ID: fmt.Sprintf("p%d", i), KnowledgeID: "other", Name: fmt.Sprintf("p%d", i), Type: "text", Source: "upload",
					Status: knowledge.StatusProcessing, Size: int64(i), CreatedAt: now.Add(time.Duration(i) * time.Second), UpdatedAt: now}, []byte("x"))
				require.NoError(t, err)
			}
			page, total, err := k.List(ctx, knowledge.DocumentQuery{KnowledgeID: "other", Limit: 2, Page: 2, SortBy: "size", SortOrder: "asc"})
			require.NoError(t, err)
			require.Equal(t, 5, total)
			require.Equal(t, []string{"p2", "p3"}, []string{page[0].ID, page[1].ID})
			pending, err = k.Pending(ctx)
			require.NoError(t, err)
			require.Len(t, pending, 5)
			counts, err := k.Counts(ctx)
			require.NoError(t, err)
			require.Equal(t, map[string]map[string]int{
				"docs":  {knowledge.StatusFailed: 1},
				"other": {knowledge.StatusProcessing: 5},
			}, counts, "every base's documents by status")

			records := []knowledge.ChunkRecord{
				{Chunk: knowledge.Chunk{ID: "doc1-00000", KnowledgeID: "docs", DocumentID: "doc1", Document: "a.md", Index: 0, Text: "first", Page: 2, Heading: "Intro", Metadata: map[string]any{"lang": "en"}},
					Dense: []float32{0.6, 0.8}, Sparse: map[uint32]float32{7: 1.5, 3: 0.25}, Len: 2},
				{Chunk: knowledge.Chunk{ID: "doc1-00001", KnowledgeID: "docs", DocumentID: "doc1", Document: "a.md", Index: 1, Text: "second"},
					Dense: []float32{1, 0}, Sparse: map[uint32]float32{9: 1}, Len: 1},
			}
			require.NoError(t, k.Put(ctx, records))
			records[1].Chunk.Text = "second, updated"
			require.NoError(t, k.Put(ctx, records[1:]), "upsert by id")
			var loaded []knowledge.ChunkRecord
			require.NoError(t, k.Load(ctx, func(r knowledge.ChunkRecord) error { loaded = append(loaded, r); return nil }))
			require.Len(t, loaded, 2)
			want := records[0]
			want.Chunk.Text = "" // Load does not read texts
			require.Equal(t, want, loaded[0])
			texts, err := k.Texts(ctx, []string{"doc1-00000", "doc1-00001", "missing"})
			require.NoError(t, err)
			require.Equal(t, map[string]string{"doc1-00000": "first", "doc1-00001": "second, updated"}, texts)
			ids, err := k.DeleteDocument(ctx, "docs", "doc1")
			require.NoError(t, err)
			require.ElementsMatch(t, []string{"doc1-00000", "doc1-00001"}, ids)

			// Shares add up to the totals; replacing or dropping one
			// takes the old one out.
			share := &bm25.Stats{N: 2, TotalLen: 20, DF: map[uint32]int{1: 2}}
			other := &bm25.Stats{N: 1, TotalLen: 10, DF: map[uint32]int{99: 1}}
			replace := func(doc string, share *bm25.Stats, want *bm25.Stats) {
				t.Helper()
				got, err := k.ReplaceDocumentStats(ctx, "docs", doc, share)
				require.NoError(t, err)
				require.Equal(t, want, got)
				loaded, err := k.LoadStats(ctx, "docs")
				require.NoError(t, err)
				require.Equal(t, want, loaded)
				loadedShare, err := k.LoadDocumentStats(ctx, "docs", doc)
				require.NoError(t, err)
				require.Equal(t, share, loadedShare)
			}
			replace("doc1", share, &bm25.Stats{N: 2, TotalLen: 20, DF: map[uint32]int{1: 2}})
			replace("doc2", other, &bm25.Stats{N: 3, TotalLen: 30, DF: map[uint32]int{1: 2, 99: 1}})
			replace("doc1", other, &bm25.Stats{N: 2, TotalLen: 20, DF: map[uint32]int{99: 2}})
			replace("doc1", nil, &bm25.Stats{N: 1, TotalLen: 10, DF: map[uint32]int{99: 1}})
			none, err := k.LoadStats(ctx, "nothing")
			require.NoError(t, err)
			require.Nil(t, none)
			none, err = k.LoadDocumentStats(ctx, "docs", "doc3")
			require.NoError(t, err)
			require.Nil(t, none)
			// A share left behind goes with its document.
			_, err = k.ReplaceDocumentStats(ctx, "docs", "doc1", share)
			require.NoError(t, err)

			require.NoError(t, k.Delete(ctx, "doc1"))
			none, err = k.LoadDocumentStats(ctx, "docs", "doc1")
			require.NoError(t, err)
			require.Nil(t, none, "deleting the document deletes its share")
			_, err = k.Get(ctx, "doc1")
			require.ErrorIs(t, err, knowledge.ErrNotFound)
			require.ErrorIs(t, k.Delete(ctx, "doc1"), knowledge.ErrNotFound)
		})
	}
}

// TestIngestionSurvivesRestart is the crash test on a real database: the
// job client is stopped mid-ingestion, the store is closed and reopened, a
// new service and job client resume the queued and interrupted jobs, and
// every document ends completed, exactly once, with exactly its chunks.
func TestIngestionSurvivesRestart(t *testing.T) {
	for name, open := range dbOpeners(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			ks := knowledgeSpecs(t, dir)
			slow := &slowEmbedder{Embedder: embed.NewLocal(embed.LocalOptions{Dimension: 64}), delay: 3 * time.Millisecond}
			ingested := &ingestCounter{}
			newService := func(db *store.DB) (*kb.Service, func()) {
				return startKnowledge(t, db, ks, slow, ingested)
			}
			db1 := open(t)
			s1, stop1 := newService(db1)
			var ids []string
			for i := range 4 {
				var b strings.Builder
				for j := range 120 {
					fmt.Fprintf(&b, "## Part %d.%d\n\nDocument %d explains step %d of the procedure in detail.\n\n", i, j, i, j)
				}
				d, _, err := s1.Submit(t.Context(), kb.Upload{KnowledgeID: "docs", Name: fmt.Sprintf("d%d.md", i), Content: []byte(b.String())})
				require.NoError(t, err)
				ids = append(ids, d.ID)
			}
			require.Eventually(t, func() bool { return slow.calls.Load() >= 3 }, 10*time.Second, time.Millisecond)
			stop1()
			require.NoError(t, db1.Close())

			db2 := open(t)
			pending, err := db2.Knowledge().Pending(t.Context())
			require.NoError(t, err)
			require.NotEmpty(t, pending, "the crash left documents unfinished")
			s2, stop2 := newService(db2)
			defer stop2()
			expected := 0
			for _, id := range ids {
				require.Eventually(t, func() bool {
					d, err := s2.Get(t.Context(), id)
					return err == nil && d.Status == knowledge.StatusCompleted
				}, 20*time.Second, 5*time.Millisecond)
				d, _ := s2.Get(t.Context(), id)
				expected += d.Chunks
			}
			seen := map[string]bool{}
			require.NoError(t, db2.Knowledge().Load(t.Context(), func(r knowledge.ChunkRecord) error {
				require.False(t, seen[r.Chunk.ID], "duplicate chunk")
				seen[r.Chunk.ID] = true
				return nil
			}))
			require.Len(t, seen, expected, "exactly the expected chunks")
			// The count follows the document's last update, which the
			// wait above may see first.
			require.Eventually(t, func() bool { return ingested.total() >= len(ids) }, 5*time.Second, time.Millisecond)
			for _, id := range ids {
				require.Equal(t, 1, ingested.completed(id), "document %s completed exactly once", id)
			}
			hits, err := s2.Search(t.Context(), []string{"docs"}, "procedure step 7", knowledge.ModeHybrid, 3, nil)
			require.NoError(t, err)
			require.NotEmpty(t, hits)
		})
	}
}

// TestTwoJobClientsNeverIngestTwice runs two services, each with its own
// store and job client, on one PostgreSQL database, as two replicas would:
// every document is uploaded through both, and each is still ingested
// exactly once, with exactly its chunks.
func TestTwoJobClientsNeverIngestTwice(t *testing.T) {
	dsn := newSchema(t, postgresDSN(t))
	ks := knowledgeSpecs(t, t.TempDir())
	slow := &slowEmbedder{Embedder: embed.NewLocal(embed.LocalOptions{Dimension: 64}), delay: time.Millisecond}
	ingested := &ingestCounter{}
	var services []*kb.Service
	var dbs []*store.DB
	for range 2 {
		db := openPostgres(t, dsn, store.Options{MaxOpenConns: 8})
		s, stop := startKnowledge(t, db, ks, slow, ingested)
		t.Cleanup(stop)
		services, dbs = append(services, s), append(dbs, db)
	}
	const docs = 20
	got := make([][2]string, docs) // each document's id, as each service returned it
	var g errgroup.Group
	for i := range docs {
		var b strings.Builder
		for j := range 30 {
			fmt.Fprintf(&b, "## Part %d.%d\n\nDocument %d explains step %d of the procedure in detail.\n\n", i, j, i, j)
		}
		for k, s := range services {
			g.Go(func() error {
				d, _, err := s.Submit(t.Context(), kb.Upload{KnowledgeID: "docs", Name: fmt.Sprintf("d%d.md", i), Content: []byte(b.String())})
				if err == nil {
					got[i][k] = d.ID
				}
				return err
			})
		}
	}
	require.NoError(t, g.Wait())
	ids := make([]string, docs)
	for i, pair := range got {
		require.Equal(t, pair[0], pair[1], "the same bytes are the same document")
		ids[i] = pair[0]
	}
	expected := 0
	for _, id := range ids {
		require.Eventually(t, func() bool {
			d, err := services[0].Get(t.Context(), id)
			return err == nil && d.Status == knowledge.StatusCompleted
		}, 30*time.Second, 5*time.Millisecond)
		d, err := services[0].Get(t.Context(), id)
		require.NoError(t, err)
		expected += d.Chunks
	}
	seen := map[string]bool{}
	require.NoError(t, dbs[0].Knowledge().Load(t.Context(), func(r knowledge.ChunkRecord) error {
		require.False(t, seen[r.Chunk.ID], "duplicate chunk")
		seen[r.Chunk.ID] = true
		return nil
	}))
	require.Len(t, seen, expected, "exactly the expected chunks")
	// The count follows the document's last update, which the wait above
	// may see first.
	require.Eventually(t, func() bool { return ingested.total() >= docs }, 5*time.Second, time.Millisecond)
	for _, id := range ids {
		require.Equal(t, 1, ingested.completed(id), "document %s ingested exactly once", id)
	}
	require.Equal(t, docs, ingested.total(), "no ingestion ran twice")
}

// TestKnowledgeStatsAcrossReplicas: two handles on one database (two
// replicas) change the shares of different documents of one base at once;
// the totals are the sum of the last shares, none lost to the other's write.
func TestKnowledgeStatsAcrossReplicas(t *testing.T) {
	for name, open := range dbOpeners(t) {
		t.Run(name, func(t *testing.T) {
			a, b := open(t).Knowledge(), open(t).Knowledge()
			const docs, rounds = 8, 5
			var g errgroup.Group
			for d := range docs {
				k := a
				if d%2 == 1 {
					k = b
				}
				g.Go(func() error {
					for r := 1; r <= rounds; r++ {
						share := &bm25.Stats{N: r, TotalLen: 10 * r, DF: map[uint32]int{uint32(d): r}}
						if _, err := k.ReplaceDocumentStats(t.Context(), "docs", fmt.Sprint("doc", d), share); err != nil {
							return err
						}
					}
					return nil
				})
			}
			require.NoError(t, g.Wait())
			want := &bm25.Stats{N: docs * rounds, TotalLen: docs * rounds * 10, DF: map[uint32]int{}}
			for d := range docs {
				want.DF[uint32(d)] = rounds
			}
			for _, k := range []*store.Knowledge{a, b} {
				got, err := k.LoadStats(t.Context(), "docs")
				require.NoError(t, err)
				require.Equal(t, want, got)
			}
		})
	}
}
