package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// RequestStream implements session.EventLog: it records that the events of
// run runID are wanted when that is a RUNNING top-level run, in one
// statement so that the check and the record agree, and reports whether it
// is. A second request for the same run is reported like the first.
func (db *DB) RequestStream(ctx context.Context, runID string) (bool, error) {
	var found bool
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		// Requests for runs that ended before their replica looked (or
		// whose replica died) are dropped with the stale cancels' age.
		if _, err := tx.ExecContext(ctx, `DELETE FROM run_streams WHERE created_at < $1`,
			db.timeArg(now().Add(-staleCancelAge))); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `INSERT INTO run_streams (run_id, created_at)
			SELECT id, $1 FROM runs WHERE id = $2 AND status = 'RUNNING' AND parent_run_id = ''
			ON CONFLICT (run_id) DO UPDATE SET created_at = excluded.created_at RETURNING run_id`,
			db.timeArg(now()), runID)
		if err != nil {
			return err
		}
		defer rows.Close()
		found = rows.Next()
		return rows.Err()
	})
	if err != nil {
		return false, fmt.Errorf("store: recording a stream request for run %s: %w", runID, err)
	}
	return found, nil
}

// ClaimStreams implements session.EventLog: it deletes the stream requests
// for the runs among ids and returns those runs, so that each is acted on
// once.
func (db *DB) ClaimStreams(ctx context.Context, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	// A read first: almost always nothing is pending, and a poll should not
	// take SQLite's write lock (or a PostgreSQL write) to learn that.
	var b strings.Builder
	b.WriteString(`SELECT run_id FROM run_streams WHERE run_id IN `)
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	placeholders(&b, 0, len(ids))
	pending, err := queryIDs(ctx, db.r, b.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("store: reading stream requests: %w", err)
	}
	if len(pending) == 0 {
		return nil, nil
	}
	b.Reset()
	b.WriteString(`DELETE FROM run_streams WHERE run_id IN `)
	placeholders(&b, 0, len(pending))
	b.WriteString(` RETURNING run_id`)
	args = args[:0]
	for _, id := range pending {
		args = append(args, id)
	}
	var claimed []string
	err = db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		claimed, err = queryIDs(ctx, tx, b.String(), args...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: claiming stream requests: %w", err)
	}
	return claimed, nil
}
