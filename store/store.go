package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/uptrace/bun"

	"github.com/troupehq/troupe/engine/session"
)

var _ session.Store = (*DB)(nil)

// Dialect names, as returned by DB.Dialect.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

var (
	// ErrNotFound reports a session or run that does not exist or that the
	// caller's Filter does not let it see; the two are deliberately
	// indistinguishable so that a user cannot probe for other users' ids.
	// It is the run service's ErrNotFound, which the service tells apart
	// from other store failures.
	ErrNotFound = session.ErrNotFound
	// ErrInvalid reports an argument the store refuses, such as a run without
	// an id or an unknown sort field.
	ErrInvalid = errors.New("invalid argument")
)

// InterruptedRunError is the error Open records on runs that were still
// RUNNING when the previous process stopped.
const InterruptedRunError = "the server stopped while this run was in progress"

// Options configure Open.
type Options struct {
	// Logger receives migration and recovery notices; nil discards them.
	Logger *slog.Logger
	// MaxOpenConns bounds the PostgreSQL connection pool (default 16). SQLite
	// always writes through a single connection and sizes its read pool itself.
	MaxOpenConns int
	// ReplicaID names this process among the replicas sharing the database:
	// the runs it starts or claims record it, and it keeps a heartbeat row
	// under it (see Heartbeat). A process that opens the database under the
	// id of one that died recovers that one's runs at once, so the default,
	// DefaultReplicaID, suits a database one process serves at a time (the
	// SQLite default); replicas sharing a database need distinct ids.
	ReplicaID string
	// ReplicaLease is how long after its last heartbeat a replica counts as
	// dead, its RUNNING runs then failed by the recovery of any replica
	// (default DefaultReplicaLease). It must exceed the heartbeat interval
	// several times over, so that a slow heartbeat does not fail live runs.
	ReplicaLease time.Duration
	// Blobs holds the bytes of the files sent with runs: DeleteSessions
	// deletes a deleted session's files from it too. Nil keeps no bytes to
	// delete.
	Blobs Blobs

	// lastMigration stops the migrations after this version (0: apply
	// all), for the tests of a migration's data conversion.
	lastMigration int
}

// DB is a session store. It is safe for concurrent use.
type DB struct {
	dialect string
	blobs   Blobs
	// w takes every write. On SQLite it holds exactly one connection: SQLite
	// allows one writer at a time anyway, and queueing in-process is far
	// cheaper than connections fighting over the file lock with busy retries.
	w *sql.DB
	// wq is SQLite's group commit: the store's writes go through it to w, so
	// that concurrent ones share a transaction (see writer). Nil on
	// PostgreSQL.
	wq *writer
	// r serves reads. On SQLite it is a separate pool of query_only
	// connections, so that (thanks to WAL) reads never wait for the writer.
	// On PostgreSQL, and for ":memory:" SQLite, it is the same pool as w.
	r   *sql.DB
	bun *bun.DB
	// interrupted are the runs Open found RUNNING and marked failed.
	interrupted []Run
	// replica and lease are Options.ReplicaID and ReplicaLease; started is
	// when this process registered its heartbeat row, which tells its row
	// from that of a later process under the same id.
	replica string
	lease   time.Duration
	started time.Time
	// file is the SQLite database file, for the readiness check; empty for
	// PostgreSQL and in-memory databases.
	file string
	log  *slog.Logger
	st   stmts

	// dsn and pool serve the job engine on PostgreSQL (PostgresJobDriver):
	// the pool is opened on first use and closed with the DB.
	dsn    string
	poolMu sync.Mutex
	pool   *pgxpool.Pool

	closeOnce sync.Once
	closeErr  error
}

// Open opens dsn: a postgres:// or postgresql:// URL means PostgreSQL (through
// pgx's database/sql driver); anything else is a SQLite file path (parent
// directories are created; ":memory:" is allowed for tests). It runs the
// embedded, versioned migrations, then marks runs left RUNNING by a crash as
// ERROR with InterruptedRunError (see RecoverRuns: runs of this replica id's
// previous process, and of replicas whose heartbeat is stale), and registers
// this replica's heartbeat row.
func Open(ctx context.Context, dsn string, opts Options) (*DB, error) {
	var (
		db  *DB
		err error
	)
	if isPostgres(dsn) {
		db, err = openPostgres(ctx, dsn, opts)
		if db != nil {
			db.dsn = dsn
		}
	} else {
		db, err = openSQLite(ctx, dsn)
	}
	if err != nil {
		return nil, err
	}
	db.log = opts.Logger
	db.replica, db.lease = opts.ReplicaID, opts.ReplicaLease
	db.blobs = opts.Blobs
	if db.replica == "" {
		db.replica = DefaultReplicaID
	}
	if db.lease <= 0 {
		db.lease = DefaultReplicaLease
	}
	if db.log == nil {
		db.log = slog.New(slog.DiscardHandler)
	}
	if err := db.migrate(ctx, opts.lastMigration); err != nil {
		_ = db.Close()
		return nil, err
	}
	// Statements are prepared after migrating because they name the tables
	// and columns the migrations create. A database held at an older
	// migration (tests of a migration's data conversion) has not got them
	// all, and is written with plain SQL only.
	if opts.lastMigration == 0 {
		if err := db.prepare(ctx); err != nil {
			_ = db.Close()
			return nil, err
		}
	}
	if db.dialect == DialectSQLite {
		db.wq = newWriter(db.w, &db.st)
	}
	if opts.lastMigration == 0 {
		// Recovery needs the columns of migration 0013.
		recovered, err := db.recoverRuns(ctx, true)
		if err != nil {
			_ = db.Close()
			return nil, err
		}
		db.interrupted = recovered
		if err := db.register(ctx); err != nil {
			_ = db.Close()
			return nil, err
		}
	}
	return db, nil
}

// IsPostgres reports whether Open takes dsn for a PostgreSQL database.
func IsPostgres(dsn string) bool { return isPostgres(dsn) }

func isPostgres(dsn string) bool {
	l := strings.ToLower(dsn)
	return strings.HasPrefix(l, "postgres://") || strings.HasPrefix(l, "postgresql://")
}

// Close releases the connections. Writes still queued for SQLite's group
// commit fail with ErrClosed; a batch already being written finishes first. It
// is safe to call more than once.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		if db.wq != nil {
			db.wq.close()
		}
		db.poolMu.Lock()
		if db.pool != nil {
			db.pool.Close()
		}
		db.poolMu.Unlock()
		errs := []error{db.st.close()}
		if db.r != db.w {
			errs = append(errs, db.r.Close())
		}
		errs = append(errs, db.w.Close())
		if err := errors.Join(errs...); err != nil {
			db.closeErr = fmt.Errorf("store: closing: %w", err)
		}
	})
	return db.closeErr
}

// Dialect returns DialectSQLite or DialectPostgres.
func (db *DB) Dialect() string { return db.dialect }

// Ping checks that the database answers, on both the write and read pools.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.w.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	if db.r != db.w {
		if err := db.r.PingContext(ctx); err != nil {
			return fmt.Errorf("store: ping (read pool): %w", err)
		}
	}
	return nil
}

// Ready checks that the database can serve runs: a real query on the runs
// table through the pool that serves reads, and on SQLite also through the
// writer's connection, plus a read of the SQLite file's header. Ping alone is
// not enough: a SQLite connection answers pings while the file under it is
// corrupt or gone, and every run then fails. It costs one indexed row read
// per pool.
func (db *DB) Ready(ctx context.Context) error {
	if err := db.checkFile(); err != nil {
		return err
	}
	pools := []*sql.DB{db.r}
	if db.w != db.r {
		pools = append(pools, db.w)
	}
	for _, p := range pools {
		var id sql.NullString
		err := p.QueryRowContext(ctx, `SELECT id FROM runs ORDER BY id DESC LIMIT 1`).Scan(&id)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: readiness query: %w", err)
		}
	}
	return nil
}

// Bun exposes the underlying bun.DB for other store-backed subsystems (traces,
// knowledge jobs) so they share migrations and connections. It is the write
// handle: on SQLite that is a single connection, so keep transactions short.
// The store owns it; close the DB, not the bun.DB.
func (db *DB) Bun() *bun.DB { return db.bun }

// Interrupted returns the runs that Open found still RUNNING, left by a
// process that stopped without finishing them, and marked as failed with
// InterruptedRunError (a run's Content and Tools are not included). The
// caller must not modify them. Runs recovered later by RecoverRuns are
// returned by that call only.
func (db *DB) Interrupted() []Run { return db.interrupted }

// inTx runs fn in a transaction of its own on the write pool, committing when
// fn succeeds. The store's writes go through DB.write instead; this serves
// migrations, which run before SQLite's group commit starts, and PostgreSQL.
func (db *DB) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// now is the store's clock: UTC at the precision both dialects keep.
func now() time.Time { return normTime(time.Now()) }
