package memory_test

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/embed"
	"github.com/troupehq/troupe/engine/knowledge/embedded"
	"github.com/troupehq/troupe/engine/knowledge/kb"
	"github.com/troupehq/troupe/engine/memory"
	"github.com/troupehq/troupe/spec"
)

// countingEmbedder counts the texts it embeds.
type countingEmbedder struct {
	knowledge.Embedder
	texts atomic.Int64
}

func (c *countingEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	c.texts.Add(int64(len(texts)))
	return c.Embedder.Embed(ctx, texts)
}

// remoteStore stands in for Milvus: a vector store outside the process,
// which cannot count a knowledge base's chunks.
type remoteStore struct{ knowledge.VectorStore }

// TestIndexOnKnowledgeBase: with a named knowledge base, memories are
// embedded by its embedder and stored in its store (Milvus in production),
// under the reserved id, so that the base's own searches never see them.
func TestIndexOnKnowledgeBase(t *testing.T) {
	e := newEnv(t, memory.Options{})
	emb := &countingEmbedder{Embedder: embed.NewLocal(embed.LocalOptions{Dimension: 64})}
	inner, err := embedded.Open(t.Context(), embedded.NewMemoryRepository(), embedded.Options{})
	require.NoError(t, err)
	docs := kb.NewMemoryDocuments()
	kbs, err := kb.New(t.Context(), kb.Options{Documents: docs, Chunks: embedded.NewMemoryRepository(), Stats: docs,
		NewEmbedder: func(*spec.Knowledge) (knowledge.Embedder, error) { return emb, nil },
		NewMilvus: func(context.Context, *spec.Knowledge, int) (knowledge.VectorStore, error) {
			return remoteStore{inner}, nil
		}})
	require.NoError(t, err)
	t.Cleanup(kbs.Close)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "kb.yaml"), []byte("kind: Knowledge\nname: facts\nstore: {type: milvus, address: 127.0.0.1:19530}\n"), 0o644))
	set, err := spec.NewLoader(spec.LoaderOptions{Env: func(string) (string, bool) { return "", false }}).Load(dir)
	require.NoError(t, err)
	kbs.Configure(t.Context(), []*spec.Knowledge{set.Knowledge("facts")})

	backend := func(name string) memory.Backend {
		return func(context.Context) (knowledge.Embedder, knowledge.VectorStore, func(), error) {
			return kbs.Backend(name)
		}
	}
	svc := memory.New(memory.Options{Store: e.db, Index: memory.NewIndexOn(backend("facts"))})
	for _, s := range []string{"Dana's greyhound is called Pepper", "Dana lives in Melbourne", "Dana charges 90 dollars an hour"} {
		_, err := svc.Add(t.Context(), &memory.Memory{UserID: "dana", Memory: s})
		require.NoError(t, err)
	}
	require.EqualValues(t, 3, emb.texts.Load(), "the base's embedder embeds memories")
	require.Equal(t, 3, inner.Count(memory.ReservedKnowledgeID), "in the base's store, under the reserved id")
	got, err := svc.Recall(t.Context(), "dana", "", "what is her dog's name, Pepper?", 1)
	require.NoError(t, err)
	require.Equal(t, []string{"Dana's greyhound is called Pepper"}, texts(got))
	hits, err := kbs.Search(t.Context(), []string{"facts"}, "greyhound Pepper", "", 5, nil)
	require.NoError(t, err)
	require.Empty(t, hits, "the knowledge base's own search never finds memories")

	// A store that cannot count is re-indexed from SQL at every start.
	n, err := svc.Sync(t.Context())
	require.NoError(t, err)
	require.Equal(t, 3, n)
	require.Equal(t, 3, inner.Count(memory.ReservedKnowledgeID))

	// A base that is not configured: SQL still works, recall says why not.
	missing := memory.New(memory.Options{Store: e.db, Index: memory.NewIndexOn(backend("nope"))})
	_, err = missing.Recall(t.Context(), "dana", "", "dog", 1)
	require.ErrorIs(t, err, knowledge.ErrNotFound)
	ms, _, err := missing.List(t.Context(), memory.Query{UserID: "dana"})
	require.NoError(t, err)
	require.Len(t, ms, 3)
}
