package store

import (
	"context"
	"database/sql"
)

// WriteDB and ReadDB expose the write and read pools to the tests that check
// how they are configured.
func WriteDB(db *DB) *sql.DB { return db.w }
func ReadDB(db *DB) *sql.DB  { return db.r }

// ReadPoolSize is the size of the SQLite read pool.
var ReadPoolSize = readPoolSize

// WriteStats counts the work of SQLite's group commit so far: batches taken,
// the operations they held in all, and batches run again with savepoints
// because an operation failed.
type WriteStats struct{ Batches, Ops, Replays int64 }

func WriteStatsOf(db *DB) WriteStats {
	return WriteStats{db.wq.batches.Load(), db.wq.ops.Load(), db.wq.replays.Load()}
}

// QueuedWrites is the number of writes waiting in the group commit's queue,
// not counting the one the writer holds while it waits for the connection.
func QueuedWrites(db *DB) int { return len(db.wq.q) }

// MaxWriteBatch is the most operations one group commit holds.
const MaxWriteBatch = maxBatch

// OpenAtMigration opens the database with the migrations up to version
// applied, and no later one.
func OpenAtMigration(ctx context.Context, dsn string, version int) (*DB, error) {
	return Open(ctx, dsn, Options{lastMigration: version})
}
