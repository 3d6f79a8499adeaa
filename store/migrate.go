package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Migrations live in migrations/<dialect>/NNNN_description.sql. Each file is
// applied once, in version order, in its own transaction together with its row
// in troupe_migrations, so a failed migration leaves no trace and is retried on
// the next start. Both dialects must carry the same versions.
//
// A small runner rather than bun's migrate package: bun's bookkeeping table has
// its own layout (groups, names, a lock table), while troupe_migrations is a
// plain (version, applied_at) record that operators can read at a glance.
//
//go:embed migrations
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// migrationLockKey is the PostgreSQL advisory lock that serializes migrations
// between server processes starting at the same time ("troupe" in ASCII).
const migrationLockKey = 0x74726f757065

var createMigrationsTable = map[string]string{
	DialectSQLite: `CREATE TABLE IF NOT EXISTS troupe_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TEXT NOT NULL
	) STRICT`,
	DialectPostgres: `CREATE TABLE IF NOT EXISTS troupe_migrations (
		version    BIGINT PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TIMESTAMPTZ NOT NULL
	)`,
}

func loadMigrations(dialect string) ([]migration, error) {
	dir := path.Join("migrations", dialect)
	entries, err := fs.ReadDir(migrationFiles, dir)
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		base, ok := strings.CutSuffix(e.Name(), ".sql")
		if !ok || e.IsDir() {
			continue
		}
		num, name, _ := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s/%s: name must start with a positive version number", dir, e.Name())
		}
		body, err := fs.ReadFile(migrationFiles, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: name, sql: string(body)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s: version %d appears twice", dir, ms[i].version)
		}
	}
	return ms, nil
}

// migrate brings the schema up to date.
func (db *DB) migrate(ctx context.Context, last int) error {
	ms, err := loadMigrations(db.dialect)
	if err != nil {
		return fmt.Errorf("store: loading migrations: %w", err)
	}
	if last > 0 {
		ms = slices.DeleteFunc(ms, func(m migration) bool { return m.version > last })
	}
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		if err := db.lockMigrations(ctx, tx); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, createMigrationsTable[db.dialect])
		return err
	})
	if err != nil {
		return fmt.Errorf("store: creating troupe_migrations: %w", err)
	}
	applied, err := db.appliedMigrations(ctx)
	if err != nil {
		return fmt.Errorf("store: reading troupe_migrations: %w", err)
	}
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		done := false
		err := db.inTx(ctx, func(tx *sql.Tx) error {
			if err := db.lockMigrations(ctx, tx); err != nil {
				return err
			}
			// Another process may have applied it while we waited for the lock.
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM troupe_migrations WHERE version = $1`, m.version).Scan(&one)
			if err == nil {
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			// No arguments: both drivers then accept several statements at once.
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO troupe_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.version, m.name, db.timeArg(now()))
			done = err == nil
			return err
		})
		if err != nil {
			return fmt.Errorf("store: applying migration %d (%s): %w", m.version, m.name, err)
		}
		if done {
			db.log.Info("applied database migration", "dialect", db.dialect, "version", m.version, "name", m.name)
		}
	}
	if len(ms) > 0 {
		for v := range applied {
			if v > ms[len(ms)-1].version {
				db.log.Warn("the database schema is newer than this server; an older binary may misbehave",
					"schema_version", v, "known_version", ms[len(ms)-1].version)
				break
			}
		}
	}
	return nil
}

// lockMigrations serializes migrating processes for the rest of tx. SQLite
// needs nothing: the writer begins transactions IMMEDIATE, which already holds
// the database's write lock.
func (db *DB) lockMigrations(ctx context.Context, tx *sql.Tx) error {
	if db.dialect != DialectPostgres {
		return nil
	}
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLockKey))
	return err
}

func (db *DB) appliedMigrations(ctx context.Context) (map[int]bool, error) {
	rows, err := db.w.QueryContext(ctx, `SELECT version FROM troupe_migrations`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	applied := map[int]bool{}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		applied[v] = true
	}
	return applied, rows.Err()
}
