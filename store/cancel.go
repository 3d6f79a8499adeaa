package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/troupehq/troupe/engine/session"
)

var _ session.Cancels = (*DB)(nil)

// staleCancelAge is how long a cancel request nobody claimed is kept: the
// run it names ended before its replica looked (a poll is 250 ms), or the
// replica died with it.
const staleCancelAge = 10 * time.Minute

// RequestCancel implements session.Cancels: it records a cancel of run
// runID when that is a RUNNING top-level run m matches, in one statement so
// that the check and the record agree. A second request for the same run is
// reported like the first.
func (db *DB) RequestCancel(ctx context.Context, runID string, m session.RunMatch, reason session.CancelReason) (bool, error) {
	var b strings.Builder
	b.WriteString(`INSERT INTO run_cancels (run_id, reason, created_at)
		SELECT id, $1, $2 FROM runs WHERE id = $3 AND status = 'RUNNING' AND parent_run_id = ''`)
	args := []any{string(reason), db.timeArg(now()), runID}
	for _, f := range []struct{ col, v string }{{"type", m.Type}, {"component_id", m.ComponentID}, {"user_id", m.UserID}} {
		if f.v != "" {
			args = append(args, f.v)
			fmt.Fprintf(&b, " AND %s = $%d", f.col, len(args))
		}
	}
	b.WriteString(` ON CONFLICT (run_id) DO UPDATE SET reason = excluded.reason RETURNING run_id`)
	var found bool
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := db.purgeCancels(ctx, tx); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, b.String(), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		found = rows.Next()
		return rows.Err()
	})
	if err != nil {
		return false, fmt.Errorf("store: recording the cancel of run %s: %w", runID, err)
	}
	return found, nil
}

// RequestSessionCancels implements session.Cancels.
func (db *DB) RequestSessionCancels(ctx context.Context, ids []string, userID string, reason session.CancelReason) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var b strings.Builder
	b.WriteString(`INSERT INTO run_cancels (run_id, reason, created_at)
		SELECT id, $1, $2 FROM runs WHERE status = 'RUNNING' AND parent_run_id = '' AND session_id IN `)
	args := []any{string(reason), db.timeArg(now())}
	placeholders(&b, len(args), len(ids))
	for _, id := range ids {
		args = append(args, id)
	}
	if userID != "" {
		args = append(args, userID)
		fmt.Fprintf(&b, " AND user_id = $%d", len(args))
	}
	b.WriteString(` ON CONFLICT (run_id) DO UPDATE SET reason = excluded.reason RETURNING run_id`)
	var runs []string
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		runs = runs[:0]
		if err := db.purgeCancels(ctx, tx); err != nil {
			return err
		}
		var err error
		runs, err = queryIDs(ctx, tx, b.String(), args...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: recording the cancels of the runs of %d sessions: %w", len(ids), err)
	}
	return runs, nil
}

// ClaimCancels implements session.Cancels: it deletes the requests for the
// runs among ids and returns them, so that each is acted on once.
func (db *DB) ClaimCancels(ctx context.Context, ids []string) (map[string]session.CancelReason, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	pending, err := db.pendingRequests(ctx, "run_cancels", ids)
	if err != nil || len(pending) == 0 {
		return nil, err
	}
	query, args := inIDs(`DELETE FROM run_cancels WHERE run_id IN `, pending)
	query += ` RETURNING run_id, reason`
	out := map[string]session.CancelReason{}
	err = db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		clear(out)
		rows, err := tx.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id, reason string
			if err := rows.Scan(&id, &reason); err != nil {
				return err
			}
			out[id] = session.CancelReason(reason)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("store: claiming cancel requests: %w", err)
	}
	return out, nil
}

// Running implements session.Cancels.
func (db *DB) Running(ctx context.Context, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	query, args := inIDs(`SELECT id FROM runs WHERE status = 'RUNNING' AND id IN `, ids)
	out, err := queryIDs(ctx, db.r, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: reading running runs: %w", err)
	}
	return out, nil
}

// purgeCancels deletes the requests nobody claimed in staleCancelAge.
func (db *DB) purgeCancels(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM run_cancels WHERE created_at < $1`, db.timeArg(now().Add(-staleCancelAge)))
	return err
}

// querier is a pool or a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// inIDs appends a list of placeholders for ids to query, which ends in
// "IN ", and returns it with ids as its arguments.
func inIDs(query string, ids []string) (string, []any) {
	var b strings.Builder
	b.WriteString(query)
	placeholders(&b, 0, len(ids))
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return b.String(), args
}

// pendingRequests returns the runs among ids that have a request in table
// (run_cancels, run_streams). It reads from the read pool: the replicas poll
// four times a second, almost always find nothing, and must not take
// SQLite's write lock (or make a PostgreSQL write) to learn that.
func (db *DB) pendingRequests(ctx context.Context, table string, ids []string) ([]string, error) {
	query, args := inIDs(`SELECT run_id FROM `+table+` WHERE run_id IN `, ids)
	pending, err := queryIDs(ctx, db.r, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: reading %s: %w", table, err)
	}
	return pending, nil
}

// queryIDs returns the first column of the rows of query.
func queryIDs(ctx context.Context, q querier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}
