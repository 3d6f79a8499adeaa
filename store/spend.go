package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	modelpkg "github.com/troupehq/troupe/engine/model"
)

// SpendLine is what one component (agent, team or workflow) or one user
// spent in a window: its top-level runs, their tokens and cost.
type SpendLine struct {
	// Type is the component's type (SessionAgent, SessionTeam or
	// "workflow"); empty on a user's line.
	Type string
	// Name is the component's id, or the user id ("" for runs without one).
	Name   string
	Runs   int
	Tokens int64
	Cost   modelpkg.Cost
	// CostUnknown is set when some run called a model that has no price, so
	// Cost is less than what was spent.
	CostUnknown bool
}

// SpendDay is one UTC day's cost.
type SpendDay struct {
	Date string // YYYY-MM-DD, UTC
	Runs int
	Cost modelpkg.Cost
}

// Spend is what the top-level runs created in a window cost, in total, by
// component, by user and by UTC day. Team members' runs are part of their
// team's run (whose cost includes theirs), and a workflow's steps part of
// the workflow's, so they are not counted again.
type Spend struct {
	Total SpendLine
	// Components and Users are ordered by cost, then runs, most first.
	Components []SpendLine
	Users      []SpendLine
	// Days are the days with runs, oldest first.
	Days []SpendDay
}

// sqlSpend groups the ended or paused top-level runs created in [$1, $2) by day,
// component and user in one pass, from runs_finished_spend alone; Spend folds the groups into its three views, whose
// sizes are bounded by components × users × days, not by runs.
func sqlSpend(day, from, userCond string) string {
	return `SELECT ` + day + ` AS day, type, component_id, user_id, COUNT(*),
		CAST(SUM(tokens) AS BIGINT), CAST(SUM(cost) AS BIGINT), MAX(CASE WHEN cost_unknown THEN 1 ELSE 0 END)
	FROM ` + from + `
	WHERE parent_run_id = '' AND status NOT IN ('PENDING', 'RUNNING') AND created_at >= $1 AND created_at < $2` + userCond + `
	GROUP BY 1, type, component_id, user_id`
}

var (
	// SQLite's planner, without statistics, would rather read the rows
	// through runs_finished_created_at (see migration 0021).
	sqlSpendSQLite       = sqlSpend(sqliteDay, "runs INDEXED BY runs_finished_spend", "")
	sqlSpendSQLiteUser   = sqlSpend(sqliteDay, "runs INDEXED BY runs_finished_spend", " AND user_id = $3")
	sqlSpendPostgres     = sqlSpend(postgresDay, "runs", "")
	sqlSpendPostgresUser = sqlSpend(postgresDay, "runs", " AND user_id = $3")
)

// Spend sums what the top-level runs created in [from, to) cost once they
// ended, whatever the outcome (a failed run's calls were paid for too), or
// paused; a pending or running run has no cost yet. With f.UserID set, only that user's runs.
//
// It reads the index of migration 0021 only, never the runs' rows: 100,000
// runs take tens of milliseconds (BenchmarkSpend).
func (db *DB) Spend(ctx context.Context, from, to time.Time, f Filter) (*Spend, error) {
	if to.After(maxStoredTime) {
		to = maxStoredTime
	}
	out := &Spend{Components: []SpendLine{}, Users: []SpendLine{}, Days: []SpendDay{}}
	if !from.Before(to) {
		return out, nil
	}
	query, args := sqlSpendSQLite, []any{db.timeArg(from), db.timeArg(to)}
	if db.dialect == DialectPostgres {
		query = sqlSpendPostgres
	}
	if f.UserID != "" {
		query = sqlSpendSQLiteUser
		if db.dialect == DialectPostgres {
			query = sqlSpendPostgresUser
		}
		args = append(args, f.UserID)
	}
	rows, err := db.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: reading spend: %w", err)
	}
	defer rows.Close()
	type compKey struct{ typ, name string }
	comps, users, days := map[compKey]*SpendLine{}, map[string]*SpendLine{}, map[string]*SpendDay{}
	for rows.Next() {
		var (
			day, typ, comp, user string
			runs, tokens, cost   int64
			unknown              int
		)
		if err := rows.Scan(&day, &typ, &comp, &user, &runs, &tokens, &cost, &unknown); err != nil {
			return nil, fmt.Errorf("store: reading spend: %w", err)
		}
		add := func(l *SpendLine) {
			l.Runs += int(runs)
			l.Tokens += tokens
			l.Cost += modelpkg.Cost(cost)
			l.CostUnknown = l.CostUnknown || unknown != 0
		}
		add(&out.Total)
		c := comps[compKey{typ, comp}]
		if c == nil {
			c = &SpendLine{Type: typ, Name: comp}
			comps[compKey{typ, comp}] = c
		}
		add(c)
		u := users[user]
		if u == nil {
			u = &SpendLine{Name: user}
			users[user] = u
		}
		add(u)
		d := days[day]
		if d == nil {
			d = &SpendDay{Date: day}
			days[day] = d
		}
		d.Runs += int(runs)
		d.Cost += modelpkg.Cost(cost)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reading spend: %w", err)
	}
	byCost := func(a, b SpendLine) int {
		return cmp.Or(cmp.Compare(b.Cost, a.Cost), cmp.Compare(b.Runs, a.Runs), cmp.Compare(a.Type, b.Type), cmp.Compare(a.Name, b.Name))
	}
	for _, c := range comps {
		out.Components = append(out.Components, *c)
	}
	for _, u := range users {
		out.Users = append(out.Users, *u)
	}
	for _, d := range days {
		out.Days = append(out.Days, *d)
	}
	slices.SortFunc(out.Components, byCost)
	slices.SortFunc(out.Users, byCost)
	slices.SortFunc(out.Days, func(a, b SpendDay) int { return cmp.Compare(a.Date, b.Date) })
	return out, nil
}

// sqlSpendTotal is sqlSpend without its groups, for the overview's card of
// today's cost: a sum over the index entries, with no sort.
func sqlSpendTotal(from, userCond string) string {
	return `SELECT COUNT(*), CAST(COALESCE(SUM(tokens), 0) AS BIGINT), CAST(COALESCE(SUM(cost), 0) AS BIGINT),
		COALESCE(MAX(CASE WHEN cost_unknown THEN 1 ELSE 0 END), 0)
	FROM ` + from + `
	WHERE parent_run_id = '' AND status NOT IN ('PENDING', 'RUNNING') AND created_at >= $1 AND created_at < $2` + userCond
}

var (
	sqlSpendTotalSQLite       = sqlSpendTotal("runs INDEXED BY runs_finished_spend", "")
	sqlSpendTotalSQLiteUser   = sqlSpendTotal("runs INDEXED BY runs_finished_spend", " AND user_id = $3")
	sqlSpendTotalPostgres     = sqlSpendTotal("runs", "")
	sqlSpendTotalPostgresUser = sqlSpendTotal("runs", " AND user_id = $3")
)

// SpendTotal is Spend's Total alone, cheaper: it sums without grouping.
func (db *DB) SpendTotal(ctx context.Context, from, to time.Time, f Filter) (SpendLine, error) {
	if to.After(maxStoredTime) {
		to = maxStoredTime
	}
	var out SpendLine
	if !from.Before(to) {
		return out, nil
	}
	query, args := sqlSpendTotalSQLite, []any{db.timeArg(from), db.timeArg(to)}
	switch {
	case db.dialect == DialectPostgres && f.UserID != "":
		query = sqlSpendTotalPostgresUser
	case db.dialect == DialectPostgres:
		query = sqlSpendTotalPostgres
	case f.UserID != "":
		query = sqlSpendTotalSQLiteUser
	}
	if f.UserID != "" {
		args = append(args, f.UserID)
	}
	var tokens, cost int64
	var unknown int
	if err := db.r.QueryRowContext(ctx, query, args...).Scan(&out.Runs, &tokens, &cost, &unknown); err != nil {
		return SpendLine{}, fmt.Errorf("store: reading spend: %w", err)
	}
	out.Tokens, out.Cost, out.CostUnknown = tokens, modelpkg.Cost(cost), unknown != 0
	return out, nil
}
