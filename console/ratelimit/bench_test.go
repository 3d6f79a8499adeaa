package ratelimit_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, for schema setup

	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/console/ratelimit"
	"github.com/troupehq/troupe/store"
)

const benchKey = "sk-bench-0123456789abcdef"

// BenchmarkMiddleware is what the limits add to a request that passes them:
// off (no limit configured: no middleware is mounted, the baseline), and a
// key's request limit kept in SQLite and in PostgreSQL (one conditional
// upsert per request).
func BenchmarkMiddleware(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	run := func(b *testing.B, limited bool, db *store.DB) {
		doc := "keys:\n  - {name: bench, key: " + benchKey + ", scopes: [admin]"
		if limited {
			doc += ", rate_limit: {requests_per_second: 1000000, burst: 1000000}"
		}
		path := filepath.Join(b.TempDir(), "keys.yaml")
		if err := os.WriteFile(path, []byte(doc+"}\n"), 0o600); err != nil {
			b.Fatal(err)
		}
		keys, _ := auth.ParseKeys("")
		if err := auth.LoadKeysFile(path, keys); err != nil {
			b.Fatal(err)
		}
		deny := func(c *gin.Context, err error) { c.AbortWithStatus(http.StatusTooManyRequests) }
		chain := []gin.HandlerFunc{auth.Bearer(keys, func(c *gin.Context, err *auth.Error) { deny(c, err) })}
		if l := ratelimit.New(ratelimit.Options{Store: db, Keys: keys}); l != nil {
			chain = append(chain, l.Middleware(deny))
		}
		r := gin.New()
		r.GET("/agents", append(chain, func(c *gin.Context) { c.Status(http.StatusOK) })...)
		req := httptest.NewRequest(http.MethodGet, "/agents", nil)
		req.Header.Set("Authorization", "Bearer "+benchKey)
		for b.Loop() {
			w := httptest.NewRecorder()
			r.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d", w.Code)
			}
		}
	}
	b.Run("off", func(b *testing.B) { run(b, false, nil) })
	b.Run("sqlite", func(b *testing.B) {
		db, err := store.Open(b.Context(), filepath.Join(b.TempDir(), "troupe.db"), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = db.Close() })
		run(b, true, db)
	})
	b.Run("postgres", func(b *testing.B) {
		dsn := os.Getenv("TROUPE_TEST_POSTGRES_DSN")
		if dsn == "" {
			b.Skip("TROUPE_TEST_POSTGRES_DSN not set")
		}
		db, err := store.Open(b.Context(), benchSchema(b, dsn), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = db.Close() })
		run(b, true, db)
	})
}

// benchSchema creates a schema for b, dropped when it ends, and returns dsn
// with search_path set to it.
func benchSchema(b *testing.B, dsn string) string {
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		b.Fatal(err)
	}
	schema := "troupe_bench_" + strings.ToLower(rand.Text()[:12])
	if _, err := admin.ExecContext(b.Context(), fmt.Sprintf(`CREATE SCHEMA "%s"`, schema)); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_, _ = admin.ExecContext(context.Background(), fmt.Sprintf(`DROP SCHEMA "%s" CASCADE`, schema))
		_ = admin.Close()
	})
	u, err := url.Parse(dsn)
	if err != nil {
		b.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
