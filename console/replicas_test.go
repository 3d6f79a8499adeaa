package console_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// replicaDatabases are the databases two replicas can share: a SQLite file
// opened by both, and a PostgreSQL schema when TROUPE_TEST_POSTGRES_DSN is
// set.
func replicaDatabases(t *testing.T) map[string]func(t *testing.T) string {
	setups := map[string]func(t *testing.T) string{
		"sqlite": func(t *testing.T) string { return filepath.Join(t.TempDir(), "troupe.db") },
	}
	if dsn := os.Getenv("TROUPE_TEST_POSTGRES_DSN"); dsn != "" {
		setups["postgres"] = func(t *testing.T) string { return pgSchema(t, dsn) }
	} else {
		t.Log("TROUPE_TEST_POSTGRES_DSN not set: the PostgreSQL variant is skipped")
	}
	return setups
}

// startBlockedRun starts a run on ts that blocks until it is cancelled, and
// returns its response (the event stream), run id and session id.
func startBlockedRun(t *testing.T, ts *testServer) (*http.Response, string, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.url+"/agents/writer/runs", strings.NewReader(`{"message":"please block"}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = resp.Body.Close() })
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return resp, resp.Header.Get("X-Run-Id"), resp.Header.Get("X-Session-Id")
}

// endsWithin reads the run's event stream to its end, which must come within
// d, and returns the last event's name.
func endsWithin(t *testing.T, resp *http.Response, d time.Duration) string {
	t.Helper()
	done := make(chan []frame, 1)
	go func() { done <- readFrames(t, resp.Body) }()
	select {
	case frames := <-done:
		require.NotEmpty(t, frames)
		return frames[len(frames)-1].Event
	case <-time.After(d):
		t.Fatalf("the run did not end within %s", d)
		return ""
	}
}

// TestCancelFromAnotherReplica: two servers on one database. A cancel sent to
// the replica that does not execute the run stops it within a second, ending
// it cancelled as a local cancel does; deleting its session through the other
// replica stops it too; and cancels of unknown runs answer 404 as before.
func TestCancelFromAnotherReplica(t *testing.T) {
	t.Parallel()
	for name, database := range replicaDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dsn := database(t)
			a := startServer(t, withDatabase(dsn))
			b := startServer(t, withDatabase(dsn))

			resp, runID, sessionID := startBlockedRun(t, a)
			tests := []struct {
				path string
				want int
			}{
				{"/agents/writer/runs/no-such-run/cancel", http.StatusNotFound},
				{"/agents/calc/runs/" + runID + "/cancel", http.StatusNotFound},  // another agent
				{"/teams/writer/runs/" + runID + "/cancel", http.StatusNotFound}, // another kind
				{"/teams/crew/runs/no-such-run/cancel", http.StatusNotFound},
			}
			for _, tc := range tests {
				status, body, _ := b.do(http.MethodPost, tc.path, "", "", "")
				require.Equal(t, tc.want, status, "%s: %s", tc.path, body)
			}
			start := time.Now()
			var res struct {
				RunID  string `json:"run_id"`
				Status string `json:"status"`
			}
			b.json(http.MethodPost, "/agents/writer/runs/"+runID+"/cancel", "", "", http.StatusOK, &res)
			require.Equal(t, runID, res.RunID)
			require.Equal(t, "cancelling", res.Status)
			require.Equal(t, "RunCancelled", endsWithin(t, resp, time.Second))
			t.Logf("cancelled across replicas in %s", time.Since(start))
			var runs []runJSON
			b.json(http.MethodGet, "/sessions/"+sessionID+"/runs", "", "", http.StatusOK, &runs)
			require.Len(t, runs, 1)
			require.Equal(t, "CANCELLED", runs[0].Status)
			// The run is over: a second cancel finds nothing in progress.
			b.json(http.MethodPost, "/agents/writer/runs/"+runID+"/cancel", "", "", http.StatusNotFound, nil)

			// Deleting the session of a run that executes on A, through B,
			// stops the run before the session goes.
			resp, _, sessionID = startBlockedRun(t, a)
			b.json(http.MethodDelete, "/sessions/"+sessionID, "", "", http.StatusNoContent, nil)
			require.Equal(t, "RunCancelled", endsWithin(t, resp, time.Second))
			a.json(http.MethodGet, "/sessions/"+sessionID+"/runs", "", "", http.StatusNotFound, nil)
			require.Zero(t, a.runs.Active())
		})
	}
}

// TestSearchFollowsOtherReplicas: the embedded vector store of a replica
// follows the documents ingested, changed and deleted through another on the
// same database, within seconds and without a reload.
func TestSearchFollowsOtherReplicas(t *testing.T) {
	t.Parallel()
	for name, database := range replicaDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dsn := database(t)
			a := startServer(t, withDatabase(dsn))
			b := startServer(t, withDatabase(dsn))
			const unique = "the quokka festival takes place on Rottnest Island every March"
			found := func(ts *testServer) bool {
				for _, h := range search(t, ts, "quokka festival Rottnest", "keyword") {
					if strings.Contains(h["content"].(string), "quokka") {
						return true
					}
				}
				return false
			}
			require.False(t, found(b))

			status, doc := upload(t, a, "", map[string]string{"text_content": unique, "name": "quokka.txt"}, "")
			require.Equal(t, http.StatusAccepted, status, doc)
			id := doc["id"].(string)
			waitCompleted(t, a, id)
			start := time.Now()
			require.True(t, found(a))
			require.Eventually(t, func() bool { return found(b) }, 5*time.Second, 50*time.Millisecond,
				"a document ingested through A is found on B")
			t.Logf("B found the document %s after A had it", time.Since(start))

			a.json(http.MethodDelete, "/knowledge/content/"+id, "", "", http.StatusNoContent, nil)
			require.False(t, found(a))
			require.Eventually(t, func() bool { return !found(b) }, 5*time.Second, 50*time.Millisecond,
				"a document deleted through A is gone from B")
		})
	}
}
