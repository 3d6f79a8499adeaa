package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// TriggerFire is one firing of a trigger: the run it started.
type TriggerFire struct {
	RunID string
	// SessionID is the run's session ('' when its session was deleted).
	SessionID string
	Trigger   string
	// Source says how it fired: schedule, webhook or manual (run now).
	Source      string
	ScheduledAt time.Time // the tick, or the webhook call's time
	FiredAt     time.Time
	// Status is the run's status now ('' when its session was deleted).
	Status string
}

// RecordFire records that trigger started run runID for the tick scheduled,
// fired by source (schedule, webhook or manual), and names the trigger on
// the run (GET /…/runs/{run_id} shows it).
func (db *DB) RecordFire(ctx context.Context, trigger, runID, source string, scheduled, fired time.Time) error {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO trigger_fires (run_id, trigger_name, scheduled_at, fired_at, source) VALUES ($1, $2, $3, $4, $5)`,
			runID, trigger, db.timeArg(scheduled), db.timeArg(fired), source); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE runs SET trigger_name = $1 WHERE id = $2`, trigger, runID)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: recording a firing of trigger %s: %w", trigger, err)
	}
	return nil
}

// LastFire returns when trigger last fired by itself (its schedule or
// webhook; "run now" is not a tick and does not count); ok is false when it
// never did.
func (db *DB) LastFire(ctx context.Context, trigger string) (fired time.Time, ok bool, err error) {
	row := db.r.QueryRowContext(ctx, `SELECT fired_at FROM trigger_fires WHERE trigger_name = $1 AND source <> 'manual' ORDER BY fired_at DESC LIMIT 1`, trigger)
	switch err := row.Scan(timeDest{&fired}); {
	case err == sql.ErrNoRows:
		return time.Time{}, false, nil
	case err != nil:
		return time.Time{}, false, fmt.Errorf("store: reading the last firing of trigger %s: %w", trigger, err)
	}
	return fired, true, nil
}

// TriggerFires returns trigger's last limit firings, newest first, with
// the status of their runs.
func (db *DB) TriggerFires(ctx context.Context, trigger string, limit int) ([]TriggerFire, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT f.run_id, COALESCE(r.session_id, ''), f.trigger_name, f.source, f.scheduled_at, f.fired_at, COALESCE(r.status, '')
		FROM trigger_fires f LEFT JOIN runs r ON r.id = f.run_id
		WHERE f.trigger_name = $1 ORDER BY f.fired_at DESC LIMIT $2`, trigger, limit)
	if err != nil {
		return nil, fmt.Errorf("store: listing firings of trigger %s: %w", trigger, err)
	}
	defer rows.Close()
	var out []TriggerFire
	for rows.Next() {
		var f TriggerFire
		if err := rows.Scan(&f.RunID, &f.SessionID, &f.Trigger, &f.Source, timeDest{&f.ScheduledAt}, timeDest{&f.FiredAt}, &f.Status); err != nil {
			return nil, fmt.Errorf("store: reading firings of trigger %s: %w", trigger, err)
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reading firings of trigger %s: %w", trigger, err)
	}
	return out, nil
}
