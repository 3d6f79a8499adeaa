package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/troupehq/troupe/engine/memory"
)

var _ memory.Store = (*DB)(nil)

const memoryColumns = `id, user_id, agent_id, team_id, memory, topics, input, run_id, session_id, created_at, updated_at`

// The statements of MemoriesByID: ids come as one JSON list.
const (
	sqlMemoriesByIDSQLite   = `SELECT ` + memoryColumns + ` FROM memories WHERE user_id = $1 AND id IN (SELECT value FROM json_each($2))`
	sqlMemoriesByIDPostgres = `SELECT ` + memoryColumns + ` FROM memories WHERE user_id = $1 AND id IN (SELECT json_array_elements_text($2::json))`
)

// maxMemoryPage bounds a page of memories.
const maxMemoryPage = 1000

func scanMemory(rows interface{ Scan(...any) error }) (memory.Memory, error) {
	var m memory.Memory
	var topics string
	err := rows.Scan(&m.ID, &m.UserID, &m.AgentID, &m.TeamID, &m.Memory, &topics, &m.Input, &m.RunID, &m.SessionID,
		timeDest{&m.CreatedAt}, timeDest{&m.UpdatedAt})
	m.Topics = splitList(topics)
	if m.Topics == nil {
		m.Topics = []string{}
	}
	return m, err
}

func (db *DB) queryMemories(ctx context.Context, query string, args ...any) ([]memory.Memory, error) {
	rows, err := db.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return scanMemories(rows)
}

func scanMemories(rows *sql.Rows) ([]memory.Memory, error) {
	defer rows.Close()
	out := []memory.Memory{}
	for rows.Next() {
		m, err := scanMemory(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// inList appends vs to args and returns "($n, $n+1, ...)".
func inList(args *[]any, vs []string) string {
	var b strings.Builder
	b.WriteByte('(')
	for i, v := range vs {
		if i > 0 {
			b.WriteString(", ")
		}
		*args = append(*args, v)
		b.WriteString("$" + strconv.Itoa(len(*args)))
	}
	b.WriteByte(')')
	return b.String()
}

// CreateMemory implements memory.Store.
func (db *DB) CreateMemory(ctx context.Context, m *memory.Memory) error {
	m.CreatedAt, m.UpdatedAt = normTime(m.CreatedAt), normTime(m.UpdatedAt)
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO memories (`+memoryColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			m.ID, m.UserID, m.AgentID, m.TeamID, text(m.Memory), joinList(m.Topics), text(m.Input), m.RunID, m.SessionID,
			db.timeArg(m.CreatedAt), db.timeArg(m.UpdatedAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("store: creating memory: %w", err)
	}
	return nil
}

// GetMemory implements memory.Store.
func (db *DB) GetMemory(ctx context.Context, userID, id string) (*memory.Memory, error) {
	ms, err := db.queryMemories(ctx, `SELECT `+memoryColumns+` FROM memories WHERE id = $1 AND ($2 = '' OR user_id = $2)`, id, userID)
	if err != nil {
		return nil, fmt.Errorf("store: reading memory %s: %w", id, err)
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("memory %s: %w", id, memory.ErrNotFound)
	}
	return &ms[0], nil
}

// UpdateMemory implements memory.Store.
func (db *DB) UpdateMemory(ctx context.Context, m *memory.Memory) error {
	m.UpdatedAt = normTime(m.UpdatedAt)
	var n int64
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE memories SET memory = $1, topics = $2, input = $3, agent_id = $4, team_id = $5, updated_at = $6
			WHERE id = $7 AND user_id = $8`,
			text(m.Memory), joinList(m.Topics), text(m.Input), m.AgentID, m.TeamID, db.timeArg(m.UpdatedAt), m.ID, m.UserID)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return fmt.Errorf("store: updating memory %s: %w", m.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("memory %s: %w", m.ID, memory.ErrNotFound)
	}
	return nil
}

// DeleteMemories implements memory.Store.
func (db *DB) DeleteMemories(ctx context.Context, userID string, ids []string) ([]memory.Memory, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return db.deleteMemories(ctx, func(args *[]any) string {
		*args = append(*args, userID)
		return `($1 = '' OR user_id = $1) AND id IN ` + inList(args, ids)
	})
}

// DeleteUserMemories implements memory.Store.
func (db *DB) DeleteUserMemories(ctx context.Context, userID string) ([]memory.Memory, error) {
	return db.deleteMemories(ctx, func(args *[]any) string {
		*args = append(*args, userID)
		return `user_id = $1`
	})
}

// deleteMemories reads then deletes the rows matching where, in one
// transaction, and returns what it deleted (the index removes their terms).
func (db *DB) deleteMemories(ctx context.Context, where func(args *[]any) string) ([]memory.Memory, error) {
	var args []any
	cond := where(&args)
	var out []memory.Memory
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		out = out[:0]
		rows, err := tx.QueryContext(ctx, `SELECT `+memoryColumns+` FROM memories WHERE `+cond, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			m, err := scanMemory(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, m)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM memories WHERE `+cond, args...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: deleting memories: %w", err)
	}
	return out, nil
}

// ListMemories implements memory.Store.
func (db *DB) ListMemories(ctx context.Context, q memory.Query) ([]memory.Memory, int, error) {
	if q.Limit <= 0 {
		q.Limit = 20
	}
	if q.Limit > maxMemoryPage {
		return nil, 0, fmt.Errorf("%w: limit %d is above %d", memory.ErrInvalid, q.Limit, maxMemoryPage)
	}
	if q.Page <= 0 {
		q.Page = 1
	}
	switch q.SortBy = strings.ToLower(q.SortBy); q.SortBy {
	case "":
		q.SortBy = memory.SortUpdatedAt
	case memory.SortUpdatedAt, memory.SortCreatedAt, memory.SortMemory:
	default:
		return nil, 0, fmt.Errorf("%w: sort_by %q: use updated_at, created_at or memory", memory.ErrInvalid, q.SortBy)
	}
	switch q.SortOrder = strings.ToLower(q.SortOrder); q.SortOrder {
	case "":
		q.SortOrder = "desc"
	case "asc", "desc":
	default:
		return nil, 0, fmt.Errorf("%w: sort_order %q: use asc or desc", memory.ErrInvalid, q.SortOrder)
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
		conds = append(conds, "user_id = "+arg(q.UserID))
	}
	if q.AgentID != "" {
		conds = append(conds, "agent_id = "+arg(q.AgentID))
	}
	if q.TeamID != "" {
		conds = append(conds, "team_id = "+arg(q.TeamID))
	}
	for _, t := range q.Topics {
		t = strings.ToLower(strings.TrimSpace(t))
		if t == "" {
			continue
		}
		conds = append(conds, "topics LIKE "+arg("%,"+escapeLike(t)+",%")+` ESCAPE '!'`)
	}
	if q.Search != "" {
		// SQLite's LIKE already ignores (ASCII) case; PostgreSQL needs ILIKE.
		op := "LIKE"
		if db.dialect == DialectPostgres {
			op = "ILIKE"
		}
		conds = append(conds, "memory "+op+" "+arg("%"+escapeLike(text(q.Search))+"%")+` ESCAPE '!'`)
	}
	if len(q.IDs) > 0 {
		conds = append(conds, "id IN "+inList(&args, q.IDs))
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	var total int
	if err := db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM memories`+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("store: counting memories: %w", err)
	}
	if total <= (q.Page-1)*q.Limit {
		return []memory.Memory{}, total, nil
	}
	order := fmt.Sprintf(" ORDER BY %s %s, id %s", q.SortBy, q.SortOrder, q.SortOrder)
	ms, err := db.queryMemories(ctx, `SELECT `+memoryColumns+` FROM memories`+where+order+
		` LIMIT `+arg(q.Limit)+` OFFSET `+arg((q.Page-1)*q.Limit), args...)
	if err != nil {
		return nil, 0, fmt.Errorf("store: listing memories: %w", err)
	}
	return ms, total, nil
}

// MemoryTopics implements memory.Store.
func (db *DB) MemoryTopics(ctx context.Context, userID string) ([]string, error) {
	query, args := `SELECT DISTINCT topics FROM memories WHERE topics <> ''`, []any{}
	if userID != "" {
		query += ` AND user_id = $1`
		args = append(args, userID)
	}
	rows, err := db.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: reading memory topics: %w", err)
	}
	defer rows.Close()
	seen := map[string]bool{}
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			return nil, fmt.Errorf("store: reading memory topics: %w", err)
		}
		for _, t := range splitList(l) {
			seen[t] = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reading memory topics: %w", err)
	}
	out := make([]string, 0, len(seen))
	for t := range seen {
		out = append(out, t)
	}
	slices.Sort(out)
	return out, nil
}

// MemoryStats implements memory.Store.
func (db *DB) MemoryStats(ctx context.Context, userID string, limit, page int) ([]memory.UserStats, int, error) {
	if limit <= 0 {
		limit = 20
	}
	limit = min(limit, maxMemoryPage)
	page = max(page, 1)
	where, args := "", []any{}
	if userID != "" {
		where, args = ` WHERE user_id = $1`, append(args, userID)
	}
	var total int
	if err := db.r.QueryRowContext(ctx, `SELECT COUNT(DISTINCT user_id) FROM memories`+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("store: counting memory users: %w", err)
	}
	n := len(args)
	rows, err := db.r.QueryContext(ctx, `SELECT user_id, COUNT(*), MAX(updated_at) FROM memories`+where+
		` GROUP BY user_id ORDER BY MAX(updated_at) DESC, user_id LIMIT $`+strconv.Itoa(n+1)+` OFFSET $`+strconv.Itoa(n+2),
		append(args, limit, (page-1)*limit)...)
	if err != nil {
		return nil, 0, fmt.Errorf("store: reading memory stats: %w", err)
	}
	defer rows.Close()
	out := []memory.UserStats{}
	for rows.Next() {
		var s memory.UserStats
		if err := rows.Scan(&s.UserID, &s.TotalMemories, timeDest{&s.LastMemoryUpdatedAt}); err != nil {
			return nil, 0, fmt.Errorf("store: reading memory stats: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("store: reading memory stats: %w", err)
	}
	return out, total, nil
}

// CountMemories implements memory.Store.
func (db *DB) CountMemories(ctx context.Context, userID, agentID string) (int, error) {
	query, args := `SELECT COUNT(*) FROM memories WHERE user_id = $1`, []any{userID}
	if agentID != "" {
		query += ` AND agent_id = $2`
		args = append(args, agentID)
	}
	var n int
	if err := db.r.QueryRowContext(ctx, query, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: counting memories: %w", err)
	}
	return n, nil
}

// OldestMemories implements memory.Store.
func (db *DB) OldestMemories(ctx context.Context, userID, agentID string, n int) ([]string, error) {
	query, args := `SELECT id FROM memories WHERE user_id = $1`, []any{userID}
	if agentID != "" {
		query += ` AND agent_id = $2`
		args = append(args, agentID)
	}
	query += ` ORDER BY updated_at, id LIMIT $` + strconv.Itoa(len(args)+1)
	rows, err := db.r.QueryContext(ctx, query, append(args, n)...)
	if err != nil {
		return nil, fmt.Errorf("store: reading the oldest memories: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("store: reading the oldest memories: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// MemoriesByID implements memory.Store.
func (db *DB) MemoriesByID(ctx context.Context, userID string, ids []string) ([]memory.Memory, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	// One prepared statement whatever the number of ids (a JSON list): a
	// run's recall reads on the hot path, and parsing a new IN list each
	// time cost more than the read.
	list, err := jsonArg(ids)
	if err != nil {
		return nil, fmt.Errorf("store: reading memories: %w", err)
	}
	rows, err := db.st.memoriesByID.QueryContext(ctx, userID, list)
	if err != nil {
		return nil, fmt.Errorf("store: reading memories: %w", err)
	}
	ms, err := scanMemories(rows)
	if err != nil {
		return nil, fmt.Errorf("store: reading memories: %w", err)
	}
	return ms, nil
}

// AllMemories implements memory.Store: pages in id order, each read
// entirely before fn sees it.
func (db *DB) AllMemories(ctx context.Context, fn func(memory.Memory) error) error {
	const page = 500
	after := ""
	for {
		ms, err := db.queryMemories(ctx, `SELECT `+memoryColumns+` FROM memories WHERE id > $1 ORDER BY id LIMIT $2`, after, page)
		if err != nil {
			return fmt.Errorf("store: reading memories: %w", err)
		}
		for _, m := range ms {
			if err := fn(m); err != nil {
				return err
			}
		}
		if len(ms) < page {
			return nil
		}
		after = ms[len(ms)-1].ID
	}
}

// MemoryIndexState implements memory.Store.
func (db *DB) MemoryIndexState(ctx context.Context) (memory.IndexState, error) {
	var s memory.IndexState
	var last time.Time
	err := db.r.QueryRowContext(ctx, `SELECT COUNT(*), MAX(updated_at) FROM memories`).Scan(&s.Count, timeDest{&last})
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return s, fmt.Errorf("store: reading the state of memories: %w", err)
	}
	s.LastUpdatedAt = last
	return s, nil
}
