package store_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, for schema setup
	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/store"
	"github.com/troupehq/troupe/store/storetest"
)

// postgresEnv names the PostgreSQL URL the PostgreSQL tests run against, e.g.
// postgres://troupe:troupe@127.0.0.1:5432/troupe_test?sslmode=disable. The
// role needs to create schemas in that database.
const postgresEnv = "TROUPE_TEST_POSTGRES_DSN"

func postgresDSN(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv(postgresEnv)
	if dsn == "" {
		tb.Skipf("skipping PostgreSQL tests: set %s to a PostgreSQL URL (e.g. postgres://troupe:troupe@127.0.0.1:5432/troupe_test?sslmode=disable) to run them", postgresEnv)
	}
	return dsn
}

// newSchema creates an empty schema for tb and drops it, with everything in
// it, when tb ends; it returns dsn with search_path set to the schema, so that
// parallel tests on one database never see each other's tables.
func newSchema(tb testing.TB, dsn string) string {
	tb.Helper()
	admin, err := sql.Open("pgx", dsn)
	require.NoError(tb, err)
	schema := "troupe_test_" + strings.ToLower(rand.Text()[:16]) // search_path folds case
	_, err = admin.ExecContext(context.Background(), fmt.Sprintf(`CREATE SCHEMA "%s"`, schema))
	require.NoError(tb, err)
	// Registered before the store's own cleanup, so it runs after the store
	// is closed.
	tb.Cleanup(func() {
		_, err := admin.ExecContext(context.Background(), fmt.Sprintf(`DROP SCHEMA "%s" CASCADE`, schema))
		require.NoError(tb, err)
		require.NoError(tb, admin.Close())
	})
	u, err := url.Parse(dsn)
	require.NoError(tb, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func openPostgres(tb testing.TB, dsn string, opts store.Options) *store.DB {
	tb.Helper()
	opts.Logger = quiet
	db, err := store.Open(context.Background(), dsn, opts)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

// postgresOpener gives each test its own schema, and the same one when a test
// opens again.
func postgresOpener(dsn string) storetest.Opener {
	var dsns sync.Map // *testing.T → string
	return func(t *testing.T) *store.DB {
		d, ok := dsns.Load(t)
		if !ok {
			d = newSchema(t, dsn)
			dsns.Store(t, d)
			t.Cleanup(func() { dsns.Delete(t) })
		}
		// A small pool per test: the suite runs tests in parallel against one
		// server with a bounded number of connections.
		return openPostgres(t, d.(string), store.Options{MaxOpenConns: 8})
	}
}

func TestPostgres(t *testing.T) {
	storetest.Run(t, postgresOpener(postgresDSN(t)))
}

func TestPostgresOpen(t *testing.T) {
	dsn := newSchema(t, postgresDSN(t))
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		max  int
		want int
	}{
		{"default pool", 0, 16},
		{"configured pool", 5, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openPostgres(t, dsn, store.Options{MaxOpenConns: tc.max})
			require.Equal(t, store.DialectPostgres, db.Dialect())
			require.NoError(t, db.Ping(ctx))
			require.Equal(t, tc.want, db.Bun().DB.Stats().MaxOpenConnections)
			require.Same(t, store.WriteDB(db), store.ReadDB(db))
		})
	}

	// The tables live in the test's schema, not in public.
	db := openPostgres(t, dsn, store.Options{})
	schema, err := url.Parse(dsn)
	require.NoError(t, err)
	var n int
	require.NoError(t, db.Bun().QueryRowContext(ctx,
		`SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ? AND table_name IN ('sessions', 'runs', 'troupe_migrations')`,
		schema.Query().Get("search_path")).Scan(&n))
	require.Equal(t, 3, n)

	// postgresql:// is accepted as well.
	db2 := openPostgres(t, "postgresql"+dsn[len("postgres"):], store.Options{})
	require.Equal(t, store.DialectPostgres, db2.Dialect())
}

func TestPostgresUnreachable(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := store.Open(ctx, "postgres://u:secret@127.0.0.1:1/db?connect_timeout=1", store.Options{Logger: quiet})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "secret")
}
