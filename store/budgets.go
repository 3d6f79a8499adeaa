package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/troupehq/troupe/engine/budget"
	"github.com/troupehq/troupe/engine/model"
)

var _ budget.Store = (*DB)(nil)

// sqlAddBudgetUsage adds to one counter and returns its totals in a single
// statement, atomic on both dialects (SQLite ≥ 3.35 and PostgreSQL both
// have ON CONFLICT … RETURNING), so concurrent runs on any replicas never
// lose an increment and each sees the totals its own increment produced.
const sqlAddBudgetUsage = `INSERT INTO budget_usage (budget, scope, win, cost, tokens, tool_calls, wall_time_ns, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (budget, scope, win) DO UPDATE SET
    cost = budget_usage.cost + excluded.cost,
    tokens = budget_usage.tokens + excluded.tokens,
    tool_calls = budget_usage.tool_calls + excluded.tool_calls,
    wall_time_ns = budget_usage.wall_time_ns + excluded.wall_time_ns,
    updated_at = excluded.updated_at
RETURNING cost, tokens, tool_calls, wall_time_ns`

// AddBudgetUsage implements budget.Store: it adds d to each key's counter and
// returns the new totals, all in one transaction.
func (db *DB) AddBudgetUsage(ctx context.Context, keys []budget.Key, d budget.Usage) ([]budget.Usage, error) {
	out := make([]budget.Usage, len(keys))
	// Through the write path: on SQLite, concurrent runs' increments share
	// a group commit.
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		at := db.timeArg(now())
		for i, k := range keys {
			row := tx.QueryRowContext(ctx, sqlAddBudgetUsage, k.Budget, k.Scope, k.Window, int64(d.Cost), d.Tokens, d.ToolCalls, int64(d.WallTime), at)
			if err := scanBudgetUsage(row, &out[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: adding budget usage: %w", err)
	}
	return out, nil
}

// BudgetUsage implements budget.Store: the totals of each key, zero for keys
// never used.
func (db *DB) BudgetUsage(ctx context.Context, keys []budget.Key) ([]budget.Usage, error) {
	out := make([]budget.Usage, len(keys))
	for i, k := range keys {
		row := db.r.QueryRowContext(ctx, `SELECT cost, tokens, tool_calls, wall_time_ns FROM budget_usage WHERE budget = $1 AND scope = $2 AND win = $3`, k.Budget, k.Scope, k.Window)
		if err := scanBudgetUsage(row, &out[i]); err != nil && err != sql.ErrNoRows {
			return nil, fmt.Errorf("store: reading budget %s: %w", k, err)
		}
	}
	return out, nil
}

func scanBudgetUsage(row *sql.Row, u *budget.Usage) error {
	var cost, wall int64
	if err := row.Scan(&cost, &u.Tokens, &u.ToolCalls, &wall); err != nil {
		return err
	}
	u.Cost, u.WallTime = model.Cost(cost), time.Duration(wall)
	return nil
}

// BudgetCounter is one counter of a budget, for listings.
type BudgetCounter struct {
	Key   budget.Key
	Usage budget.Usage
}

// BudgetCounters lists the counters of budget name in window (all windows
// when window is "*"), restricted to scope when it is not empty, ordered by
// scope; at most limit rows.
func (db *DB) BudgetCounters(ctx context.Context, name, window, scope string, limit int) ([]BudgetCounter, error) {
	q := `SELECT scope, win, cost, tokens, tool_calls, wall_time_ns FROM budget_usage WHERE budget = $1 AND ($2 = '*' OR win = $2) AND ($3 = '' OR scope = $3) ORDER BY scope, win LIMIT $4`
	rows, err := db.r.QueryContext(ctx, q, name, window, scope, limit)
	if err != nil {
		return nil, fmt.Errorf("store: listing budget %s: %w", name, err)
	}
	defer rows.Close()
	var out []BudgetCounter
	for rows.Next() {
		c := BudgetCounter{Key: budget.Key{Budget: name}}
		var cost, wall int64
		if err := rows.Scan(&c.Key.Scope, &c.Key.Window, &cost, &c.Usage.Tokens, &c.Usage.ToolCalls, &wall); err != nil {
			return nil, fmt.Errorf("store: listing budget %s: %w", name, err)
		}
		c.Usage.Cost, c.Usage.WallTime = model.Cost(cost), time.Duration(wall)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: listing budget %s: %w", name, err)
	}
	return out, nil
}

// AddRunUsage adds the tokens and cost of background model work done for a
// finished run (its session's summary, memories, learnings) to the run's
// spend columns, so session totals and the Spend page count what the run
// caused, not only its own calls. The run's metrics keep its own calls.
func (db *DB) AddRunUsage(ctx context.Context, runID string, tokens int64, cost model.Cost, costUnknown bool) error {
	if err := db.exec(ctx, `UPDATE runs SET tokens = tokens + $1, cost = cost + $2, cost_unknown = (cost_unknown OR $3) WHERE id = $4`,
		tokens, int64(cost), costUnknown, runID); err != nil {
		return fmt.Errorf("store: adding background usage to run %s: %w", runID, err)
	}
	return nil
}
