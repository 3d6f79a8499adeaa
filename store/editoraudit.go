package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// EditorAudit is one write the console's spec editor made.
type EditorAudit struct {
	ID int64
	At time.Time
	// Actor names the API key that wrote (its name), "open" when the
	// server runs without keys.
	Actor string
	// UserID is the user the key is bound to ('' for an unbound key).
	UserID string
	// Action is create, update, rename or delete.
	Action string
	// Path is the file written (the destination of a rename); FromPath
	// the file a rename moved.
	Path, FromPath string
	// HashBefore and HashAfter are the content's sha256 before and after
	// ('' for a file that did not exist before, or no longer does).
	HashBefore, HashAfter string
	TraceID               string
}

// AddEditorAudit records a write of the spec editor; it returns the row's id.
func (db *DB) AddEditorAudit(ctx context.Context, a EditorAudit) (int64, error) {
	if a.At.IsZero() {
		a.At = now()
	}
	var id int64
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO editor_audit (at, actor, user_id, action, path, from_path, hash_before, hash_after, trace_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`,
			db.timeArg(a.At), a.Actor, a.UserID, a.Action, a.Path, a.FromPath, a.HashBefore, a.HashAfter, a.TraceID).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("store: recording an editor write of %s: %w", a.Path, err)
	}
	return id, nil
}

// EditorAudits returns the spec editor's last limit writes, newest first.
func (db *DB) EditorAudits(ctx context.Context, limit int) ([]EditorAudit, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT id, at, actor, user_id, action, path, from_path, hash_before, hash_after, trace_id
		FROM editor_audit ORDER BY at DESC, id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("store: listing editor writes: %w", err)
	}
	defer rows.Close()
	out := []EditorAudit{}
	for rows.Next() {
		var a EditorAudit
		if err := rows.Scan(&a.ID, timeDest{&a.At}, &a.Actor, &a.UserID, &a.Action, &a.Path, &a.FromPath, &a.HashBefore, &a.HashAfter, &a.TraceID); err != nil {
			return nil, fmt.Errorf("store: reading editor writes: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reading editor writes: %w", err)
	}
	return out, nil
}
