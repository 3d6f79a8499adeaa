package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/troupehq/troupe/engine/session"
)

var _ interface {
	ClaimRun(ctx context.Context, id string) (*session.Run, error)
} = (*DB)(nil)

const sqlClaimRun = `UPDATE runs SET status = 'RUNNING', updated_at = $1 WHERE id = $2 AND status = 'PENDING'`

// ClaimRun moves background run id from PENDING to RUNNING and returns it.
// Only one caller ever succeeds: the others (another replica, a job run
// again) get an error wrapping ErrNotFound, as for a run that does not
// exist, so a run is executed at most once.
func (db *DB) ClaimRun(ctx context.Context, id string) (*Run, error) {
	var r Run
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, sqlClaimRun, db.timeArg(now()), id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		r, err = scanRun(tx.QueryRowContext(ctx, sqlGetRun, id, ""))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: claiming run %s: %w", id, err)
	}
	return &r, nil
}
