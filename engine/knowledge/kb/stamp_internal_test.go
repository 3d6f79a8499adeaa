package kb

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/embed"
	"github.com/troupehq/troupe/engine/knowledge/embedded"
	"github.com/troupehq/troupe/spec"
)

// TestSyncSkipsUnchangedFiles: a sync that is not forced (the watch's, the
// periodic rescan's) does not read a file whose identity, size and
// modification time are what it read last time, long enough after that
// time; any of them changed, or a forced sync, reads it.
func TestSyncSkipsUnchangedFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	docs := filepath.Join(dir, "docs")
	require.NoError(t, os.MkdirAll(docs, 0o755))
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	write := func(name, content string, mtime time.Time) {
		path := filepath.Join(docs, name)
		require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
		require.NoError(t, os.Chtimes(path, mtime, mtime))
	}
	write("a.md", "# Alpha\n\nThe alpha guide.\n", old)
	write("b.md", "# Bravo\n\nThe bravo guide.\n", old)
	s, k := stampService(t, dir, "kind: Knowledge\nname: docs\nsources: [docs/*.md]\n")
	sync := func(sc scope) SyncResult {
		t.Helper()
		res, err := s.syncBase(t.Context(), k, sc)
		require.NoError(t, err)
		return res
	}
	require.Equal(t, SyncResult{Added: 2}, sync(scopeAll))
	require.Equal(t, SyncResult{Unchanged: 2}, sync(scopeAll))

	// Rewritten in place with the same size and modification time: the
	// stamp vouches for it, so a sync does not see the change...
	write("a.md", strings.Replace("# Alpha\n\nThe alpha guide.\n", "alpha", "ALPHA", 1), old)
	require.Equal(t, SyncResult{Unchanged: 2}, sync(scopeAll))
	// ...and a forced sync, which reads every file, does.
	require.Equal(t, SyncResult{Updated: 1, Unchanged: 1}, sync(scopeForce))
	require.Equal(t, SyncResult{Unchanged: 2}, sync(scopeAll))

	// A new modification time is read.
	write("a.md", "# Alpha\n\nThe alpha guide, v2\n", old.Add(time.Minute))
	require.Equal(t, SyncResult{Updated: 1, Unchanged: 1}, sync(scopeAll))

	// Another file renamed over it, same size and time: another inode.
	other := filepath.Join(dir, "swap.md")
	require.NoError(t, os.WriteFile(other, []byte("# Alpha\n\nThe alpha guide, v3\n"), 0o644))
	require.NoError(t, os.Chtimes(other, old.Add(time.Minute), old.Add(time.Minute)))
	require.NoError(t, os.Rename(other, filepath.Join(docs, "a.md")))
	require.Equal(t, SyncResult{Updated: 1, Unchanged: 1}, sync(scopeAll))

	// A file written just before it was read is read again, whatever its
	// stamp says: a write within the timestamp's granularity could have
	// kept its time and size.
	now := time.Now()
	write("b.md", "# Bravo\n\nThe bravo guide, v2\n", now)
	require.Equal(t, SyncResult{Updated: 1, Unchanged: 1}, sync(scopeAll))
	write("b.md", "# Bravo\n\nThe bravo guide, v3\n", now)
	require.Equal(t, SyncResult{Updated: 1, Unchanged: 1}, sync(scopeAll))

	// A removed file loses its stamp with its document.
	require.NoError(t, os.Remove(filepath.Join(docs, "b.md")))
	require.Equal(t, SyncResult{Deleted: 1, Unchanged: 1}, sync(scopeAll))
	require.NotContains(t, s.stamps["docs"], "file:docs/b.md")
}

// BenchmarkSyncUnchangedFolder syncs a folder of 1,000 unchanged 20-KB
// Markdown files: "watch" as the watch and the periodic rescan do (stats
// only), "forced" as POST /knowledge/{id}/sync does (every file read and
// hashed, as every sync did before stamps).
func BenchmarkSyncUnchangedFolder(b *testing.B) {
	dir := b.TempDir()
	docs := filepath.Join(dir, "docs")
	if err := os.MkdirAll(docs, 0o755); err != nil {
		b.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	body := strings.Repeat("Some words about the topic of this page. ", 500)
	for i := range 1000 {
		path := filepath.Join(docs, "page-"+fmt.Sprintf("%04d", i)+".md")
		if err := os.WriteFile(path, []byte(fmt.Sprintf("# Page %d\n\n", i)+body), 0o644); err != nil {
			b.Fatal(err)
		}
		if err := os.Chtimes(path, old, old); err != nil {
			b.Fatal(err)
		}
	}
	s, k := stampService(b, dir, "kind: Knowledge\nname: docs\nsources: [docs/*.md]\nchunking: {strategy: fixed, size: 4000}\n")
	if res, err := s.syncBase(b.Context(), k, scopeAll); err != nil || res.Added != 1000 {
		b.Fatal(res, err)
	}
	for _, bc := range []struct {
		name string
		sc   scope
	}{{"watch", scopeAll}, {"forced", scopeForce}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if res, err := s.syncBase(b.Context(), k, bc.sc); err != nil || res.Unchanged != 1000 {
					b.Fatal(res, err)
				}
			}
		})
	}
}

// stampService is a service over base "docs", declared by src in dir's
// kb.yaml, in memory with the local embedder. It has no Run and no Queue:
// nothing syncs but the caller's syncBase calls, which ingest at once.
func stampService(tb testing.TB, dir, src string) (*Service, *spec.Knowledge) {
	tb.Helper()
	require.NoError(tb, os.WriteFile(filepath.Join(dir, "kb.yaml"), []byte(src), 0o644))
	set, err := spec.NewLoader(spec.LoaderOptions{Env: func(string) (string, bool) { return "", false }}).Load(dir)
	require.NoError(tb, err)
	require.Empty(tb, set.Diagnostics().Errors())
	k := set.Knowledge("docs")
	s, err := New(tb.Context(), Options{Documents: NewMemoryDocuments(), Chunks: embedded.NewMemoryRepository(),
		NewEmbedder: func(*spec.Knowledge) (knowledge.Embedder, error) {
			return embed.NewLocal(embed.LocalOptions{Dimension: LocalDimension}), nil
		}})
	require.NoError(tb, err)
	s.Configure(tb.Context(), []*spec.Knowledge{k})
	return s, k
}
