// Package store will keep sessions, runs, memories and ingestion jobs in SQL
// through bun: SQLite by default, PostgreSQL at scale. It is the only package
// that imports bun. It is empty until the server milestone lands.
package store
