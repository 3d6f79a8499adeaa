package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/engine/workflow"
)

var _ workflow.Checkpoints = (*DB)(nil)

const (
	// sqlSaveStep writes a step's checkpoint; seq keeps the order of first
	// writes, so the steps of a run list in the order they started.
	sqlSaveStep = `INSERT INTO workflow_steps (run_id, path, seq, iteration, status, input, output, error, attempts, started_at, updated_at, metrics)
VALUES ($1, $2, (SELECT COUNT(*) FROM workflow_steps WHERE run_id = $1), $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (run_id, path) DO UPDATE SET iteration = excluded.iteration, status = excluded.status, input = excluded.input,
output = excluded.output, error = excluded.error, attempts = excluded.attempts, updated_at = excluded.updated_at, metrics = excluded.metrics`
	sqlSteps = `SELECT path, iteration, status, input, output, error, attempts, started_at, updated_at, metrics
FROM workflow_steps WHERE run_id = $1 ORDER BY seq`
)

// SaveStep implements workflow.Checkpoints: it inserts or replaces the
// checkpoint of one step execution, committed before it returns.
func (db *DB) SaveStep(ctx context.Context, c workflow.Checkpoint) error {
	out := string(c.Output)
	if out == "" {
		out = "null"
	}
	metrics, err := jsonArg(c.Metrics)
	if err != nil {
		return fmt.Errorf("store: saving step %s of run %s: metrics: %w", c.Path, c.RunID, err)
	}
	args := []any{c.RunID, c.Path, c.Iteration, string(c.Status), c.Input, out, c.Error, c.Attempts,
		db.timeArg(normTime(c.StartedAt)), db.timeArg(normTime(c.UpdatedAt)), metrics}
	if db.dialect == DialectPostgres {
		_, err = db.w.ExecContext(ctx, sqlSaveStep, args...)
	} else {
		err = db.exec(ctx, sqlSaveStep, args...)
	}
	if err != nil {
		return fmt.Errorf("store: saving step %s of run %s: %w", c.Path, c.RunID, err)
	}
	return nil
}

// Steps implements workflow.Checkpoints: a run's checkpoints in the order
// their steps first started.
func (db *DB) Steps(ctx context.Context, runID string) ([]workflow.Checkpoint, error) {
	rows, err := db.r.QueryContext(ctx, sqlSteps, runID)
	if err != nil {
		return nil, fmt.Errorf("store: reading steps of run %s: %w", runID, err)
	}
	defer rows.Close()
	var out []workflow.Checkpoint
	for rows.Next() {
		c := workflow.Checkpoint{RunID: runID}
		var status string
		var output, metrics sql.RawBytes
		if err := rows.Scan(&c.Path, &c.Iteration, &status, &c.Input, &output, &c.Error, &c.Attempts,
			timeDest{&c.StartedAt}, timeDest{&c.UpdatedAt}, &metrics); err != nil {
			return nil, fmt.Errorf("store: reading steps of run %s: %w", runID, err)
		}
		if err := decodeJSON(metrics, &c.Metrics); err != nil {
			return nil, fmt.Errorf("store: reading the metrics of step %s of run %s: %w", c.Path, runID, err)
		}
		c.Status = event.Status(status)
		if s := string(output); s != "null" {
			c.Output = json.RawMessage(s)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reading steps of run %s: %w", runID, err)
	}
	return out, nil
}

// ReopenRun implements session.Reopener: in one transaction it sets PAUSED
// run id PENDING again, for a job to execute it, and records output as the
// output of its PAUSED step at path (COMPLETED), and returns the run. Both
// updates are conditional on the PAUSED status, so of concurrent callers
// exactly one succeeds and the recorded decision is the winner's; the
// others, and callers naming a run or step that is not paused, get an error
// wrapping ErrNotFound and change nothing.
func (db *DB) ReopenRun(ctx context.Context, id, path string, output json.RawMessage) (*Run, error) {
	ts := db.timeArg(now())
	// The run's row first: on PostgreSQL the loser waits on its lock and
	// then finds it PENDING.
	r, err := db.transitionRun(ctx, id, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE workflow_steps SET status = 'COMPLETED', output = $1, updated_at = $2 WHERE run_id = $3 AND path = $4 AND status = 'PAUSED'`,
			string(output), ts, id, path)
		if err != nil {
			return err
		}
		return oneOrMore(res)
	}, `UPDATE runs SET status = 'PENDING', updated_at = $1, latency_us = NULL WHERE id = $2 AND status = 'PAUSED'`, ts, id)
	if err != nil {
		return nil, fmt.Errorf("store: continuing run %s at step %s: %w", id, path, err)
	}
	return r, nil
}

var _ session.StateSaver = (*DB)(nil)

// SetSessionState replaces a session's key-value state (a workflow's
// set_state, saved when its run ends).
func (db *DB) SetSessionState(ctx context.Context, sessionID string, state map[string]any) error {
	data, err := jsonArg(state)
	if err != nil {
		return fmt.Errorf("store: saving the state of session %s: %w", sessionID, err)
	}
	if err := db.exec(ctx, `UPDATE sessions SET state = $1 WHERE id = $2`, data, sessionID); err != nil {
		return fmt.Errorf("store: saving the state of session %s: %w", sessionID, err)
	}
	return nil
}

var (
	_ workflow.Runs        = (*DB)(nil)
	_ session.HeldReopener = (*DB)(nil)
)

// ChildRun implements workflow.Runs: a step's run that paused on tool
// decisions, as it stands.
func (db *DB) ChildRun(ctx context.Context, runID string) (*workflow.ChildRun, error) {
	r, err := db.GetRun(ctx, runID, Filter{})
	if err != nil {
		return nil, err
	}
	return &workflow.ChildRun{Status: r.Status, Content: r.Content, Error: r.Error, Metrics: r.Metrics}, nil
}

// ReopenHeld implements session.HeldReopener: PAUSED workflow run id goes
// PENDING, conditionally, so that of concurrent callers one requeues it;
// the others, and a run that is not a PAUSED workflow, get an error
// wrapping ErrNotFound.
func (db *DB) ReopenHeld(ctx context.Context, id string) (*Run, error) {
	r, err := db.transitionRun(ctx, id, nil, `UPDATE runs SET status = 'PENDING', updated_at = $1, latency_us = NULL WHERE id = $2 AND status = 'PAUSED' AND type = 'workflow'`,
		db.timeArg(now()), id)
	if err != nil {
		return nil, fmt.Errorf("store: reopening workflow run %s: %w", id, err)
	}
	return r, nil
}
