package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	modelpkg "github.com/troupehq/troupe/engine/model"
)

// DailyMetrics aggregates one UTC day of runs, for GET /metrics. Only the runs
// users started count: the runs of team members are part of their team's run
// (whose metrics already include their tokens).
type DailyMetrics struct {
	Date      string // YYYY-MM-DD, UTC
	AgentRuns int
	TeamRuns  int
	// Sessions and Users are the distinct sessions and (non-empty) user ids
	// with runs that day.
	Sessions     int
	Users        int
	InputTokens  int
	OutputTokens int
	TotalTokens  int
	// Cost is what the day's runs cost (team runs include their members').
	Cost modelpkg.Cost
	// Models are the day's runs by model and provider, most runs first; runs
	// that recorded no model are left out.
	Models []ModelMetrics
}

// ModelMetrics aggregates one day's runs of one model.
type ModelMetrics struct {
	Model        string
	Provider     string
	Runs         int
	InputTokens  int
	OutputTokens int
	Cost         modelpkg.Cost
}

// The day and token expressions of each dialect. SQLite keeps timestamps as
// fixed-width UTC text and JSON as text; PostgreSQL has timestamptz and json
// columns.
const (
	sqliteDay          = `substr(created_at, 1, 10)`
	sqliteInputTokens  = `json_extract(metrics, '$.input_tokens')`
	sqliteOutputTokens = `json_extract(metrics, '$.output_tokens')`
	sqliteTotalTokens  = `json_extract(metrics, '$.total_tokens')`

	postgresDay          = `to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')`
	postgresInputTokens  = `(metrics->>'input_tokens')::bigint`
	postgresOutputTokens = `(metrics->>'output_tokens')::bigint`
	postgresTotalTokens  = `(metrics->>'total_tokens')::bigint`
)

// sqlDailyMetrics returns, in one statement (so both halves see the same
// runs), two kinds of rows for the top-level runs created in [$1, $2):
// grp 0 rows aggregate a day's runs by type, model and provider; grp 1 rows
// count a day's distinct sessions and users, which cannot be summed from the
// first kind. PostgreSQL sums bigints to numeric, hence the casts.
func sqlDailyMetrics(day, in, out, total string) string {
	return `WITH r AS (
		SELECT ` + day + ` AS day, type, model, provider, session_id, user_id,
			COALESCE(` + in + `, 0) AS input_tokens,
			COALESCE(` + out + `, 0) AS output_tokens,
			COALESCE(` + total + `, 0) AS total_tokens, cost
		FROM runs
		WHERE parent_run_id = '' AND created_at >= $1 AND created_at < $2
	)
	SELECT 0 AS grp, day, type, model, provider, COUNT(*) AS n,
		CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT), CAST(SUM(total_tokens) AS BIGINT),
		CAST(SUM(cost) AS BIGINT), 0 AS sessions, 0 AS users
	FROM r GROUP BY day, type, model, provider
	UNION ALL
	SELECT 1, day, '', '', '', 0, 0, 0, 0, 0,
		COUNT(DISTINCT session_id), COUNT(DISTINCT CASE WHEN user_id <> '' THEN user_id END)
	FROM r GROUP BY day`
}

var (
	sqlDailyMetricsSQLite   = sqlDailyMetrics(sqliteDay, sqliteInputTokens, sqliteOutputTokens, sqliteTotalTokens)
	sqlDailyMetricsPostgres = sqlDailyMetrics(postgresDay, postgresInputTokens, postgresOutputTokens, postgresTotalTokens)
)

// DailyMetrics aggregates the runs created on the UTC days from from's through
// to's, both included, by day, oldest first; days without runs are left out.
// Runs of every status count, team members' runs do not (see DailyMetrics).
// It returns an empty slice when to is before from.
//
// It reads the runs table through: no index covers the runs of a range
// whatever their status (the one of migration 0004 holds finished runs
// only), and each run is read whole for its tokens and model. This suits an
// occasional dashboard query, not a hot path; an index on created_at would
// cost every run a write for it.
func (db *DB) DailyMetrics(ctx context.Context, from, to time.Time) ([]DailyMetrics, error) {
	start, end := utcDay(from), utcDay(to).AddDate(0, 0, 1)
	// The day after 9999-12-31 has a five-digit year, which SQLite's text
	// timestamps order before every other: end at the last stored instant.
	if end.After(maxStoredTime) {
		end = maxStoredTime
	}
	out := []DailyMetrics{}
	if !start.Before(end) {
		return out, nil
	}
	query := sqlDailyMetricsSQLite
	if db.dialect == DialectPostgres {
		query = sqlDailyMetricsPostgres
	}
	rows, err := db.r.QueryContext(ctx, query, db.timeArg(start), db.timeArg(end))
	if err != nil {
		return nil, fmt.Errorf("store: reading daily metrics: %w", err)
	}
	defer rows.Close()
	days := map[string]*DailyMetrics{}
	for rows.Next() {
		var (
			grp                           int
			day, typ, model, provider     string
			runs, in, outTok, total, s, u int64
			cost                          int64
		)
		if err := rows.Scan(&grp, &day, &typ, &model, &provider, &runs, &in, &outTok, &total, &cost, &s, &u); err != nil {
			return nil, fmt.Errorf("store: reading daily metrics: %w", err)
		}
		d := days[day]
		if d == nil {
			d = &DailyMetrics{Date: day, Models: []ModelMetrics{}}
			days[day] = d
		}
		if grp == 1 {
			d.Sessions, d.Users = int(s), int(u)
			continue
		}
		switch typ {
		case SessionTeam:
			d.TeamRuns += int(runs)
		default:
			d.AgentRuns += int(runs)
		}
		d.InputTokens += int(in)
		d.OutputTokens += int(outTok)
		d.TotalTokens += int(total)
		d.Cost += modelpkg.Cost(cost)
		if model == "" {
			continue
		}
		i := slices.IndexFunc(d.Models, func(m ModelMetrics) bool { return m.Model == model && m.Provider == provider })
		if i < 0 {
			d.Models = append(d.Models, ModelMetrics{Model: model, Provider: provider})
			i = len(d.Models) - 1
		}
		m := &d.Models[i]
		m.Runs += int(runs)
		m.InputTokens += int(in)
		m.OutputTokens += int(outTok)
		m.Cost += modelpkg.Cost(cost)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reading daily metrics: %w", err)
	}
	for _, d := range days {
		slices.SortFunc(d.Models, func(a, b ModelMetrics) int {
			return cmp.Or(cmp.Compare(b.Runs, a.Runs), cmp.Compare(a.Model, b.Model), cmp.Compare(a.Provider, b.Provider))
		})
		out = append(out, *d)
	}
	slices.SortFunc(out, func(a, b DailyMetrics) int { return cmp.Compare(a.Date, b.Date) })
	return out, nil
}

// utcDay returns the start of t's day in UTC.
func utcDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
