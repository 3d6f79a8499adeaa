package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSQLiteOverviewPlans guards the speed of the overview's reads on SQLite,
// which no result would reveal: they walk the indexes of migration 0004
// without sorting, and RunActivity finds everything it reads of finished
// runs, latencies included, in the index, never opening the runs table whose
// rows are large; the running ones come from the index of running runs.
func TestSQLiteOverviewPlans(t *testing.T) {
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "troupe.db"), Options{})
	require.NoError(t, err)
	defer db.Close()
	ctx := t.Context()

	var runsRoot int
	require.NoError(t, db.r.QueryRowContext(ctx, `SELECT rootpage FROM sqlite_schema WHERE type = 'table' AND name = 'runs'`).Scan(&runsRoot))

	tests := []struct {
		name, query, index string
		args               []any
		covering           bool
		// sort is the sorting the plan may do: none, the id tie-break only,
		// or all of the (few) running runs.
		sort string
	}{
		{"RecentRuns, finished", sqlRecentFinishedRuns, "runs_finished_created_at", []any{"", 10}, false, "USE TEMP B-TREE FOR LAST TERM OF ORDER BY"},
		{"RecentRuns, running", sqlRecentRunningRuns, "runs_status_running", []any{"", 10}, false, "USE TEMP B-TREE FOR ORDER BY"},
		{"RunActivity", sqlRunActivitySQLiteAll, "runs_finished_created_at", []any{[]byte{}, 1}, true, ""},
		{"RunActivity of a user", sqlRunActivitySQLiteUser, "runs_finished_created_at", []any{[]byte{}, 1, "u"}, true, ""},
		{"running runs", sqlRunningRuns, "runs_status_running", []any{"a", "b", ""}, false, ""},
		// The Spend page's groups need a sort; the overview's total none.
		{"Spend", sqlSpendSQLite, "runs_finished_spend", []any{"a", "b"}, true, "USE TEMP B-TREE FOR GROUP BY"},
		{"Spend of a user", sqlSpendSQLiteUser, "runs_finished_spend", []any{"a", "b", "u"}, true, "USE TEMP B-TREE FOR GROUP BY"},
		{"SpendTotal", sqlSpendTotalSQLite, "runs_finished_spend", []any{"a", "b"}, true, ""},
		{"SpendTotal of a user", sqlSpendTotalSQLiteUser, "runs_finished_spend", []any{"a", "b", "u"}, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			all := queryPlan(t, db, tc.query, tc.args...)
			if tc.covering {
				require.Contains(t, all, "USING COVERING INDEX "+tc.index)
			} else {
				require.Contains(t, all, "USING INDEX "+tc.index)
			}
			if tc.sort != "" {
				require.Contains(t, all, tc.sort)
				all = strings.ReplaceAll(all, tc.sort, "")
			}
			require.NotContains(t, all, "TEMP B-TREE")

			// The plan's word, checked against the program: a covering
			// statement never opens a cursor on the table itself.
			rows, err := db.r.QueryContext(ctx, "EXPLAIN "+tc.query, tc.args...)
			require.NoError(t, err)
			defer rows.Close()
			opensTable := false
			for rows.Next() {
				var (
					addr, p1, p2, p3 int
					opcode, p5       string
					p4, comment      any
				)
				require.NoError(t, rows.Scan(&addr, &opcode, &p1, &p2, &p3, &p4, &p5, &comment))
				if opcode == "OpenRead" && p2 == runsRoot {
					opensTable = true
				}
				if s, ok := p4.(string); ok && opcode == "Function" {
					require.NotContains(t, s, "unixepoch", "latency computed per row")
				}
			}
			require.NoError(t, rows.Err())
			require.Equal(t, !tc.covering, opensTable, "opens the runs table")
		})
	}
}

// queryPlan returns SQLite's EXPLAIN QUERY PLAN of query, one step a line.
func queryPlan(t *testing.T, db *DB, query string, args ...any) string {
	t.Helper()
	var plan []string
	rows, err := db.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, args...)
	require.NoError(t, err)
	for rows.Next() {
		var id, parent, unused int
		var detail string
		require.NoError(t, rows.Scan(&id, &parent, &unused, &detail))
		plan = append(plan, detail)
	}
	require.NoError(t, rows.Err())
	require.NoError(t, rows.Close())
	return strings.Join(plan, "\n")
}
