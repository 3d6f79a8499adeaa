package kb_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/kb"
	"github.com/troupehq/troupe/spec"
)

// TestSourcesReadOnlyBoundedRegularFilesInside checks that a source glob
// ingests only regular files inside the spec folder, within the size limit
// while reading: a symlink out of the folder (to /etc/shadow, /dev/zero) is
// skipped, and a FIFO neither blocks the sync (it wedged the run loop, and
// with it shutdown) nor is ingested.
func TestSourcesReadOnlyBoundedRegularFilesInside(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(t *testing.T, docs, outside string)
	}{
		{name: "symlink out of the folder", setup: func(t *testing.T, docs, outside string) {
			require.NoError(t, os.WriteFile(filepath.Join(outside, "shadow.md"), markdownDoc("secret", 1), 0o600))
			require.NoError(t, os.Symlink(filepath.Join(outside, "shadow.md"), filepath.Join(docs, "leak.md")))
		}},
		{name: "symlinked folder out of the folder", setup: func(t *testing.T, docs, outside string) {
			require.NoError(t, os.WriteFile(filepath.Join(outside, "shadow.md"), markdownDoc("secret", 1), 0o600))
			require.NoError(t, os.Symlink(outside, filepath.Join(docs, "etc")))
		}},
		{name: "symlink to /dev/zero", setup: func(t *testing.T, docs, _ string) {
			require.NoError(t, os.Symlink("/dev/zero", filepath.Join(docs, "zero.md")))
		}},
		{name: "fifo", setup: func(t *testing.T, docs, _ string) {
			mkfifo(t, filepath.Join(docs, "pipe.md"))
		}},
		{name: "larger than the limit", setup: func(t *testing.T, docs, _ string) {
			require.NoError(t, os.WriteFile(filepath.Join(docs, "big.md"), markdownDoc("big", 200), 0o644))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := t.TempDir()
			dir, outside := filepath.Join(base, "agents.d"), filepath.Join(base, "outside")
			docs := filepath.Join(dir, "docs")
			require.NoError(t, os.MkdirAll(docs, 0o755))
			require.NoError(t, os.Mkdir(outside, 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(docs, "a.md"), markdownDoc("alpha", 1), 0o644))
			tt.setup(t, docs, outside)
			ks := specs(t, dir, docsKB+"sources: [docs/*.md, docs/*/*.md]\n")

			e := newEnv()
			s, err := kb.New(t.Context(), kb.Options{Documents: e.docs, Chunks: e.chunks, MaxBytes: 4096,
				NewEmbedder: func(*spec.Knowledge) (knowledge.Embedder, error) { return e.gate, nil }})
			require.NoError(t, err)
			s.Configure(t.Context(), ks)
			synced := make(chan struct{})
			go func() { s.SyncSources(t.Context()); close(synced) }()
			select {
			case <-synced:
			case <-time.After(5 * time.Second):
				t.Fatal("syncing the sources did not return: a read blocked or never ended")
			}
			got, _, err := s.List(t.Context(), knowledge.DocumentQuery{KnowledgeID: "docs", Limit: 100})
			require.NoError(t, err)
			require.Equal(t, []string{"a.md"}, names(got))
		})
	}
}

// TestSourceLinkedOutIsRemoved checks that a source ingested while it was a
// regular file inside the folder loses its document once it becomes a link
// out of it: the old content must not stay searchable.
func TestSourceLinkedOutIsRemoved(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	dir, outside := filepath.Join(base, "agents.d"), filepath.Join(base, "outside")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "docs"), 0o755))
	require.NoError(t, os.Mkdir(outside, 0o755))
	path := filepath.Join(dir, "docs", "a.md")
	require.NoError(t, os.WriteFile(path, markdownDoc("alpha", 1), 0o644))
	ks := specs(t, dir, docsKB+"sources: [docs/*.md]\n")
	e := newEnv()
	s, stop := e.start(t, ks)
	defer stop()
	s.SyncSources(t.Context())
	got, _, err := s.List(t.Context(), knowledge.DocumentQuery{KnowledgeID: "docs", Limit: 100})
	require.NoError(t, err)
	require.Equal(t, []string{"a.md"}, names(got))

	require.NoError(t, os.WriteFile(filepath.Join(outside, "shadow.md"), markdownDoc("secret", 1), 0o600))
	require.NoError(t, os.Remove(path))
	require.NoError(t, os.Symlink(filepath.Join(outside, "shadow.md"), path))
	s.SyncSources(t.Context())
	got, _, err = s.List(t.Context(), knowledge.DocumentQuery{KnowledgeID: "docs", Limit: 100})
	require.NoError(t, err)
	require.Empty(t, names(got))
}

// TestRemovedKnowledgeBaseKeepsItsDocuments checks what happens to the
// documents of a knowledge base removed from the YAML: they are shown
// orphaned (not completed, as if searchable), deletable, and a document left
// processing is neither failed nor waited for; when the base comes back, the
// processing document resumes and the others are as before.
func TestRemovedKnowledgeBaseKeepsItsDocuments(t *testing.T) {
	t.Parallel()
	e := newEnv()
	ks := specs(t, t.TempDir(), docsKB)
	s1, stop := e.start(t, ks)
	done, _, err := s1.Submit(t.Context(), kb.Upload{KnowledgeID: "docs", Name: "done.md", Content: markdownDoc("alpha", 2)})
	require.NoError(t, err)
	waitStatus(t, s1, done.ID, knowledge.StatusCompleted)
	stop()
	// Submitted while no run loop works: left processing, as by a server
	// stopped mid-ingestion.
	pending, _, err := s1.Submit(t.Context(), kb.Upload{KnowledgeID: "docs", Name: "pending.md", Content: markdownDoc("beta", 2)})
	require.NoError(t, err)
	extra, _, err := s1.Submit(t.Context(), kb.Upload{KnowledgeID: "docs", Name: "extra.md", Content: markdownDoc("gamma", 2)})
	require.NoError(t, err)

	// The server restarts with the base gone from the YAML.
	s2, stop2 := e.start(t, nil)
	defer stop2()
	require.Never(t, func() bool {
		d, err := e.docs.Get(context.Background(), pending.ID)
		return err != nil || d.Status != knowledge.StatusProcessing
	}, 300*time.Millisecond, 10*time.Millisecond, "a pending document of a removed base stays pending")
	for _, id := range []string{done.ID, pending.ID} {
		d, err := s2.Get(t.Context(), id)
		require.NoError(t, err)
		require.Equal(t, knowledge.StatusOrphaned, d.Status)
		require.Equal(t, `knowledge base "docs" is not configured any more: add it back to the YAML to use this document again, or delete it`, d.Message)
	}
	listed, _, err := s2.List(t.Context(), knowledge.DocumentQuery{Limit: 100})
	require.NoError(t, err)
	for _, d := range listed {
		require.Equal(t, knowledge.StatusOrphaned, d.Status, d.Name)
	}
	_, err = s2.Retry(t.Context(), done.ID)
	require.ErrorIs(t, err, knowledge.ErrNotFound)
	waitCtx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	require.NoError(t, s2.Wait(waitCtx), "orphaned documents are not waited for")
	require.NoError(t, s2.Delete(t.Context(), extra.ID), "an orphaned document is deletable")
	_, err = s2.Get(t.Context(), extra.ID)
	require.ErrorIs(t, err, knowledge.ErrNotFound)

	// The base comes back: the pending document resumes, the completed one
	// is served again.
	s2.Configure(t.Context(), ks)
	waitStatus(t, s2, pending.ID, knowledge.StatusCompleted)
	d, err := s2.Get(t.Context(), done.ID)
	require.NoError(t, err)
	require.Equal(t, knowledge.StatusCompleted, d.Status)
	hits, err := s2.Search(t.Context(), []string{"docs"}, "beta procedure", knowledge.ModeKeyword, 5, nil)
	require.NoError(t, err)
	require.NotEmpty(t, hits)
}

func names(docs []knowledge.Document) []string {
	out := make([]string, 0, len(docs))
	for _, d := range docs {
		out = append(out, d.Name)
	}
	slices.Sort(out)
	return out
}

// mkfifo makes a named pipe; the cleanup opens its write end once, so a
// reader blocked in open (the bug under test) is released.
func mkfifo(t *testing.T, path string) {
	t.Helper()
	require.NoError(t, syscall.Mkfifo(path, 0o644))
	t.Cleanup(func() {
		if f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			_ = f.Close()
		}
	})
}
