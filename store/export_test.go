package store

import "database/sql"

// WriteDB and ReadDB expose the write and read pools to the tests that check
// how they are configured.
func WriteDB(db *DB) *sql.DB { return db.w }
func ReadDB(db *DB) *sql.DB  { return db.r }

// ReadPoolSize is the size of the SQLite read pool.
var ReadPoolSize = readPoolSize
