package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	modelpkg "github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/session"
)

// Session types, as the run service names them.
const (
	SessionAgent = session.TypeAgent
	SessionTeam  = session.TypeTeam
	// SessionWorkflow is a workflow's session and its top-level runs.
	SessionWorkflow = session.TypeWorkflow
)

// Session is the run service's record of a conversation with one agent or
// team (see session.Session).
type Session = session.Session

// Filter restricts reads and changes to one user's rows (see session.Filter).
type Filter = session.Filter

// SessionQuery selects a page of sessions.
type SessionQuery struct {
	Filter
	Type        string // SessionAgent or SessionTeam; empty for both
	ComponentID string
	Search      string // case-insensitive substring of the name (ASCII case only on SQLite)
	Limit       int    // page size: default DefaultLimit, at most MaxLimit
	Page        int    // 1-based; default 1
	// SortBy is "created_at", "updated_at" (default) or "name"; names sort in
	// the database's collation (byte order on SQLite). Ties sort by id.
	SortBy    string
	SortOrder string // "asc" or "desc" (default)
}

// Paging bounds of SessionQuery.
const (
	DefaultLimit = 20
	MaxLimit     = 100
)

// Normalize returns q with defaults applied and Limit and Page clamped to
// their bounds: the page ListSessions actually returns. It reports unknown
// SortBy and SortOrder values as errors wrapping ErrInvalid.
func (q SessionQuery) Normalize() (SessionQuery, error) {
	if q.Limit <= 0 {
		q.Limit = DefaultLimit
	}
	q.Limit = min(q.Limit, MaxLimit)
	q.Page = max(q.Page, 1)
	q.SortBy = strings.ToLower(q.SortBy)
	switch q.SortBy {
	case "":
		q.SortBy = "updated_at"
	case "created_at", "updated_at", "name":
	default:
		return q, fmt.Errorf("sort by %q: must be created_at, updated_at or name: %w", q.SortBy, ErrInvalid)
	}
	q.SortOrder = strings.ToLower(q.SortOrder)
	switch q.SortOrder {
	case "":
		q.SortOrder = "desc"
	case "asc", "desc":
	default:
		return q, fmt.Errorf("sort order %q: must be asc or desc: %w", q.SortOrder, ErrInvalid)
	}
	return q, nil
}

// maxNameLen is the length, in characters, of a derived session name.
const maxNameLen = 80

// SessionName derives a session's name from its first input: the first
// non-blank line, trimmed, cut to 80 characters with a trailing "…".
func SessionName(input string) string {
	input = strings.TrimLeftFunc(text(input), unicode.IsSpace)
	line, _, _ := strings.Cut(input, "\n")
	line = strings.TrimSpace(line)
	if utf8.RuneCountInString(line) <= maxNameLen {
		return line
	}
	cut, n := 0, 0
	for i := range line {
		if n == maxNameLen-1 {
			cut = i
			break
		}
		n++
	}
	return strings.TrimRightFunc(line[:cut], unicode.IsSpace) + "…"
}

const sessionColumns = `s.id, s.type, s.component_id, s.user_id, s.name, s.state, s.created_at, s.updated_at, s.summary`

const (
	// The run count is a correlated subquery over the (session_id, created_at)
	// index: cheap per session, and only computed for the rows returned.
	sqlGetSession = `SELECT ` + sessionColumns + `, (SELECT COUNT(*) FROM runs r WHERE r.session_id = s.id), ` + sqlSessionCostS + `
		FROM sessions s WHERE s.id = $1 AND ($2 = '' OR s.user_id = $2)`
	sqlRenameSession = `UPDATE sessions SET name = $1, updated_at = $2 WHERE id = $3 AND ($4 = '' OR user_id = $4)`
)

// sqlSessionCost is the cost of session s's (or p's) runs: its top-level
// runs', which include their members' and steps'.
const (
	sqlSessionCostS = `(SELECT CAST(COALESCE(SUM(r.cost), 0) AS BIGINT) FROM runs r WHERE r.session_id = s.id AND r.parent_run_id = '')`
	sqlSessionCostP = `(SELECT CAST(COALESCE(SUM(r.cost), 0) AS BIGINT) FROM runs r WHERE r.session_id = p.id AND r.parent_run_id = '')`
)

func scanSession(sc scanner, extra ...any) (Session, error) {
	var (
		s       Session
		state   []byte
		summary []byte
		cost    int64
	)
	dest := append([]any{&s.ID, &s.Type, &s.ComponentID, &s.UserID, &s.Name, &state,
		timeDest{&s.CreatedAt}, timeDest{&s.UpdatedAt}, &summary, &s.RunCount, &cost}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return Session{}, err
	}
	s.Cost = modelpkg.Cost(cost)
	if err := decodeJSON(state, &s.State); err != nil {
		return Session{}, fmt.Errorf("decoding state of session %s: %w", s.ID, err)
	}
	if err := decodeJSON(summary, &s.Summary); err != nil {
		return Session{}, fmt.Errorf("decoding summary of session %s: %w", s.ID, err)
	}
	return s, nil
}

// GetSession returns session id if f lets the caller see it.
func (db *DB) GetSession(ctx context.Context, id string, f Filter) (*Session, error) {
	s, err := scanSession(db.st.getSession.QueryRowContext(ctx, id, f.UserID))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: getting session %s: %w", id, err)
	}
	return &s, nil
}

// ListSessions returns one page of the sessions matching q (see
// SessionQuery.Normalize for defaults) and how many match in all. Ties in the
// sort field are broken by id, so pages never overlap or skip rows.
func (db *DB) ListSessions(ctx context.Context, q SessionQuery) ([]Session, int, error) {
	sessions, total, err := db.listSessions(ctx, q)
	if err != nil {
		return nil, 0, fmt.Errorf("store: listing sessions: %w", err)
	}
	return sessions, total, nil
}

func (db *DB) listSessions(ctx context.Context, q SessionQuery) ([]Session, int, error) {
	q, err := q.Normalize()
	if err != nil {
		return nil, 0, err
	}
	var (
		args  []any
		conds []string
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.UserID != "" {
		conds = append(conds, "s.user_id = "+arg(q.UserID))
	}
	if q.Type != "" {
		conds = append(conds, "s.type = "+arg(q.Type))
	}
	if q.ComponentID != "" {
		conds = append(conds, "s.component_id = "+arg(q.ComponentID))
	}
	if q.Search != "" {
		// SQLite's LIKE already ignores (ASCII) case; PostgreSQL needs ILIKE.
		op := "LIKE"
		if db.dialect == DialectPostgres {
			op = "ILIKE"
		}
		conds = append(conds, "s.name "+op+" "+arg("%"+escapeLike(text(q.Search))+"%")+` ESCAPE '!'`)
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	order := func(t string) string {
		return fmt.Sprintf("%s.%s %s, %s.id %s", t, q.SortBy, q.SortOrder, t, q.SortOrder)
	}
	// The statement varies with the filters, so it is not prepared up front;
	// pgx caches it per connection by its text, and the variants are few.
	//
	// The total is counted apart: a window function over the page query
	// would read and sort every matching session (tens of milliseconds at
	// 10,000 sessions), while the page alone is read in index order. Under
	// concurrent writes the two may differ by the sessions written between
	// them. The inner query picks the page; the outer one adds run counts
	// for just its rows. The outer ORDER BY is needed because SQL does not
	// promise a subquery's order survives.
	var total int
	if err := db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM sessions s`+where, args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	sessions := []Session{}
	if total <= (q.Page-1)*q.Limit {
		return sessions, total, nil
	}
	query := `SELECT p.id, p.type, p.component_id, p.user_id, p.name, p.state, p.created_at, p.updated_at, p.summary,
		(SELECT COUNT(*) FROM runs r WHERE r.session_id = p.id), ` + sqlSessionCostP + `
		FROM (SELECT ` + sessionColumns + ` FROM sessions s` + where +
		` ORDER BY ` + order("s") + ` LIMIT ` + arg(q.Limit) + ` OFFSET ` + arg((q.Page-1)*q.Limit) + `) p
		ORDER BY ` + order("p")

	rows, err := db.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return nil, 0, err
		}
		sessions = append(sessions, s)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	return sessions, total, nil
}

// escapeLike makes s match literally inside a LIKE pattern with ESCAPE '!'.
// The escape character is not a backslash because '\' is not a complete
// string literal on PostgreSQL servers running without
// standard_conforming_strings.
func escapeLike(s string) string {
	if !strings.ContainsAny(s, `!%_`) {
		return s
	}
	return strings.NewReplacer(`!`, `!!`, `%`, `!%`, `_`, `!_`).Replace(s)
}

// RenameSession sets the name of session id, if f lets the caller see it, and
// returns the updated session. Renaming counts as an update (updated_at moves).
func (db *DB) RenameSession(ctx context.Context, id, name string, f Filter) (*Session, error) {
	name = strings.TrimSpace(text(name))
	if name == "" {
		return nil, fmt.Errorf("store: renaming session %s: empty name: %w", id, ErrInvalid)
	}
	var s Session
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, sqlRenameSession, name, db.timeArg(now()), id, f.UserID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		// Read back in the same transaction: the caller gets exactly the row
		// it wrote, run count included.
		s, err = scanSession(tx.QueryRowContext(ctx, sqlGetSession, id, f.UserID))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: renaming session %s: %w", id, err)
	}
	return &s, nil
}

// idBatch bounds the ids of one "IN (…)" list, well under SQLite's and
// PostgreSQL's limits on bound parameters.
const idBatch = 500

// DeleteSessions deletes the sessions among ids that f lets the caller see,
// with their runs, and returns the ids it deleted (sorted, each once).
// Unknown and hidden ids are skipped, not errors.
func (db *DB) DeleteSessions(ctx context.Context, ids []string, f Filter) ([]string, error) {
	// Sorted and unique: each id counts once, and concurrent deletes on
	// PostgreSQL lock rows in the same order instead of deadlocking.
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	if len(ids) == 0 {
		return nil, nil
	}
	var keys []string
	if db.blobs != nil {
		var err error
		if keys, err = db.SessionFileKeys(ctx, ids, f); err != nil {
			return nil, fmt.Errorf("store: deleting sessions: %w", err)
		}
	}
	var deleted []string
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		deleted = deleted[:0] // this may be a second run (see writeFunc)
		for batch := range slices.Chunk(ids, idBatch) {
			var b strings.Builder
			args := make([]any, 0, len(batch)+1)
			b.WriteString("DELETE FROM sessions WHERE id IN (")
			for i, id := range batch {
				if i > 0 {
					b.WriteString(", ")
				}
				args = append(args, id)
				b.WriteString("$" + strconv.Itoa(len(args)))
			}
			b.WriteString(")")
			if f.UserID != "" {
				args = append(args, f.UserID)
				b.WriteString(" AND user_id = $" + strconv.Itoa(len(args)))
			}
			// Runs go with their session through ON DELETE CASCADE.
			b.WriteString(" RETURNING id")
			got, err := queryIDs(ctx, tx, b.String(), args...)
			if err != nil {
				return err
			}
			deleted = append(deleted, got...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: deleting sessions: %w", err)
	}
	slices.Sort(deleted)
	// The rows are gone: their bytes go now. A failure leaves an orphan
	// file no row names (logged), never a row without its file.
	for _, k := range keys {
		if err := db.blobs.Delete(ctx, k); err != nil {
			db.log.Warn("deleting a deleted session's file", "key", k, "err", err)
		}
	}
	return deleted, nil
}
