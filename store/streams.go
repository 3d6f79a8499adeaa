package store

import (
	"context"
	"database/sql"
	"fmt"
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
	pending, err := db.pendingRequests(ctx, "run_streams", ids)
	if err != nil || len(pending) == 0 {
		return nil, err
	}
	query, args := inIDs(`DELETE FROM run_streams WHERE run_id IN `, pending)
	query += ` RETURNING run_id`
	var claimed []string
	err = db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		claimed, err = queryIDs(ctx, tx, query, args...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: claiming stream requests: %w", err)
	}
	return claimed, nil
}
