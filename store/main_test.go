package store_test

import (
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/troupehq/troupe/store"
)

// Closing a store must not leave goroutines behind (connection openers,
// context watchers of cancelled statements).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// dbOpeners runs a test on SQLite always and on PostgreSQL when it is
// configured; each opener reopens the same database.
func dbOpeners(t *testing.T) map[string]func(t *testing.T) *store.DB {
	path := filepath.Join(t.TempDir(), "troupe.db")
	out := map[string]func(t *testing.T) *store.DB{"sqlite": func(t *testing.T) *store.DB { return openSQLite(t, path) }}
	if dsn := os.Getenv(postgresEnv); dsn != "" {
		d := newSchema(t, dsn)
		out["postgres"] = func(t *testing.T) *store.DB { return openPostgres(t, d, store.Options{MaxOpenConns: 8}) }
	}
	return out
}
