package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/session"
)

var _ session.SummaryStore = (*DB)(nil)

// Summary is a session's running summary, FoldPoint the last run it
// covers and HistoryRun a run after it.
type (
	Summary    = session.Summary
	FoldPoint  = session.FoldPoint
	HistoryRun = session.HistoryRun
)

// MaxSummaryBytes bounds a summary's text and MaxSummaryTopics its topics,
// whoever writes it (the summary job or the API): it goes into every turn's
// instructions.
const (
	MaxSummaryBytes  = 32 << 10
	MaxSummaryTopics = 50
)

const (
	sqlSessionSummary = `SELECT summary FROM sessions WHERE id = $1`
	// sqlUnfoldedSize counts the completed top-level runs after a fold
	// point and sums their stored estimates, without reading messages.
	sqlUnfoldedSize = `SELECT COUNT(*), COALESCE(SUM(history_tokens), 0) FROM runs
		WHERE session_id = $1 AND status = 'COMPLETED' AND parent_run_id = ''
		AND (created_at > $2 OR (created_at = $2 AND id > $3))`
	sqlHistoryAfter = `SELECT id, created_at, messages FROM runs
		WHERE session_id = $1 AND status = 'COMPLETED' AND parent_run_id = ''
		AND (created_at > $2 OR (created_at = $2 AND id > $3))
		ORDER BY created_at DESC, id DESC LIMIT $4`
	// The point only moves forward: of two jobs folding through different
	// runs, the later one's summary stays, whichever finishes last.
	sqlSaveSummary = `UPDATE sessions SET summary = $1, summary_through = $2 WHERE id = $3 AND summary_through < $2`
)

// SessionSummary implements session.SummaryStore.
func (db *DB) SessionSummary(ctx context.Context, id string) (*Summary, error) {
	var raw []byte
	err := db.st.sessionSummary.QueryRowContext(ctx, id).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: reading the summary of session %s: %w", id, err)
	}
	var s *Summary
	if err := decodeJSON(raw, &s); err != nil {
		return nil, fmt.Errorf("store: decoding the summary of session %s: %w", id, err)
	}
	return s, nil
}

// HistoryAfter implements session.SummaryStore.
func (db *DB) HistoryAfter(ctx context.Context, sessionID string, p session.FoldPoint, n int) ([]session.HistoryRun, error) {
	if n <= 0 {
		return nil, nil
	}
	rows, err := db.st.historyAfter.QueryContext(ctx, sessionID, db.timeArg(p.CreatedAt), p.RunID, n)
	if err != nil {
		return nil, fmt.Errorf("store: reading history of session %s: %w", sessionID, err)
	}
	defer rows.Close()
	var runs []session.HistoryRun
	for rows.Next() {
		var (
			r   session.HistoryRun
			raw []byte
		)
		if err := rows.Scan(&r.RunID, timeDest{&r.CreatedAt}, &raw); err != nil {
			return nil, fmt.Errorf("store: reading history of session %s: %w", sessionID, err)
		}
		var msgs []model.Message
		if err := decodeJSON(raw, &msgs); err != nil {
			return nil, fmt.Errorf("store: decoding history of session %s: %w", sessionID, err)
		}
		r.Messages = msgs
		runs = append(runs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reading history of session %s: %w", sessionID, err)
	}
	slices.Reverse(runs)
	return runs, nil
}

// UnfoldedSize implements session.SummaryStore: the number of completed
// top-level runs of the session after p and their estimated tokens, as
// FinishRun stored them.
func (db *DB) UnfoldedSize(ctx context.Context, sessionID string, p session.FoldPoint) (runs, tokens int, err error) {
	if err := db.st.unfoldedSize.QueryRowContext(ctx, sessionID, db.timeArg(p.CreatedAt), p.RunID).Scan(&runs, &tokens); err != nil {
		return 0, 0, fmt.Errorf("store: sizing the history of session %s: %w", sessionID, err)
	}
	return runs, tokens, nil
}

// SaveSummary implements session.SummaryStore: it stores s unless the
// session's summary already covers s.Through (saved is false then). An
// unknown session is an error wrapping ErrNotFound.
func (db *DB) SaveSummary(ctx context.Context, id string, s *Summary) (bool, error) {
	sum := *s
	sum.Summary, sum.Topics = clipSummary(sum.Summary, sum.Topics)
	sum.UpdatedAt = normTime(sum.UpdatedAt)
	sum.Through.CreatedAt = normTime(sum.Through.CreatedAt)
	data, err := jsonArg(&sum)
	if err != nil {
		return false, fmt.Errorf("store: saving the summary of session %s: %w", id, err)
	}
	saved := false
	err = db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, sqlSaveSummary, data, sum.Through.Key(), id)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if saved = n > 0; saved {
			return nil
		}
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM sessions WHERE id = $1`, id).Scan(&one); errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("store: saving the summary of session %s: %w", id, err)
	}
	return saved, nil
}

// EditSummary replaces the text and topics of session id's summary, if f
// lets the caller see it, keeping the point it covers, and returns the
// updated session (AgentOS lets a client correct a summary). It counts as an
// update of the session.
func (db *DB) EditSummary(ctx context.Context, id, summary string, topics []string, f Filter) (*Session, error) {
	summary, topics = clipSummary(summary, topics)
	var s Session
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var raw []byte
		err := tx.QueryRowContext(ctx, `SELECT summary FROM sessions WHERE id = $1 AND ($2 = '' OR user_id = $2)`, id, f.UserID).Scan(&raw)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		var cur *Summary
		if err := decodeJSON(raw, &cur); err != nil {
			return err
		}
		next := Summary{Summary: summary, Topics: topics, UpdatedAt: now()}
		if cur != nil {
			next.Through = cur.Through
		}
		data, err := jsonArg(&next)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE sessions SET summary = $1, updated_at = $2 WHERE id = $3`, data, db.timeArg(next.UpdatedAt), id); err != nil {
			return err
		}
		s, err = scanSession(tx.QueryRowContext(ctx, sqlGetSession, id, f.UserID))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: editing the summary of session %s: %w", id, err)
	}
	return &s, nil
}

// clipSummary makes a summary storable: free text cleaned for both
// dialects, within MaxSummaryBytes, and at most MaxSummaryTopics non-empty
// topics.
func clipSummary(summary string, topics []string) (string, []string) {
	summary = text(summary)
	if len(summary) > MaxSummaryBytes {
		summary = strings.ToValidUTF8(summary[:MaxSummaryBytes], "")
	}
	var out []string
	for _, t := range topics {
		if t = strings.TrimSpace(text(t)); t != "" && len(out) < MaxSummaryTopics {
			out = append(out, t)
		}
	}
	return summary, out
}
