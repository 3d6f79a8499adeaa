package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/troupehq/troupe/engine/event"
)

// RunQuery selects a page of one agent's or team's top-level runs (team
// members' runs are part of their team's run, never listed).
type RunQuery struct {
	Filter
	Type        string // SessionAgent, SessionTeam or SessionWorkflow
	ComponentID string
	// SessionID, when set, keeps the runs of that session only.
	SessionID string
	// Status, when set, keeps the runs in that status.
	Status event.Status
	Limit  int // page size: default DefaultLimit, at most MaxLimit
	Page   int // 1-based; default 1
}

// listRunColumns are runSelectColumns with NULL for messages: a run's
// messages repeat its whole context and are by far its largest part, and a
// list shows runs, not conversations (GET /sessions/{id}/runs has them).
const listRunColumns = `id, session_id, parent_run_id, component_id, type, user_id, input, content, status, error,
	tools, NULL, metrics, model, provider, spec_version, created_at, updated_at, refs, partial, trigger_name, reasoning`

// ListComponentRuns returns one page of the top-level runs q selects, newest
// first (ties broken by id, descending, so pages never overlap or skip
// rows), without their messages, and how many match in all. An unknown
// component, session or status matches nothing. Runs are found through the
// (component_id, type, created_at) index of top-level runs, or the
// (session_id, created_at) one when q names a session (migration 0014).
func (db *DB) ListComponentRuns(ctx context.Context, q RunQuery) ([]Run, int, error) {
	runs, total, err := db.listComponentRuns(ctx, q)
	if err != nil {
		return nil, 0, fmt.Errorf("store: listing runs of %s %s: %w", q.Type, q.ComponentID, err)
	}
	return runs, total, nil
}

func (db *DB) listComponentRuns(ctx context.Context, q RunQuery) ([]Run, int, error) {
	if q.Type != SessionAgent && q.Type != SessionTeam && q.Type != SessionWorkflow {
		return nil, 0, fmt.Errorf("type %q: must be %s, %s or %s: %w", q.Type, SessionAgent, SessionTeam, SessionWorkflow, ErrInvalid)
	}
	if q.ComponentID == "" {
		return nil, 0, fmt.Errorf("no component: %w", ErrInvalid)
	}
	if q.Limit <= 0 {
		q.Limit = DefaultLimit
	}
	q.Limit = min(q.Limit, MaxLimit)
	q.Page = max(q.Page, 1)
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	// parent_run_id is compared with a literal so that both dialects can
	// use the partial index. With a session, the session's index reads
	// just its runs; SQLite, without statistics, would rather take the
	// component's (two equalities against one) and read all of the
	// component's runs, so there the component's columns are written as
	// expressions (+col), which no index serves. PostgreSQL's planner
	// weighs both with its statistics.
	col := func(c string) string { return c }
	if q.SessionID != "" && db.dialect == DialectSQLite {
		col = func(c string) string { return "+" + c }
	}
	conds := []string{"parent_run_id = ''", col("component_id") + " = " + arg(q.ComponentID), col("type") + " = " + arg(q.Type)}
	if q.SessionID != "" {
		conds = append(conds, "session_id = "+arg(q.SessionID))
	}
	if q.Status != "" {
		conds = append(conds, "status = "+arg(string(q.Status)))
	}
	if q.UserID != "" {
		conds = append(conds, "user_id = "+arg(q.UserID))
	}
	where := " WHERE " + strings.Join(conds, " AND ")
	// Counted apart, like ListSessions: the page alone is read in index
	// order. The statement varies with the filters, so it is not prepared
	// up front; pgx caches it per connection by its text.
	var total int
	if err := db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM runs`+where, args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	runs := []Run{}
	if total <= (q.Page-1)*q.Limit {
		return runs, total, nil
	}
	rows, err := db.r.QueryContext(ctx, `SELECT `+listRunColumns+` FROM runs`+where+
		` ORDER BY created_at DESC, id DESC LIMIT `+arg(q.Limit)+` OFFSET `+arg((q.Page-1)*q.Limit), args...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, 0, err
		}
		runs = append(runs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	return runs, total, nil
}
