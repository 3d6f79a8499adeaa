package kb_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/kb"
	"github.com/troupehq/troupe/engine/tool/egress"
	"github.com/troupehq/troupe/spec"
)

// loadSpecs loads the knowledge specs of dir with the given read roots.
func loadSpecs(t *testing.T, dir, src string, roots ...string) []*spec.Knowledge {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "kb.yaml"), []byte(src), 0o644))
	set, err := spec.NewLoader(spec.LoaderOptions{Env: func(string) (string, bool) { return "", false }, ReadRoots: roots}).Load(dir)
	require.NoError(t, err)
	require.Empty(t, set.Diagnostics().Errors())
	var out []*spec.Knowledge
	for _, k := range set.Keys() {
		if kn := set.Knowledge(k.Name); kn != nil && k.Kind == spec.KindKnowledge {
			out = append(out, kn)
		}
	}
	return out
}

// searchable reports whether a keyword search of the docs base finds word
// in a completed document named name.
func searchable(t *testing.T, s *kb.Service, word, name string) bool {
	hits, err := s.Search(t.Context(), []string{"docs"}, word, knowledge.ModeKeyword, 10, nil)
	require.NoError(t, err)
	for _, h := range hits {
		if h.Document == name && strings.Contains(strings.ToLower(h.Text), word) {
			return true
		}
	}
	return false
}

// TestSourcesFollowTheFolderWithoutReload checks that files added, edited,
// renamed and deleted under a source glob are searchable (or gone) within
// 3 s with no YAML change and no Configure: the service's own watch of the
// folder triggers the sync. It covers a source folder inside the spec folder
// and one outside it in a read root.
func TestSourcesFollowTheFolderWithoutReload(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		layout func(t *testing.T) (specDir, docs, source string, roots []string)
	}{
		{name: "inside the spec folder", layout: func(t *testing.T) (string, string, string, []string) {
			dir := t.TempDir()
			return dir, filepath.Join(dir, "docs"), "docs/*.md", nil
		}},
		{name: "in a read root outside the spec folder", layout: func(t *testing.T) (string, string, string, []string) {
			dir, shared := t.TempDir(), t.TempDir()
			docs := filepath.Join(shared, "handbook")
			return dir, docs, docs + "/*.md", []string{shared}
		}},
		{name: "folder that does not exist yet", layout: func(t *testing.T) (string, string, string, []string) {
			dir := t.TempDir()
			return dir, filepath.Join(dir, "later", "docs"), "later/docs/*.md", nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			specDir, docs, source, roots := tt.layout(t)
			if tt.name != "folder that does not exist yet" {
				require.NoError(t, os.MkdirAll(docs, 0o755))
			}
			ks := loadSpecs(t, specDir, docsKB+fmt.Sprintf("sources: [%q]\n", source), roots...)
			e := newEnv()
			s, stop := e.start(t, ks)
			defer stop()
			// Let the first sync (and its watch) start before changing files.
			time.Sleep(100 * time.Millisecond)
			require.NoError(t, os.MkdirAll(docs, 0o755))

			within := func(what string, ok func() bool) {
				t.Helper()
				start := time.Now()
				require.Eventually(t, ok, 3*time.Second, 10*time.Millisecond, what)
				t.Logf("%s: %v", what, time.Since(start).Round(time.Millisecond))
			}
			write := func(name string, content []byte) {
				// Written elsewhere and renamed into place, as editors save.
				tmp := filepath.Join(filepath.Dir(docs), "."+name+".tmp")
				require.NoError(t, os.WriteFile(tmp, content, 0o644))
				require.NoError(t, os.Rename(tmp, filepath.Join(docs, name)))
			}

			write("a.md", markdownDoc("alpha", 1))
			within("added", func() bool { return searchable(t, s, "alpha", "a.md") })

			require.NoError(t, os.WriteFile(filepath.Join(docs, "a.md"), markdownDoc("bravo", 1), 0o644))
			within("edited", func() bool { return searchable(t, s, "bravo", "a.md") && !searchable(t, s, "alpha", "a.md") })

			require.NoError(t, os.Rename(filepath.Join(docs, "a.md"), filepath.Join(docs, "b.md")))
			within("renamed", func() bool { return searchable(t, s, "bravo", "b.md") && !searchable(t, s, "bravo", "a.md") })

			require.NoError(t, os.Rename(filepath.Join(docs, "b.md"), filepath.Join(docs, "b.txt")))
			within("renamed out of the glob", func() bool { return !searchable(t, s, "bravo", "b.md") })

			write("c.md", markdownDoc("charlie", 1))
			within("added again", func() bool { return searchable(t, s, "charlie", "c.md") })
			require.NoError(t, os.Remove(filepath.Join(docs, "c.md")))
			within("deleted", func() bool { return !searchable(t, s, "charlie", "c.md") })

			docsList, _, err := s.List(t.Context(), knowledge.DocumentQuery{KnowledgeID: "docs", Limit: 100})
			require.NoError(t, err)
			require.Empty(t, docsList, "every source is gone, and so is every document")
		})
	}
}

// TestSyncCounts checks what a forced sync reports: added, updated, deleted
// and unchanged sources, and an unknown base.
func TestSyncCounts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	docs := filepath.Join(dir, "docs")
	require.NoError(t, os.MkdirAll(docs, 0o755))
	write := func(name string, content []byte) {
		require.NoError(t, os.WriteFile(filepath.Join(docs, name), content, 0o644))
	}
	write("a.md", markdownDoc("alpha", 1))
	write("b.md", markdownDoc("beta", 1))
	write("c.md", markdownDoc("gamma", 1))
	e := newEnv()
	// No Run and no Queue: nothing syncs but Sync, and it ingests at once.
	s, err := kb.New(t.Context(), kb.Options{Documents: e.docs, Chunks: e.chunks,
		NewEmbedder: func(*spec.Knowledge) (knowledge.Embedder, error) { return e.gate, nil }})
	require.NoError(t, err)
	s.Configure(t.Context(), loadSpecs(t, dir, docsKB+"sources: [docs/*.md]\n"))

	steps := []struct {
		name   string
		change func()
		want   kb.SyncResult
	}{
		{name: "first sync", change: func() {}, want: kb.SyncResult{Added: 3}},
		{name: "nothing changed", change: func() {}, want: kb.SyncResult{Unchanged: 3}},
		{name: "one of each", change: func() {
			write("a.md", markdownDoc("delta", 1))
			require.NoError(t, os.Remove(filepath.Join(docs, "b.md")))
			write("d.md", markdownDoc("echo", 1))
		}, want: kb.SyncResult{Added: 1, Updated: 1, Deleted: 1, Unchanged: 1}},
	}
	for _, st := range steps {
		st.change()
		got, err := s.Sync(t.Context(), "docs")
		require.NoError(t, err, st.name)
		require.Equal(t, st.want, got, st.name)
	}
	require.True(t, searchable(t, s, "delta", "a.md"))
	require.True(t, searchable(t, s, "echo", "d.md"))
	require.False(t, searchable(t, s, "beta", "b.md"))

	_, err = s.Sync(t.Context(), "nope")
	require.ErrorIs(t, err, knowledge.ErrNotFound)
}

// page is a loopback web page with an ETag that counts how it was asked for.
type page struct {
	mu      sync.Mutex
	body    string
	version int
	full    atomic.Int64 // 200 answers
	notMod  atomic.Int64 // 304 answers
	noCond  atomic.Int64 // requests without If-None-Match
	srv     *httptest.Server
	handled atomic.Int64
}

func newPage(t *testing.T, body string) *page {
	p := &page{body: body, version: 1}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.handled.Add(1)
		p.mu.Lock()
		body, etag := p.body, fmt.Sprintf(`"v%d"`, p.version)
		p.mu.Unlock()
		w.Header().Set("ETag", etag)
		inm := r.Header.Get("If-None-Match")
		if inm == "" {
			p.noCond.Add(1)
		}
		if inm == etag {
			p.notMod.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		p.full.Add(1)
		w.Header().Set("Content-Type", "text/markdown")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *page) set(body string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.body = body
	p.version++
}

// TestURLSourceRefresh checks that a URL source with refresh: is fetched
// again on its interval with If-None-Match: a 304 ingests nothing, a 200
// with new content replaces the document; a forced sync does the same and
// reports it.
func TestURLSourceRefresh(t *testing.T) {
	t.Parallel()
	p := newPage(t, string(markdownDoc("alpha", 1)))
	dir := t.TempDir()
	ks := loadSpecs(t, dir, docsKB+fmt.Sprintf("sources: [%q]\nrefresh: 1s\n", p.srv.URL+"/guide.md"))
	e := newEnv()
	s, stop := e.start(t, ks)
	defer stop()

	docID := func() string {
		l, _, err := s.List(t.Context(), knowledge.DocumentQuery{KnowledgeID: "docs", Limit: 10})
		require.NoError(t, err)
		if len(l) != 1 || l[0].Status != knowledge.StatusCompleted {
			return ""
		}
		return l[0].ID
	}
	require.Eventually(t, func() bool { return docID() != "" }, 5*time.Second, 10*time.Millisecond)
	first := docID()
	require.True(t, searchable(t, s, "alpha", "guide.md"))

	// Two refreshes answered 304: the document stays, nothing re-ingested.
	require.Eventually(t, func() bool { return p.notMod.Load() >= 2 }, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, int64(1), p.full.Load(), "only the first fetch downloads the page")
	require.Equal(t, int64(1), p.noCond.Load(), "every refresh sends the ETag it got")
	require.Equal(t, first, docID())

	p.set(string(markdownDoc("bravo", 1)))
	require.Eventually(t, func() bool {
		id := docID()
		return id != "" && id != first && searchable(t, s, "bravo", "guide.md")
	}, 5*time.Second, 20*time.Millisecond)
	require.False(t, searchable(t, s, "alpha", "guide.md"), "the old version's chunks are gone")

	// A forced sync asks conditionally too and says what it found.
	got, err := s.Sync(t.Context(), "docs")
	require.NoError(t, err)
	require.Equal(t, kb.SyncResult{Unchanged: 1}, got)
	p.set(string(markdownDoc("charlie", 1)))
	got, err = s.Sync(t.Context(), "docs")
	require.NoError(t, err)
	require.Equal(t, kb.SyncResult{Updated: 1}, got)
}

// TestAllowedHostsLetsALoopbackURLThrough checks that a knowledge base's
// allowed_hosts lets its URL fetches reach a loopback server, while a base
// without it is refused by the egress policy before any connection is made,
// with a message naming the field to set.
func TestAllowedHostsLetsALoopbackURLThrough(t *testing.T) {
	t.Parallel()
	p := newPage(t, string(markdownDoc("alpha", 1)))
	dir := t.TempDir()
	ks := loadSpecs(t, dir, "kind: Knowledge\nname: open\nallowed_hosts: [127.0.0.1]\n---\nkind: Knowledge\nname: guarded\n")
	e := newEnv()
	s, err := kb.New(t.Context(), kb.Options{Documents: e.docs, Chunks: e.chunks,
		HTTPClient:  egress.Policy{}.Client(5 * time.Second),
		HostsClient: func(hosts []string) *http.Client { return egress.Policy{AllowedHosts: hosts}.Client(5 * time.Second) },
		NewEmbedder: func(*spec.Knowledge) (knowledge.Embedder, error) { return e.gate, nil }})
	require.NoError(t, err)
	s.Configure(t.Context(), ks)

	tests := []struct {
		base    string
		wantErr string
	}{
		{base: "guarded", wantErr: "loopback addresses are blocked; add 127.0.0.1 to allowed_hosts of knowledge guarded to permit it"},
		{base: "open"},
	}
	for _, tt := range tests {
		t.Run(tt.base, func(t *testing.T) {
			before := p.handled.Load()
			data, name, err := s.FetchURL(t.Context(), tt.base, p.srv.URL+"/guide.md")
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				var refused *egress.RefusedError
				require.True(t, errors.As(err, &refused))
				require.Equal(t, before, p.handled.Load(), "a refused fetch never reaches the server")
				return
			}
			require.NoError(t, err)
			require.Equal(t, "guide.md", name)
			require.Contains(t, string(data), "alpha")
			require.Equal(t, before+1, p.handled.Load())
		})
	}
}

// TestFailingURLSourceWaitsBeforeRetrying: a URL source whose server
// answers 500 is not fetched again on every refresh tick (every second)
// but after min(refresh, a minute); a forced sync still fetches it.
func TestFailingURLSourceWaitsBeforeRetrying(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	var skew atomic.Int64 // how far the service's clock is ahead
	ks := loadSpecs(t, t.TempDir(), docsKB+fmt.Sprintf("sources: [%q]\nrefresh: 1h\n", srv.URL+"/guide.md"))
	e := newEnv()
	s, err := kb.New(t.Context(), kb.Options{Documents: e.docs, Chunks: e.chunks,
		Now:         func() time.Time { return time.Now().Add(time.Duration(skew.Load())) },
		NewEmbedder: func(*spec.Knowledge) (knowledge.Embedder, error) { return e.gate, nil }})
	require.NoError(t, err)
	s.Configure(t.Context(), ks)
	stop := runService(s)
	defer stop()

	require.Eventually(t, func() bool { return hits.Load() >= 1 }, 5*time.Second, 10*time.Millisecond, "the first sync fetches the source")
	require.Never(t, func() bool { return hits.Load() > 1 }, 3500*time.Millisecond, 20*time.Millisecond, "refresh ticks fetched a failing source again at once")

	skew.Store(int64(time.Minute + time.Second)) // the retry wait has passed
	require.Eventually(t, func() bool { return hits.Load() == 2 }, 5*time.Second, 10*time.Millisecond, "a minute later the source is tried again")
	require.Never(t, func() bool { return hits.Load() > 2 }, 2500*time.Millisecond, 20*time.Millisecond, "and then waits again")

	got, err := s.Sync(t.Context(), "docs")
	require.NoError(t, err)
	require.Equal(t, kb.SyncResult{Failed: 1}, got, "a forced sync fetches regardless")
	require.EqualValues(t, 3, hits.Load())
}
