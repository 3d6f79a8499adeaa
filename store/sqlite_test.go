package store_test

import (
	"context"
	"database/sql"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun/driver/sqliteshim"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/store"
	"github.com/troupehq/troupe/store/storetest"
)

// quiet keeps migration and recovery notices out of test output.
var quiet = slog.New(slog.DiscardHandler)

// openSQLite opens (or reopens) the SQLite database at path and closes it
// when tb ends.
func openSQLite(tb testing.TB, path string) *store.DB {
	tb.Helper()
	db, err := store.Open(context.Background(), path, store.Options{Logger: quiet})
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

// sqliteOpener gives each test its own database file, in a directory that
// does not exist yet (Open creates it), and the same file when a test opens
// again.
func sqliteOpener() storetest.Opener {
	var paths sync.Map // *testing.T → string
	return func(t *testing.T) *store.DB {
		p, ok := paths.Load(t)
		if !ok {
			p = filepath.Join(t.TempDir(), "nested", "dir", "troupe.db")
			paths.Store(t, p)
			t.Cleanup(func() { paths.Delete(t) })
		}
		return openSQLite(t, p.(string))
	}
}

func TestSQLite(t *testing.T) {
	storetest.Run(t, sqliteOpener())
}

func TestSQLiteMemory(t *testing.T) {
	db := openSQLite(t, ":memory:")
	require.Equal(t, store.DialectSQLite, db.Dialect())
	require.NoError(t, db.Ping(t.Context()))
	s := &store.Session{ID: "s", Type: store.SessionAgent, ComponentID: "a"}
	r := &store.Run{ID: "r", Input: "hi"}
	require.NoError(t, db.StartRun(t.Context(), s, r))
	r.Status = event.StatusCompleted
	require.NoError(t, db.FinishRun(t.Context(), r))
	list, total, err := db.ListSessions(t.Context(), store.SessionQuery{})
	require.NoError(t, err)
	require.Equal(t, 1, total)
	require.Equal(t, 1, list[0].RunCount)
}

// TestSQLitePragmas checks that the settings passed in the DSN reach every
// connection of both pools.
func TestSQLitePragmas(t *testing.T) {
	path := filepath.Join(t.TempDir(), "troupe.db")
	db := openSQLite(t, path)
	ctx := t.Context()

	w, r := store.WriteDB(db), store.ReadDB(db)
	require.NotSame(t, w, r, "a file database reads through its own pool")
	require.Equal(t, 1, w.Stats().MaxOpenConnections, "one writer connection")
	require.Equal(t, store.ReadPoolSize(), r.Stats().MaxOpenConnections)
	require.GreaterOrEqual(t, r.Stats().MaxOpenConnections, 2)

	check := func(t *testing.T, conn *sql.Conn, queryOnly int) {
		t.Helper()
		var mode string
		require.NoError(t, conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode))
		require.Equal(t, "wal", mode)
		for _, p := range []struct {
			pragma string
			want   int
		}{
			{"foreign_keys", 1},
			{"busy_timeout", 5000},
			{"synchronous", 1}, // NORMAL
			{"query_only", queryOnly},
		} {
			var got int
			require.NoError(t, conn.QueryRowContext(ctx, "PRAGMA "+p.pragma).Scan(&got))
			require.Equal(t, p.want, got, p.pragma)
		}
	}
	t.Run("writer", func(t *testing.T) {
		conn, err := w.Conn(ctx)
		require.NoError(t, err)
		defer conn.Close()
		check(t, conn, 0)
	})
	t.Run("every reader", func(t *testing.T) {
		// Hold every connection of the pool at once so each one is checked.
		var conns []*sql.Conn
		for range store.ReadPoolSize() {
			conn, err := r.Conn(ctx)
			require.NoError(t, err)
			conns = append(conns, conn)
		}
		for _, conn := range conns {
			check(t, conn, 1)
			_, err := conn.ExecContext(ctx, "DELETE FROM sessions")
			require.Error(t, err, "readers cannot write")
			require.NoError(t, conn.Close())
		}
	})
	_, err := os.Stat(path + "-wal")
	require.NoError(t, err, "WAL file exists")
}

// TestSQLiteExtraDSNParameters checks that parameters in the caller's DSN
// are kept alongside the store's own.
func TestSQLiteExtraDSNParameters(t *testing.T) {
	param := "_pragma=cache_size(-4000)" // modernc.org/sqlite
	if sqliteshim.DriverName() == "sqlite3" {
		param = "_cache_size=-4000" // mattn/go-sqlite3 (-tags cgosqlite)
	}
	db := openSQLite(t, filepath.Join(t.TempDir(), "troupe.db")+"?"+param)
	for _, pool := range []*sql.DB{store.WriteDB(db), store.ReadDB(db)} {
		var size, fk int
		require.NoError(t, pool.QueryRowContext(t.Context(), "PRAGMA cache_size").Scan(&size))
		require.Equal(t, -4000, size)
		require.NoError(t, pool.QueryRowContext(t.Context(), "PRAGMA foreign_keys").Scan(&fk))
		require.Equal(t, 1, fk)
	}
}

// TestSQLiteReadsDoNotWaitForWriter holds the write connection in an open
// transaction and shows that reads still answer while writes queue.
func TestSQLiteReadsDoNotWaitForWriter(t *testing.T) {
	db := openSQLite(t, filepath.Join(t.TempDir(), "troupe.db"))
	ctx := t.Context()
	s := &store.Session{ID: "s", Type: store.SessionAgent, ComponentID: "a", UserID: "u"}
	r := &store.Run{ID: "r1", Input: "hi"}
	require.NoError(t, db.StartRun(ctx, s, r))
	r.Status = event.StatusCompleted
	require.NoError(t, db.FinishRun(ctx, r))

	tx, err := store.WriteDB(db).BeginTx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()
	_, err = tx.ExecContext(ctx, `UPDATE sessions SET name = 'in flight' WHERE id = 's'`)
	require.NoError(t, err)

	readCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	got, err := db.GetSession(readCtx, "s", store.Filter{})
	require.NoError(t, err)
	require.Equal(t, "hi", got.Name, "readers see the last committed state")
	_, _, err = db.ListSessions(readCtx, store.SessionQuery{})
	require.NoError(t, err)
	_, err = db.ListRuns(readCtx, "s", store.Filter{})
	require.NoError(t, err)
	_, err = db.History(readCtx, "s", 5)
	require.NoError(t, err)

	writeCtx, cancelWrite := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelWrite()
	err = db.StartRun(writeCtx, s, &store.Run{ID: "r2"})
	require.ErrorIs(t, err, context.DeadlineExceeded, "writes wait for the single writer connection")
}

func TestOpenErrors(t *testing.T) {
	ctx := t.Context()
	_, err := store.Open(ctx, "", store.Options{Logger: quiet})
	require.ErrorIs(t, err, store.ErrInvalid)

	_, err = store.Open(ctx, "postgres://u:secret@[::1/db", store.Options{Logger: quiet})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "secret", "errors do not leak the password")

	// A file where the parent directory should be.
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err = store.Open(ctx, filepath.Join(file, "troupe.db"), store.Options{Logger: quiet})
	require.Error(t, err)
}

func TestCloseTwice(t *testing.T) {
	db, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "troupe.db"), store.Options{Logger: quiet})
	require.NoError(t, err)
	require.NoError(t, db.Close())
	require.NoError(t, db.Close())
	require.Error(t, db.Ping(t.Context()))
}
