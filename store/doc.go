// Package store persists Troupe's sessions and runs in SQL: SQLite by default
// (one file, no server, pure Go so CGO_ENABLED=0 builds work) and PostgreSQL
// when a deployment outgrows a single machine. It is the only package that
// imports bun; other store-backed subsystems reach the same connections and
// migrations through DB.Bun.
//
// Every agent or team run belongs to a session. The HTTP layer calls StartRun
// when a run begins (creating the session on its first run) and FinishRun when
// it ends; both are on the hot path of every run, so each is one transaction
// of statements prepared at Open. On SQLite, whose single writer connection
// commits one transaction at a time, concurrent writes are group-committed:
// one goroutine commits every write already queued in one transaction, and
// each caller still returns only once its own write is committed. Reads
// (listing, history) go to a separate pool so that on SQLite they never queue
// behind the writer.
//
// Open takes either a file path or a PostgreSQL URL:
//
//	/var/lib/troupe/troupe.db
//	postgres://troupe:secret@db:5432/troupe?sslmode=require
//	postgres://troupe:secret@db:5432/troupe?sslmode=disable&search_path=troupe
//
// Parameters of a PostgreSQL URL that pgx does not interpret itself (such as
// search_path or synchronous_commit) are sent to the server as session
// settings; the pool size comes from Options.MaxOpenConns.
//
// Schema changes are embedded, versioned SQL files (migrations/<dialect>/)
// applied by Open and recorded in the troupe_migrations table.
//
// The conformance suite in store/storetest runs against both dialects.
package store
