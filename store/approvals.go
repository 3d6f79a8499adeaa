package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/troupehq/troupe/engine/approval"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/spec"
)

var (
	_ session.Pauser = (*DB)(nil)
	_ approval.Inbox = (*DB)(nil)
)

const approvalColumns = `id, run_id, session_id, tool_call_id, target_kind, target_name, user_id, tool, args, reason,
	approver_users, approver_scopes, status, default_decision, deadline, decided_by, decided_at, comment, created_at`

// joinList stores a list as ",a,b," so that membership is a LIKE '%,a,%'.
func joinList(l []string) string {
	if len(l) == 0 {
		return ""
	}
	return "," + strings.Join(l, ",") + ","
}

func splitList(s string) []string {
	s = strings.Trim(s, ",")
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// SavePause implements session.Pauser.
func (db *DB) SavePause(ctx context.Context, p *session.Pause, records []approval.Record) error {
	state, err := jsonArg(p)
	if err != nil {
		return fmt.Errorf("store: saving the paused state of run %s: %w", p.RunID, err)
	}
	err = db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO run_pauses (run_id, state, created_at) VALUES ($1, $2, $3)
			ON CONFLICT (run_id) DO UPDATE SET state = excluded.state, created_at = excluded.created_at`, p.RunID, state, db.timeArg(now())); err != nil {
			return err
		}
		for _, r := range records {
			args, err := jsonArg(r.Args)
			if err != nil {
				return err
			}
			var deadline any
			if !r.Deadline.IsZero() {
				deadline = db.timeArg(normTime(r.Deadline))
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO approvals (`+approvalColumns+`)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, '', NULL, '', $16)
				ON CONFLICT (id) DO NOTHING`, // a workflow paused again at a step still waiting keeps its record
				r.ID, r.RunID, r.SessionID, r.ToolCallID, r.TargetKind, r.TargetName, r.UserID, r.Tool, args, text(r.Reason),
				joinList(r.Approvers.Users), joinList(r.Approvers.Scopes), string(r.Status), r.Default, deadline, db.timeArg(normTime(r.CreatedAt))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: saving the paused state of run %s: %w", p.RunID, err)
	}
	return nil
}

// LoadPause implements session.Pauser.
func (db *DB) LoadPause(ctx context.Context, runID string) (*session.Pause, error) {
	var state []byte
	err := db.r.QueryRowContext(ctx, `SELECT state FROM run_pauses WHERE run_id = $1`, runID).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: run %s is not paused: %w", runID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: reading the paused state of run %s: %w", runID, err)
	}
	p := &session.Pause{RunID: runID}
	if err := decodeJSON(state, p); err != nil {
		return nil, fmt.Errorf("store: decoding the paused state of run %s: %w", runID, err)
	}
	return p, nil
}

// RunApprovals implements session.Pauser.
// Proposed learnings (TargetKind learning) are left out: they hold no run.
func (db *DB) RunApprovals(ctx context.Context, runID string) ([]approval.Record, error) {
	return db.queryApprovals(ctx, `SELECT `+approvalColumns+` FROM approvals WHERE run_id = $1 AND target_kind <> $2 ORDER BY created_at, id`, runID, approval.TargetLearning)
}

// ProposeApproval adds a pending record that holds no run (a proposed
// learning, engine/learning): a record whose id exists is left as it is.
func (db *DB) ProposeApproval(ctx context.Context, r approval.Record) error {
	args, err := jsonArg(r.Args)
	if err != nil {
		return fmt.Errorf("store: proposing approval %s: %w", r.ID, err)
	}
	err = db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO approvals (`+approvalColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, NULL, '', NULL, '', $15)
			ON CONFLICT (id) DO NOTHING`,
			r.ID, r.RunID, r.SessionID, r.ToolCallID, r.TargetKind, r.TargetName, r.UserID, r.Tool, args, text(r.Reason),
			joinList(r.Approvers.Users), joinList(r.Approvers.Scopes), string(approval.StatusPending), r.Default, db.timeArg(normTime(r.CreatedAt)))
		return err
	})
	if err != nil {
		return fmt.Errorf("store: proposing approval %s: %w", r.ID, err)
	}
	return nil
}

// ContinuePaused implements session.Pauser.
func (db *DB) ContinuePaused(ctx context.Context, runID string, calls []event.ToolExecution, status event.Status, by string) (*Run, error) {
	p, err := db.LoadPause(ctx, runID)
	if err != nil {
		return nil, err
	}
	p.Calls = calls
	state, err := jsonArg(p)
	if err != nil {
		return nil, fmt.Errorf("store: continuing run %s: %w", runID, err)
	}
	ts := db.timeArg(now())
	r, err := db.transitionRun(ctx, runID, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE run_pauses SET state = $1 WHERE run_id = $2`, state, runID); err != nil {
			return err
		}
		for _, c := range calls {
			if c.ApprovalID == "" || c.Confirmed == nil {
				continue
			}
			st := approval.StatusRejected
			if *c.Confirmed {
				st = approval.StatusApproved
			}
			if _, err := tx.ExecContext(ctx, `UPDATE approvals SET status = $1, decided_by = $2, decided_at = $3, comment = $4
				WHERE id = $5 AND status = 'pending'`, string(st), by, ts, text(c.ConfirmationNote), c.ApprovalID); err != nil {
				return err
			}
		}
		// The continued execution numbers its events from 0 again.
		if _, err := tx.ExecContext(ctx, `DELETE FROM run_events WHERE run_id = $1`, runID); err != nil {
			return err
		}
		return nil
	}, `UPDATE runs SET status = $1, updated_at = $2, latency_us = NULL, replica_id = $3 WHERE id = $4 AND status = 'PAUSED'`,
		string(status), ts, db.replica, runID)
	if err != nil {
		return nil, fmt.Errorf("store: continuing run %s: %w", runID, err)
	}
	return r, nil
}

// approvalWhere builds the WHERE clause of q, with its arguments from $1.
func approvalWhere(q approval.Query) (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, strings.ReplaceAll(cond, "?", fmt.Sprintf("$%d", len(args))))
	}
	if q.Status != "" {
		add("status = ?", string(q.Status))
	}
	if q.TargetKind != "" {
		add("target_kind = ?", q.TargetKind)
	}
	if q.TargetName != "" {
		add("target_name = ?", q.TargetName)
	}
	if q.UserID != "" {
		add("user_id = ?", q.UserID)
	}
	if q.RunID != "" {
		add("run_id = ?", q.RunID)
	}
	if v := q.Viewer; v != nil {
		var or []string
		if v.UserID != "" {
			args = append(args, "%,"+likeEscape(v.UserID)+",%")
			or = append(or, fmt.Sprintf(`approver_users LIKE $%d ESCAPE '\'`, len(args)))
		}
		for _, s := range v.Scopes {
			args = append(args, "%,"+likeEscape(s)+",%")
			or = append(or, fmt.Sprintf(`approver_scopes LIKE $%d ESCAPE '\'`, len(args)))
		}
		if len(or) == 0 {
			or = append(or, "1 = 0")
		}
		conds = append(conds, "("+strings.Join(or, " OR ")+")")
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// ListApprovals implements approval.Inbox: newest first.
func (db *DB) ListApprovals(ctx context.Context, q approval.Query) ([]approval.Record, int, error) {
	total, err := db.CountApprovals(ctx, q)
	if err != nil {
		return nil, 0, err
	}
	where, args := approvalWhere(q)
	limit, page := q.Limit, max(q.Page, 1)
	if limit <= 0 {
		limit = 20
	}
	args = append(args, limit, (page-1)*limit)
	recs, err := db.queryApprovals(ctx, `SELECT `+approvalColumns+` FROM approvals`+where+
		fmt.Sprintf(` ORDER BY created_at DESC, id DESC LIMIT $%d OFFSET $%d`, len(args)-1, len(args)), args...)
	return recs, total, err
}

// CountApprovals implements approval.Inbox.
func (db *DB) CountApprovals(ctx context.Context, q approval.Query) (int, error) {
	where, args := approvalWhere(q)
	var n int
	if err := db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM approvals`+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: counting approvals: %w", err)
	}
	return n, nil
}

// GetApproval implements approval.Inbox.
func (db *DB) GetApproval(ctx context.Context, id string, v *approval.Viewer) (*approval.Record, error) {
	recs, err := db.queryApprovals(ctx, `SELECT `+approvalColumns+` FROM approvals WHERE id = $1`, id)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 || !v.CanDecide(&recs[0]) {
		return nil, fmt.Errorf("store: approval %s: %w", id, approval.ErrNotFound)
	}
	return &recs[0], nil
}

// ResolveApproval implements approval.Inbox: a conditional update of a
// pending record.
func (db *DB) ResolveApproval(ctx context.Context, id string, d approval.Decision) (*approval.Record, int, error) {
	st := approval.StatusRejected
	switch {
	case d.Expired:
		st = approval.StatusExpired
	case d.Approved:
		st = approval.StatusApproved
	}
	at := d.At
	if at.IsZero() {
		at = time.Now()
	}
	var updated int64
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE approvals SET status = $1, decided_by = $2, decided_at = $3, comment = $4 WHERE id = $5 AND status = 'pending'`,
			string(st), d.By, db.timeArg(normTime(at)), text(d.Comment), id)
		if err != nil {
			return err
		}
		updated, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("store: resolving approval %s: %w", id, err)
	}
	rec, err := db.GetApproval(ctx, id, nil)
	if err != nil {
		return nil, 0, err
	}
	if updated == 0 {
		return nil, 0, &approval.DecidedError{Record: rec}
	}
	// What the run still waits for: proposed learnings hold no run.
	var left int
	if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM approvals WHERE run_id = $1 AND status = 'pending' AND target_kind <> $2`,
		rec.RunID, approval.TargetLearning).Scan(&left); err != nil {
		return nil, 0, fmt.Errorf("store: counting the pending approvals of run %s: %w", rec.RunID, err)
	}
	return rec, left, nil
}

func (db *DB) queryApprovals(ctx context.Context, query string, args ...any) ([]approval.Record, error) {
	rows, err := db.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: reading approvals: %w", err)
	}
	defer rows.Close()
	var out []approval.Record
	for rows.Next() {
		var r approval.Record
		var argsJSON []byte
		var users, scopes, status string
		if err := rows.Scan(&r.ID, &r.RunID, &r.SessionID, &r.ToolCallID, &r.TargetKind, &r.TargetName, &r.UserID, &r.Tool, &argsJSON, &r.Reason,
			&users, &scopes, &status, &r.Default, timeDest{&r.Deadline}, &r.DecidedBy, timeDest{&r.DecidedAt}, &r.Comment, timeDest{&r.CreatedAt}); err != nil {
			return nil, fmt.Errorf("store: reading approvals: %w", err)
		}
		r.Status = approval.Status(status)
		r.Approvers = spec.Approvers{Users: splitList(users), Scopes: splitList(scopes)}
		if err := decodeJSON(argsJSON, &r.Args); err != nil {
			return nil, fmt.Errorf("store: decoding the arguments of approval %s: %w", r.ID, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reading approvals: %w", err)
	}
	return out, nil
}

// CancelPaused implements session.Pauser: the run ends CANCELLED, and its
// pending approvals are rejected in its name.
func (db *DB) CancelPaused(ctx context.Context, runID, reason, by string) (*Run, error) {
	ts := db.timeArg(now())
	r, err := db.transitionRun(ctx, runID, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE approvals SET status = 'rejected', decided_by = $1, decided_at = $2, comment = $3
			WHERE run_id = $4 AND status = 'pending'`, by, ts, "the run was cancelled", runID)
		return err
	}, `UPDATE runs SET status = 'CANCELLED', error = $1, updated_at = $2 WHERE id = $3 AND status = 'PAUSED'`, text(reason), ts, runID)
	if err != nil {
		return nil, fmt.Errorf("store: cancelling paused run %s: %w", runID, err)
	}
	return r, nil
}
