package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/troupehq/troupe/engine/session"
)

// Blobs is where the bytes of run files are kept (files.Disk, or an
// S3-compatible store): DeleteSessions deletes a session's files there.
type Blobs interface {
	Delete(ctx context.Context, key string) error
}

// RunFile is a file sent with a run (see session.File).
type RunFile = session.File

const runFileColumns = `id, run_id, session_id, name, media_type, size, sha256, storage_key, created_at`

// runFileArgs fills in the run's side of r's files (run, session, time) and
// returns each one's arguments for insertRunFiles.
func (db *DB) runFileArgs(r *Run) [][]any {
	out := make([][]any, len(r.Files))
	for i := range r.Files {
		f := &r.Files[i]
		f.RunID, f.SessionID, f.CreatedAt = r.ID, r.SessionID, r.CreatedAt
		out[i] = []any{f.ID, f.RunID, f.SessionID, text(f.Name), f.MediaType, f.Size, f.SHA256, f.Key, db.timeArg(f.CreatedAt), i}
	}
	return out
}

// insertRunFiles records a run's files in the transaction that stores the
// run, so a run is never stored without the files it was sent with.
func insertRunFiles(ctx context.Context, tx *sql.Tx, files [][]any) error {
	for _, args := range files {
		if _, err := tx.ExecContext(ctx, `INSERT INTO run_files (`+runFileColumns+`, position)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, args...); err != nil {
			return fmt.Errorf("storing the run's files: %w", err)
		}
	}
	return nil
}

// SessionFiles returns the files sent with the runs of session id, oldest
// run first and each run's in the order they were sent, if f lets the caller see the session (none otherwise).
func (db *DB) SessionFiles(ctx context.Context, id string, f Filter) ([]RunFile, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+runFileColumns+` FROM run_files
		WHERE session_id = $1 AND EXISTS (SELECT 1 FROM sessions s WHERE s.id = $1 AND ($2 = '' OR s.user_id = $2))
		ORDER BY created_at, run_id, position`, id, f.UserID)
	if err != nil {
		return nil, fmt.Errorf("store: listing files of session %s: %w", id, err)
	}
	defer rows.Close()
	var out []RunFile
	for rows.Next() {
		var rf RunFile
		if err := rows.Scan(dest(&rf)...); err != nil {
			return nil, fmt.Errorf("store: listing files of session %s: %w", id, err)
		}
		out = append(out, rf)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: listing files of session %s: %w", id, err)
	}
	return out, nil
}

// GetRunFile returns file fileID of session sessionID if f lets the caller
// see the session; otherwise an error wrapping ErrNotFound, the same for a
// file that does not exist and one of someone else's.
func (db *DB) GetRunFile(ctx context.Context, sessionID, fileID string, f Filter) (*RunFile, error) {
	var rf RunFile
	err := db.r.QueryRowContext(ctx, `SELECT `+runFileColumns+` FROM run_files
		WHERE id = $1 AND session_id = $2 AND EXISTS (SELECT 1 FROM sessions s WHERE s.id = $2 AND ($3 = '' OR s.user_id = $3))`,
		fileID, sessionID, f.UserID).Scan(dest(&rf)...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("file %s of session %s: %w", fileID, sessionID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: reading file %s: %w", fileID, err)
	}
	return &rf, nil
}

// SessionFileKeys returns the storage keys of the files of the sessions
// among ids that f lets the caller see: what to delete from the files
// store once DeleteSessions has deleted their rows.
func (db *DB) SessionFileKeys(ctx context.Context, ids []string, f Filter) ([]string, error) {
	var keys []string
	for batch := range slices.Chunk(ids, idBatch) {
		args := make([]any, 0, len(batch)+1)
		q := `SELECT rf.storage_key FROM run_files rf JOIN sessions s ON s.id = rf.session_id WHERE rf.session_id IN ` + inList(&args, batch)
		if f.UserID != "" {
			args = append(args, f.UserID)
			q += " AND s.user_id = $" + strconv.Itoa(len(args))
		}
		rows, err := db.r.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("store: listing session files: %w", err)
		}
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: listing session files: %w", err)
			}
			keys = append(keys, k)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("store: listing session files: %w", err)
		}
	}
	return keys, nil
}

func dest(f *RunFile) []any {
	return []any{&f.ID, &f.RunID, &f.SessionID, &f.Name, &f.MediaType, &f.Size, &f.SHA256, &f.Key, timeDest{&f.CreatedAt}}
}
