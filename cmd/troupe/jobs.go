package main

import (
	"context"
	"fmt"

	"github.com/troupehq/troupe/engine/jobs"
	"github.com/troupehq/troupe/store"
)

// openJobs opens the job engine on the store's database with the driver of
// its dialect: River's SQLite driver on the store's writer, or its pgx
// driver on a pool of the store's PostgreSQL. The job engine is generic in
// the driver's transaction type, so the choice is made here, where both the
// store and the engine are known.
func openJobs(ctx context.Context, db *store.DB, opts jobs.Options) (*jobs.Client, error) {
	var (
		c   *jobs.Client
		err error
	)
	if db.Dialect() == store.DialectPostgres {
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
		return nil, fmt.Errorf("opening the job engine: %w", err)
	}
	return c, nil
}
