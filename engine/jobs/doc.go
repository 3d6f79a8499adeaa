// Package jobs is the job engine's one home: it declares job kinds, registers
// their workers and owns the River client that runs them (its lifecycle, its
// schema migrations and periodic jobs).
//
// A job kind is declared once, as a Kind value next to its arguments type, and
// registered with its work function:
//
//	type IngestArgs struct{ DocumentID string `json:"document_id"` }
//	func (IngestArgs) Kind() string { return "knowledge_ingest" }
//	var Ingest = jobs.Kind[IngestArgs]{Unique: true, Timeout: jobs.NoTimeout}
//	jobs.Register(reg, Ingest, func(ctx context.Context, a IngestArgs) error { ... })
//	jobs.Enqueue(ctx, client, Ingest, IngestArgs{DocumentID: id})
//
// The database driver comes from the composition root (store provides one
// for SQLite and one for PostgreSQL), so nothing in the engine imports the
// store. Jobs live in the database: they survive a restart, and on
// PostgreSQL any number of clients share them without running one twice.
package jobs
