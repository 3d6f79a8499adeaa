package store

import (
	"context"
	"errors"
	"fmt"

	"database/sql"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"

	"github.com/troupehq/troupe/engine/jobs"
)

// ErrWrongDialect reports a job driver asked of the other database.
var ErrWrongDialect = errors.New("store: the database is of the other dialect")

// SQLiteJobDriver returns the job engine's (River's) driver on a SQLite
// database: on the writer connection, so that River's writes queue with the
// store's instead of fighting over the file lock.
func (db *DB) SQLiteJobDriver() (riverdriver.Driver[*sql.Tx], error) {
	if db.dialect != DialectSQLite {
		return nil, ErrWrongDialect
	}
	return localSQLiteDriver{riversqlite.New(db.w)}, nil
}

// localSQLiteDriver is River's SQLite driver with its notifications turned
// off. SQLite has no LISTEN/NOTIFY: the driver emulates it with an outbox
// table that listeners poll every 50ms, so a job inserted on an idle server
// waited up to 50ms to start (measured: p50 50ms from enqueue to start).
// Without a listener River wakes the inserting process's own workers at
// once instead, and a SQLite database has one process serving it (another
// process on the same file still finds new jobs by polling).
type localSQLiteDriver struct{ *riversqlite.Driver }

func (localSQLiteDriver) SupportsListener() bool     { return false }
func (localSQLiteDriver) SupportsListenNotify() bool { return false }

// PostgresJobDriver returns the job engine's (River's) driver on a
// PostgreSQL database. River needs pgx's own pool (LISTEN/NOTIFY, COPY), so
// the first call opens one on the store's DSN; Close closes it.
func (db *DB) PostgresJobDriver(ctx context.Context) (*riverpgxv5.Driver, error) {
	if db.dialect != DialectPostgres {
		return nil, ErrWrongDialect
	}
	db.poolMu.Lock()
	defer db.poolMu.Unlock()
	if db.pool == nil {
		cfg, err := pgxpool.ParseConfig(db.dsn)
		if err != nil {
			return nil, fmt.Errorf("store: parsing postgres dsn: %w", err)
		}
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("store: opening the job pool: %w", err)
		}
		db.pool = pool
	}
	return riverpgxv5.New(db.pool), nil
}

// OpenJobs opens the job engine on the database with the driver of its
// dialect. The engine is generic in the driver's transaction type, and only
// the store knows which one its database has, so the choice is made here,
// once, for the server, the commands and the tests. On SQLite the database
// is one process's (opts.Exclusive): jobs a killed process left running are
// given back when the client starts.
func (db *DB) OpenJobs(ctx context.Context, opts jobs.Options) (*jobs.Client, error) {
	opts.Exclusive = db.dialect == DialectSQLite
	var (
		c   *jobs.Client
		err error
	)
	if db.dialect == DialectPostgres {
		d, derr := db.PostgresJobDriver(ctx)
		if derr != nil {
			return nil, derr
		}
		c, err = jobs.New(ctx, d, opts)
	} else {
		d, derr := db.SQLiteJobDriver()
		if derr != nil {
			return nil, derr
		}
		c, err = jobs.New(ctx, d, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("store: opening the job engine: %w", err)
	}
	return c, nil
}
