package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
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

// activeHold is the condition under which a rate_limit_runs row takes one
// of its subject's concurrent runs: a reservation that has not expired, or a
// bound run that is PENDING or RUNNING ($2 is now in microseconds).
const activeHold = `(rate_limit_runs.reserved_until_us > $2 OR EXISTS (
	SELECT 1 FROM runs r WHERE r.id = rate_limit_runs.run_id AND r.status IN ('PENDING', 'RUNNING')))`

// ReserveRun takes one of subject's limit concurrent runs for a run about to
// start, as a reservation named token that counts until ttl from now or
// until BindRun or ReleaseRun. It returns how many runs the subject has at
// once (before this one) and whether the reservation was made: false when
// the subject has limit already. Counting and reserving are one decision,
// serialized per subject on both dialects, so requests at once, on one
// replica or several, never both take the last slot. Rows of finished runs
// and expired reservations are forgotten on the way, so the count stays a
// short indexed scan.
func (db *DB) ReserveRun(ctx context.Context, subject, token string, limit int, now time.Time, ttl time.Duration) (int, bool, error) {
	nowUS, untilUS := now.UnixMicro(), now.Add(ttl).UnixMicro()
	var n int
	var ok bool
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		n, ok = 0, false // this may be a second run (see writeFunc)
		if db.dialect == DialectPostgres {
			// SQLite has one writer; PostgreSQL queues the subject's
			// reservations on a lock held to the commit, or two could count
			// the same free slot. The statement after it starts with a
			// snapshot that sees every reservation committed before.
			// Reservations are worth less than a WAL flush (see below).
			if _, err := tx.ExecContext(ctx, `SELECT set_config('synchronous_commit', 'off', true), pg_advisory_xact_lock(hashtext($1))`,
				"rate_limit_runs/"+subject); err != nil {
				return err
			}
			// One round trip: the delete's rows are inactive, so the count
			// (which sees the statement's snapshot) skips them either way.
			return tx.QueryRowContext(ctx, `WITH pruned AS (
					DELETE FROM rate_limit_runs WHERE subject = $1 AND NOT `+activeHold+`),
				counted AS (SELECT COUNT(*) AS n FROM rate_limit_runs WHERE subject = $1 AND `+activeHold+`),
				taken AS (
					INSERT INTO rate_limit_runs (subject, run_id, reserved_until_us)
					SELECT $1, $3, $4 FROM counted WHERE counted.n < $5 RETURNING 1)
				SELECT counted.n, EXISTS (SELECT 1 FROM taken) FROM counted`,
				subject, nowUS, token, untilUS, limit).Scan(&n, &ok)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM rate_limit_runs WHERE subject = $1 AND NOT `+activeHold, subject, nowUS); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM rate_limit_runs WHERE subject = $1 AND `+activeHold, subject, nowUS).Scan(&n); err != nil {
			return err
		}
		if n >= limit {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO rate_limit_runs (subject, run_id, reserved_until_us) VALUES ($1, $2, $3)`,
			subject, token, untilUS); err != nil {
			return err
		}
		ok = true
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("store: reserving a run of %s: %w", subject, err)
	}
	return n, ok, nil
}

// BindRun turns reservation token of each of subjects into run runID, which
// then counts while it is PENDING or RUNNING. A reservation that expired
// meanwhile is recorded anew: the run is running either way.
func (db *DB) BindRun(ctx context.Context, subjects []string, token, runID string) error {
	if len(subjects) == 0 {
		return nil
	}
	var err error
	if db.dialect == DialectPostgres {
		// One statement, so one round trip and one commit.
		_, err = db.w.ExecContext(ctx, `WITH reserved AS (
				DELETE FROM rate_limit_runs WHERE subject = ANY($1) AND run_id = $2)
			INSERT INTO rate_limit_runs (subject, run_id) SELECT s, $3 FROM unnest($1::text[]) AS s ON CONFLICT DO NOTHING`,
			subjects, token, runID)
	} else {
		err = db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
			for _, s := range subjects {
				if _, err := tx.ExecContext(ctx, `DELETE FROM rate_limit_runs WHERE subject = $1 AND run_id = $2`, s, token); err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, `INSERT INTO rate_limit_runs (subject, run_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, s, runID); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		return fmt.Errorf("store: recording run %s towards its callers' limits: %w", runID, err)
	}
	return nil
}

// ReleaseRun gives back the slots reservation token took of subjects (for
// a run that did not start).
func (db *DB) ReleaseRun(ctx context.Context, subjects []string, token string) error {
	if len(subjects) == 0 {
		return nil
	}
	var q strings.Builder
	q.WriteString(`DELETE FROM rate_limit_runs WHERE run_id = $1 AND subject IN `)
	placeholders(&q, 1, len(subjects))
	args := []any{token}
	for _, s := range subjects {
		args = append(args, s)
	}
	if _, err := db.w.ExecContext(ctx, q.String(), args...); err != nil {
		return fmt.Errorf("store: releasing run reservation %s: %w", token, err)
	}
	return nil
}
