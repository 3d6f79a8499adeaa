package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/driver/sqliteshim"
)

// busyTimeoutMS is how long a SQLite connection waits for a lock held by
// another connection (a checkpoint, another process) before failing.
const busyTimeoutMS = 5000

func openSQLite(ctx context.Context, dsn string) (*DB, error) {
	path, extra, _ := strings.Cut(dsn, "?")
	if path == "" {
		return nil, fmt.Errorf("store: empty SQLite path: %w", ErrInvalid)
	}
	memory := strings.Contains(path, ":memory:") || strings.Contains(extra, "mode=memory")
	if !memory {
		dir := filepath.Dir(strings.TrimPrefix(path, "file:"))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("store: creating directory for %s: %w", path, err)
		}
	}

	w, err := sql.Open(sqliteshim.ShimName, sqliteDSN(path, extra, false))
	if err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}
	// One writer connection, kept forever: see DB.w.
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	// Connect the writer first: it switches a new file to WAL, which readers
	// (query_only) could not do.
	if err := w.PingContext(ctx); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}

	r := w
	if !memory {
		// Every ":memory:" connection would be a different, empty database,
		// so only file databases get a separate read pool.
		r, err = sql.Open(sqliteshim.ShimName, sqliteDSN(path, extra, true))
		if err != nil {
			_ = w.Close()
			return nil, fmt.Errorf("store: opening %s for reading: %w", path, err)
		}
		n := readPoolSize()
		r.SetMaxOpenConns(n)
		r.SetMaxIdleConns(n)
		if err := r.PingContext(ctx); err != nil {
			_ = r.Close()
			_ = w.Close()
			return nil, fmt.Errorf("store: opening %s for reading: %w", path, err)
		}
	}
	db := &DB{
		dialect: DialectSQLite,
		w:       w,
		r:       r,
		bun:     bun.NewDB(w, sqlitedialect.New()),
	}
	if !memory {
		db.file = strings.TrimPrefix(path, "file:")
	}
	return db, nil
}

// sqliteMagic starts every SQLite database file.
const sqliteMagic = "SQLite format 3\x00"

// checkFile reads the database file's header. Connections that are already
// open keep serving pages from their caches (in WAL mode they do not re-read
// the header) while the file under them is overwritten or deleted; the
// next start, or the next page they need, then fails.
func (db *DB) checkFile() error {
	if db.file == "" {
		return nil
	}
	f, err := os.Open(db.file)
	if err != nil {
		return fmt.Errorf("store: database file: %w", err)
	}
	defer f.Close()
	var head [len(sqliteMagic)]byte
	if _, err := f.ReadAt(head[:], 0); err != nil {
		return fmt.Errorf("store: reading the database file's header: %w", err)
	}
	if string(head[:]) != sqliteMagic {
		return fmt.Errorf("store: %s is not a SQLite database any more (its header is damaged)", db.file)
	}
	return nil
}

// readPoolSize sizes the SQLite read pool: the pure-Go driver is CPU-bound, so
// more connections than processors only add memory, but a few are kept even on
// small machines so a slow listing does not hold up history lookups.
func readPoolSize() int {
	return max(4, min(runtime.GOMAXPROCS(0), 8))
}

// sqliteDSN adds the per-connection settings to a SQLite path. They travel in
// the DSN because the driver applies them to every connection it opens,
// including ones database/sql reopens later, which an Exec after Open cannot
// guarantee:
//
//   - journal_mode=WAL: readers do not block the writer, nor it them.
//   - busy_timeout: wait for locks instead of failing at once.
//   - foreign_keys: SQLite leaves them off by default; deleting a session
//     relies on ON DELETE CASCADE to remove its runs.
//   - synchronous=NORMAL: in WAL mode commits stay durable across application
//     crashes and skip an fsync per transaction (only a power loss can undo
//     the last commits), which is what makes thousands of runs per second
//     possible.
//   - the writer begins transactions IMMEDIATE, taking the write lock up
//     front; a deferred transaction that reads and then writes can fail with
//     SQLITE_BUSY regardless of busy_timeout when another process writes.
//   - readers are query_only, so a bug cannot write around the single writer.
func sqliteDSN(path, extra string, readOnly bool) string {
	q := url.Values{}
	if sqliteshim.DriverName() == "sqlite3" {
		// mattn/go-sqlite3, chosen by sqliteshim under the cgosqlite build tag.
		q.Set("_journal_mode", "WAL")
		q.Set("_busy_timeout", fmt.Sprint(busyTimeoutMS))
		q.Set("_foreign_keys", "1")
		q.Set("_synchronous", "NORMAL")
		if readOnly {
			q.Set("_query_only", "1")
		} else {
			q.Set("_txlock", "immediate")
		}
	} else {
		// modernc.org/sqlite runs each _pragma when it opens a connection.
		q["_pragma"] = []string{
			fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS),
			"journal_mode(WAL)",
			"foreign_keys(1)",
			"synchronous(NORMAL)",
		}
		if readOnly {
			q.Add("_pragma", "query_only(1)")
		} else {
			q.Set("_txlock", "immediate")
		}
	}
	dsn := path + "?" + q.Encode()
	if extra != "" {
		dsn += "&" + extra
	}
	return dsn
}
