package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// TakeRate spends one request of subject's GCRA allowance (the generic cell
// rate algorithm): each request moves the subject's theoretical arrival time
// (TAT) to max(TAT, now) + emission, and is allowed while max(TAT, now) - now
// stays within tolerance. The check and the move are one conditional upsert,
// atomic on both dialects, so replicas sharing the database share the limit.
// It returns 0 when the request is allowed, else how long until it would be.
func (db *DB) TakeRate(ctx context.Context, subject string, now time.Time, emission, tolerance time.Duration) (time.Duration, error) {
	nowUS, emUS, tolUS := now.UnixMicro(), emission.Microseconds(), tolerance.Microseconds()
	greatest := "MAX"
	if db.dialect == DialectPostgres {
		greatest = "GREATEST"
	}
	// A new subject is always let through: a limit's burst is at least one.
	// When the WHERE refuses the update, neither dialect returns a row.
	q := `INSERT INTO rate_limits (subject, tat_us) VALUES ($1, CAST($2 AS BIGINT) + CAST($3 AS BIGINT))
		ON CONFLICT (subject) DO UPDATE SET tat_us = ` + greatest + `(rate_limits.tat_us, CAST($2 AS BIGINT)) + CAST($3 AS BIGINT)
		WHERE ` + greatest + `(rate_limits.tat_us, CAST($2 AS BIGINT)) - CAST($2 AS BIGINT) <= CAST($4 AS BIGINT)
		RETURNING tat_us`
	var tat int64
	switch err := db.w.QueryRowContext(ctx, q, subject, nowUS, emUS, tolUS).Scan(&tat); {
	case err == nil:
		return 0, nil
	case !errors.Is(err, sql.ErrNoRows):
		return 0, fmt.Errorf("store: taking a request of %s's rate limit: %w", subject, err)
	}
	if err := db.w.QueryRowContext(ctx, `SELECT tat_us FROM rate_limits WHERE subject = $1`, subject).Scan(&tat); err != nil {
		return 0, fmt.Errorf("store: reading %s's rate limit: %w", subject, err)
	}
	wait := time.Duration(tat-nowUS-tolUS) * time.Microsecond
	// A refusal always has something to wait for, even when the row moved
	// on between the two statements.
	return max(wait, time.Microsecond), nil
}

// ActiveRuns counts subject's PENDING and RUNNING runs among those HoldRun
// recorded, first forgetting the ones that have finished (or whose session
// was deleted) so the count stays a short indexed scan.
func (db *DB) ActiveRuns(ctx context.Context, subject string) (int, error) {
	const active = `SELECT 1 FROM runs r WHERE r.id = rate_limit_runs.run_id AND r.status IN ('PENDING', 'RUNNING')`
	if _, err := db.w.ExecContext(ctx, `DELETE FROM rate_limit_runs WHERE subject = $1 AND NOT EXISTS (`+active+`)`, subject); err != nil {
		return 0, fmt.Errorf("store: pruning %s's finished runs: %w", subject, err)
	}
	var n int
	if err := db.w.QueryRowContext(ctx, `SELECT COUNT(*) FROM rate_limit_runs WHERE subject = $1 AND EXISTS (`+active+`)`, subject).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: counting %s's runs: %w", subject, err)
	}
	return n, nil
}

// HoldRun records that subject started runID, which then counts towards
// subject's concurrent runs while it is PENDING or RUNNING.
func (db *DB) HoldRun(ctx context.Context, subject, runID string) error {
	if _, err := db.w.ExecContext(ctx, `INSERT INTO rate_limit_runs (subject, run_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, subject, runID); err != nil {
		return fmt.Errorf("store: recording run %s of %s: %w", runID, subject, err)
	}
	return nil
}
