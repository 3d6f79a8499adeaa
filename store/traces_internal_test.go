package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/telemetry"
)

// TestSQLiteTraceListPlans guards the speed of trace lists on SQLite, which
// no result would reveal: every filter the API and the console use finds its
// page through an index of migration 0007 without sorting (the partial
// indexes too, which the planner only picks because traceFilter spells out
// that the column is not empty), and counts never open the table, whose rows
// hold whole traces.
func TestSQLiteTraceListPlans(t *testing.T) {
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "troupe.db"), Options{})
	require.NoError(t, err)
	defer db.Close()
	hour := time.Now().Add(-time.Hour)
	tests := []struct {
		name  string
		q     telemetry.TraceQuery
		index string
		// sorts says the list may sort what the index finds: the traces
		// of one run are one or two.
		sorts bool
	}{
		{"all", telemetry.TraceQuery{}, "traces_start", false},
		{"since", telemetry.TraceQuery{StartTime: hour}, "traces_start", false},
		{"run", telemetry.TraceQuery{RunID: "r"}, "traces_run_id", true},
		{"session", telemetry.TraceQuery{SessionID: "s"}, "traces_session_id", false},
		{"status", telemetry.TraceQuery{Status: telemetry.StatusError}, "traces_start", false},
		{"agent and status", telemetry.TraceQuery{AgentID: "a", Status: telemetry.StatusError}, "traces_agent_id", false},
		{"team, status, since", telemetry.TraceQuery{TeamID: "t", Status: telemetry.StatusOK, StartTime: hour}, "traces_team_id", false},
		{"user", telemetry.TraceQuery{UserID: "u"}, "traces_user_id", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			filter, args := traceFilter(tc.q)
			list := queryPlan(t, db, traceListSQL(filter, 20, 0), args...)
			require.Contains(t, list, "INDEX "+tc.index, list)
			if !tc.sorts {
				require.NotContains(t, list, "TEMP B-TREE", list)
			}
			// Counting all traces may take any index: the smallest wins.
			count := queryPlan(t, db, `SELECT COUNT(*) FROM traces WHERE `+filter, args...)
			require.Contains(t, count, "COVERING INDEX", count)
			if tc.name != "all" {
				require.Contains(t, count, "INDEX "+tc.index, count)
			}
		})
	}
}
