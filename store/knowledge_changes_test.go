package store_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/embedded"
)

// TestKnowledgeChangeFeed: two embedded stores over two handles of one
// database, as two replicas hold them. What one writes or deletes, the
// other applies on its next Sync, document by document; its own writes come
// back through the feed and change nothing.
func TestKnowledgeChangeFeed(t *testing.T) {
	t.Parallel()
	for name, open := range dbOpeners(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			a, err := embedded.Open(ctx, open(t).Knowledge(), embedded.Options{})
			require.NoError(t, err)
			b, err := embedded.Open(ctx, open(t).Knowledge(), embedded.Options{})
			require.NoError(t, err)
			chunks := func(doc string, n int) ([]knowledge.Chunk, [][]float32) {
				var cs []knowledge.Chunk
				var vs [][]float32
				for i := range n {
					cs = append(cs, knowledge.Chunk{ID: doc + "-" + string(rune('a'+i)), DocumentID: doc, Document: doc + ".txt", Index: i, Text: "quokka " + doc})
					vs = append(vs, []float32{1, float32(i), 0})
				}
				return cs, vs
			}
			tests := []struct {
				name   string
				change func(t *testing.T)
				want   int // chunks of kb on b after its Sync
				docs   int // documents b applied
			}{
				{"upsert", func(t *testing.T) {
					cs, vs := chunks("d1", 3)
					require.NoError(t, a.Upsert(ctx, "kb", cs, vs, nil))
					cs, vs = chunks("d2", 2)
					require.NoError(t, a.Upsert(ctx, "kb", cs, vs, nil))
				}, 5, 2},
				{"nothing new", func(*testing.T) {}, 5, 0},
				{"changed: fewer chunks", func(t *testing.T) {
					require.NoError(t, a.DeleteDocument(ctx, "kb", "d1"))
					cs, vs := chunks("d1", 1)
					require.NoError(t, a.Upsert(ctx, "kb", cs, vs, nil))
				}, 3, 1},
				{"deleted", func(t *testing.T) { require.NoError(t, a.DeleteDocument(ctx, "kb", "d2")) }, 1, 1},
			}
			for _, tc := range tests {
				tc.change(t)
				n, err := b.Sync(ctx)
				require.NoError(t, err, tc.name)
				require.Equal(t, tc.docs, n, tc.name)
				require.Equal(t, tc.want, b.Count("kb"), tc.name)
				_, err = a.Sync(ctx)
				require.NoError(t, err, tc.name)
				require.Equal(t, tc.want, a.Count("kb"), "%s: a's own changes replayed change nothing", tc.name)
			}
			hits, err := b.Search(ctx, "kb", knowledge.Query{Vector: []float32{1, 0, 0}, Mode: knowledge.ModeVector})
			require.NoError(t, err)
			require.Len(t, hits, 1)
			require.Equal(t, "quokka d1", hits[0].Text)

			// A store opened now starts from the feed's end: nothing to replay.
			c, err := embedded.Open(ctx, open(t).Knowledge(), embedded.Options{})
			require.NoError(t, err)
			n, err := c.Sync(ctx)
			require.NoError(t, err)
			require.Zero(t, n)
			require.Equal(t, 1, c.Count("kb"))
		})
	}
}
