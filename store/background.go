package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/session"
)

var (
	_ session.Claimer  = (*DB)(nil)
	_ session.KeyStore = (*DB)(nil)
)

// FailRunning ends run id ERROR with reason if it is RUNNING (a background
// run whose worker died) and reports whether it was. It is called only once
// the run's job lease expired, when its worker is presumed dead, so it reads
// and then finishes the run (FinishRun, which also records its latency)
// rather than racing a worker that could still save a result.
func (db *DB) FailRunning(ctx context.Context, id, reason string) (bool, error) {
	r, err := db.GetRun(ctx, id, Filter{})
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if r.Status != event.StatusRunning {
		return false, nil
	}
	if r.Type == SessionWorkflow && r.ParentRunID == "" {
		// A workflow run resumes from its checkpoints instead: recovery
		// requeues it once its replica is found dead (recoverRuns).
		return false, nil
	}
	r.Status, r.Error, r.UpdatedAt = event.StatusError, reason, time.Time{}
	if err := db.FinishRun(ctx, r); err != nil {
		return false, err
	}
	return true, nil
}

// The claiming replica is recorded, so that recovery fails the run when that
// replica dies with it.
const sqlClaimRun = `UPDATE runs SET status = 'RUNNING', updated_at = $1, replica_id = $2 WHERE id = $3 AND status = 'PENDING'`

// ClaimRun moves background run id from PENDING to RUNNING and returns it.
// Only one caller ever succeeds: the others (another replica, a job run
// again) get an error wrapping ErrNotFound, as for a run that does not
// exist, so a run is executed at most once.
func (db *DB) ClaimRun(ctx context.Context, id string) (*Run, error) {
	r, err := db.transitionRun(ctx, id, nil, sqlClaimRun, db.timeArg(now()), db.replica, id)
	if err != nil {
		return nil, fmt.Errorf("store: claiming run %s: %w", id, err)
	}
	return r, nil
}

// transitionRun runs update, a conditional UPDATE of run id's status, then
// (when not nil) the statements that must commit with it, in one
// transaction, and returns the run as it left it; ErrNotFound when the
// update matched no row (another caller won, or the run was not in the
// status it requires), and then nothing changes.
func (db *DB) transitionRun(ctx context.Context, id string, then func(context.Context, *sql.Tx) error, update string, args ...any) (*Run, error) {
	var r Run
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, update, args...)
		if err != nil {
			return err
		}
		if err := oneOrMore(res); err != nil {
			return err
		}
		if then != nil {
			if err := then(ctx, tx); err != nil {
				return err
			}
		}
		r, err = scanRun(tx.QueryRowContext(ctx, sqlGetRun, id, ""))
		return err
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// oneOrMore is ErrNotFound when a conditional statement matched no row.
func oneOrMore(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// A key created before the retention cutoff ($6) is past its retention:
// the request that brings it again is a new one, so it takes the key over
// (the conflict's update) instead of replaying the old run. The purge job
// deletes such keys in bulk; this makes one expired a moment ago, not yet
// purged, behave the same.
const (
	sqlReserveKey = `INSERT INTO idempotency_keys (user_id, key, body_hash, run_id, created_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (user_id, key) DO UPDATE SET body_hash = excluded.body_hash, run_id = excluded.run_id, created_at = excluded.created_at
		WHERE idempotency_keys.created_at < $6`
	sqlGetKey     = `SELECT run_id, body_hash FROM idempotency_keys WHERE user_id = $1 AND key = $2`
	sqlLookupKey  = `SELECT run_id, body_hash FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND created_at >= $3`
	sqlReleaseKey = `DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND run_id = $3`
	sqlPurgeKeys  = `DELETE FROM idempotency_keys WHERE created_at < $1`
)

// ReserveKey records idempotency key for userID's new run runID, made by a
// request whose hash is hash. When the key is taken, and was created at or
// after expired, it records nothing and returns the run and request hash
// stored with it (reserved false); a key created before expired is past its
// retention and is taken over.
func (db *DB) ReserveKey(ctx context.Context, userID, key, hash, runID string, expired time.Time) (existingRun, existingHash string, reserved bool, err error) {
	err = db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, sqlReserveKey, userID, key, hash, runID, db.timeArg(now()), db.timeArg(normTime(expired)))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n > 0 {
			reserved = true
			return nil
		}
		return tx.QueryRowContext(ctx, sqlGetKey, userID, key).Scan(&existingRun, &existingHash)
	})
	if err != nil {
		return "", "", false, fmt.Errorf("store: reserving idempotency key: %w", err)
	}
	return existingRun, existingHash, reserved, nil
}

// LookupKey returns the run and request hash stored with userID's
// idempotency key, unless it has none created at or after expired.
func (db *DB) LookupKey(ctx context.Context, userID, key string, expired time.Time) (runID, hash string, found bool, err error) {
	err = db.r.QueryRowContext(ctx, sqlLookupKey, userID, key, db.timeArg(normTime(expired))).Scan(&runID, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, fmt.Errorf("store: looking up idempotency key: %w", err)
	}
	return runID, hash, true, nil
}

// PurgeKeys deletes the idempotency keys created before cutoff, which are
// past their retention, and returns how many it deleted.
func (db *DB) PurgeKeys(ctx context.Context, cutoff time.Time) (int, error) {
	var n int64
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, sqlPurgeKeys, db.timeArg(normTime(cutoff)))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: purging expired idempotency keys: %w", err)
	}
	return int(n), nil
}

// ReleaseKey forgets the key reserved for runID, whose run could not be
// stored, so the request can be made again.
func (db *DB) ReleaseKey(ctx context.Context, userID, key, runID string) error {
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, sqlReleaseKey, userID, key, runID)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: releasing idempotency key: %w", err)
	}
	return nil
}

// StalePendingRuns returns the ids of the top-level runs still PENDING that
// were created before before, oldest first, at most limit: background runs
// that may have lost their job (jobs.RegisterOrphanSweep checks). The
// partial index of migration 0015 holds exactly the PENDING runs, so this
// reads no others however many runs the database keeps.
func (db *DB) StalePendingRuns(ctx context.Context, before time.Time, limit int) ([]string, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT id FROM runs WHERE status = 'PENDING' AND parent_run_id = '' AND created_at < $1 ORDER BY created_at LIMIT $2`,
		db.timeArg(before), limit)
	if err != nil {
		return nil, fmt.Errorf("store: listing waiting runs: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("store: listing waiting runs: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: listing waiting runs: %w", err)
	}
	return ids, nil
}
