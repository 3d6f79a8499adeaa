package store_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/embed"
	"github.com/troupehq/troupe/engine/knowledge/kb"
	"github.com/troupehq/troupe/spec"
)

// TestURLSourceValidatorsSurviveARestart checks that what a URL source
// answered (its ETag and when it was fetched) is kept in the database: a
// service started again on it asks conditionally, gets 304 and ingests
// nothing, on SQLite and PostgreSQL.
func TestURLSourceValidatorsSurviveARestart(t *testing.T) {
	for name, open := range dbOpeners(t) {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			k := db.Knowledge()
			at := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
			require.NoError(t, k.SaveSourceFetch(t.Context(), knowledge.SourceFetch{KnowledgeID: "other", URL: "https://example.com/a", ETag: `"1"`, FetchedAt: at}))
			require.NoError(t, k.SaveSourceFetch(t.Context(), knowledge.SourceFetch{KnowledgeID: "other", URL: "https://example.com/a", LastModified: "Mon, 07 Dec 2026 06:00:00 GMT", FetchedAt: at.Add(time.Hour)}))
			got, err := k.SourceFetches(t.Context(), "other")
			require.NoError(t, err)
			require.Len(t, got, 1)
			require.Equal(t, knowledge.SourceFetch{KnowledgeID: "other", URL: "https://example.com/a", LastModified: "Mon, 07 Dec 2026 06:00:00 GMT", FetchedAt: at.Add(time.Hour)},
				normalize(got["https://example.com/a"]))

			var full, notModified atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("ETag", `"v1"`)
				if r.Header.Get("If-None-Match") == `"v1"` {
					notModified.Add(1)
					w.WriteHeader(http.StatusNotModified)
					return
				}
				full.Add(1)
				_, _ = w.Write([]byte("# Parking\n\nPermits are renewed every April.\n"))
			}))
			t.Cleanup(srv.Close)
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "kb.yaml"), fmt.Appendf(nil, "kind: Knowledge\nname: web-%s\nsources: [%q]\n", name, srv.URL+"/parking.md"), 0o644))
			set, err := spec.NewLoader(spec.LoaderOptions{Env: func(string) (string, bool) { return "", false }}).Load(dir)
			require.NoError(t, err)
			ks := []*spec.Knowledge{set.Knowledge("web-" + name)}

			for i, want := range []kb.SyncResult{{Added: 1}, {Unchanged: 1}} {
				// Each service is a process started on the database.
				s, err := kb.New(t.Context(), kb.Options{Documents: k, Chunks: k, Stats: k, Fetches: k,
					NewEmbedder: func(*spec.Knowledge) (knowledge.Embedder, error) {
						return embed.NewLocal(embed.LocalOptions{Dimension: kb.LocalDimension}), nil
					}})
				require.NoError(t, err)
				s.Configure(t.Context(), ks)
				res, err := s.Sync(t.Context(), "web-"+name)
				require.NoError(t, err)
				require.Equal(t, want, res, "start %d", i+1)
			}
			require.Equal(t, int64(1), full.Load(), "the page is downloaded once")
			require.Equal(t, int64(1), notModified.Load(), "the restarted service sent the stored ETag")
		})
	}
}

func normalize(f knowledge.SourceFetch) knowledge.SourceFetch {
	f.FetchedAt = f.FetchedAt.UTC()
	return f
}
