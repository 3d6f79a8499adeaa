package console_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/model/fake"
)

// backgroundRun is the 202 answer to a background run request.
type backgroundRun struct {
	RunID     string `json:"run_id"`
	SessionID string `json:"session_id"`
	Status    string `json:"status"`
}

// runState is the part of GET …/runs/{run_id} these tests read.
type runState struct {
	RunID     string `json:"run_id"`
	SessionID string `json:"session_id"`
	Status    string `json:"status"`
	Content   string `json:"content"`
	Error     string `json:"error"`
}

// waitRun polls GET path until the run's status is want.
func waitRun(t *testing.T, ts *testServer, path, want string) runState {
	t.Helper()
	var r runState
	require.Eventually(t, func() bool {
		ts.json(http.MethodGet, path, "", "", http.StatusOK, &r)
		return r.Status == want
	}, 15*time.Second, 10*time.Millisecond, "run %s never reached %s (last: %+v)", path, want, r)
	return r
}

func TestBackgroundRun(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	tests := []struct {
		name, base, contentType, body string
		other                         string // a path of another component, where the run is not found
	}{
		{name: "agent, json", base: "/agents/helpdesk", contentType: "application/json", body: `{"message":"hello there","background":true}`, other: "/agents/calc"},
		{name: "team, form", base: "/teams/crew", contentType: "application/x-www-form-urlencoded",
			body: url.Values{"message": {"hello there"}, "background": {"true"}}.Encode(), other: "/agents/helpdesk"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, h := ts.do(http.MethodPost, tt.base+"/runs", "", tt.contentType, tt.body)
			require.Equal(t, http.StatusAccepted, status, body)
			var br backgroundRun
			require.NoError(t, json.Unmarshal([]byte(body), &br))
			require.Equal(t, "PENDING", br.Status)
			require.NotEmpty(t, br.RunID)
			require.NotEmpty(t, br.SessionID)
			require.Equal(t, br.RunID, h.Get("X-Run-Id"))

			done := waitRun(t, ts, tt.base+"/runs/"+br.RunID, "COMPLETED")
			require.Equal(t, br.SessionID, done.SessionID)
			require.NotEmpty(t, done.Content)
			require.Empty(t, done.Error)

			status, _, _ = ts.do(http.MethodGet, tt.other+"/runs/"+br.RunID, "", "", "")
			require.Equal(t, http.StatusNotFound, status, "a run is found only under its own agent or team")
		})
	}
	status, _, _ := ts.do(http.MethodGet, "/agents/helpdesk/runs/no-such-run", "", "", "")
	require.Equal(t, http.StatusNotFound, status)
	status, body, _ := ts.do(http.MethodPost, "/agents/nope/runs", "", "application/json", `{"message":"hi","background":true}`)
	require.Equal(t, http.StatusNotFound, status, body)
}

// TestBackgroundQueueFull checks the bounds on background runs: one runs at
// once here, one may wait, and a third is refused with 429 and Retry-After
// until the queue drains. A cancelled background run ends CANCELLED.
func TestBackgroundQueueFull(t *testing.T) {
	t.Parallel()
	// Both databases: the depth is counted by SQL of each dialect.
	for name, setup := range replicaDatabases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			script := fake.New(fake.Step{Block: true})
			script.Repeat = &fake.Step{Content: "done"}
			ts := startServer(t, withProvider("anthropic", script), withSpecs(slowCalc), withBackground(1, 1), withDatabase(setup(t)))
			submit := func() (int, backgroundRun, http.Header) {
				status, body, h := ts.do(http.MethodPost, "/agents/slowcalc/runs", "", "application/json", `{"message":"what is 6*7?","background":true}`)
				var br backgroundRun
				if status == http.StatusAccepted {
					require.NoError(t, json.Unmarshal([]byte(body), &br))
				}
				return status, br, h
			}
			status, first, _ := submit()
			require.Equal(t, http.StatusAccepted, status)
			waitRun(t, ts, "/agents/slowcalc/runs/"+first.RunID, "RUNNING")
			status, second, _ := submit()
			require.Equal(t, http.StatusAccepted, status, "one run may wait")
			status, _, h := submit()
			require.Equal(t, http.StatusTooManyRequests, status, "the queue is full")
			require.Equal(t, "2", h.Get("Retry-After"))

			ts.json(http.MethodPost, "/agents/slowcalc/runs/"+first.RunID+"/cancel", "", "", http.StatusOK, nil)
			cancelled := waitRun(t, ts, "/agents/slowcalc/runs/"+first.RunID, "CANCELLED")
			require.NotEmpty(t, cancelled.Error)
			require.Equal(t, "done", waitRun(t, ts, "/agents/slowcalc/runs/"+second.RunID, "COMPLETED").Content)
			status, third, _ := submit()
			require.Equal(t, http.StatusAccepted, status, "the queue drained")
			waitRun(t, ts, "/agents/slowcalc/runs/"+third.RunID, "COMPLETED")
		})
	}
}

// TestIdempotencyKey checks run requests repeated with an Idempotency-Key,
// foreground and background: the same key and body answer with the first
// request's run (no second run is made), the same key with another body is
// a 422, and keys are per request, not global.
func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	send := func(key, body string) (int, string, http.Header) {
		req, err := http.NewRequest(http.MethodPost, ts.url+"/agents/helpdesk/runs", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b), resp.Header
	}
	tests := []struct {
		name, key, body, other string
		status                 int
	}{
		{name: "foreground", key: "key-fg", body: `{"message":"hello","stream":false}`, other: `{"message":"bye","stream":false}`, status: http.StatusOK},
		{name: "background", key: "key-bg", body: `{"message":"hello","background":true}`, other: `{"message":"hello","background":true,"session_id":"elsewhere"}`, status: http.StatusAccepted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, h := send(tt.key, tt.body)
			require.Equal(t, tt.status, status, body)
			require.Empty(t, h.Get("Idempotent-Replayed"))
			first := h.Get("X-Run-Id")
			require.NotEmpty(t, first)
			done := waitRun(t, ts, "/agents/helpdesk/runs/"+first, "COMPLETED")

			status, body, h = send(tt.key, tt.body)
			require.Equal(t, tt.status, status, body)
			require.Equal(t, "true", h.Get("Idempotent-Replayed"))
			require.Equal(t, first, h.Get("X-Run-Id"), "the same run")
			var again runState
			require.NoError(t, json.Unmarshal([]byte(body), &again))
			require.Equal(t, first, again.RunID)
			require.Equal(t, "COMPLETED", again.Status)

			var runs []runState
			ts.json(http.MethodGet, "/sessions/"+done.SessionID+"/runs", "", "", http.StatusOK, &runs)
			require.Len(t, runs, 1, "no second run was made")

			status, body, _ = send(tt.key, tt.other)
			require.Equal(t, http.StatusUnprocessableEntity, status, body)
			require.Contains(t, body, "Idempotency-Key")
		})
	}
}

// TestBackgroundRunStreamsFromAnyReplica: nobody streams a background run as
// it executes, so it logs every event; a client that follows it later gets
// the whole run, in order, from either replica on the database — not only
// the terminal event built from the stored run, which is all a foreground
// run nobody resumed leaves behind.
func TestBackgroundRunStreamsFromAnyReplica(t *testing.T) {
	t.Parallel()
	dsn := filepath.Join(t.TempDir(), "troupe.db")
	a := startServer(t, withDatabase(dsn))
	b := startServer(t, withDatabase(dsn))
	status, body, _ := a.do(http.MethodPost, "/agents/helpdesk/runs", "", "application/json", `{"message":"hello there","background":true}`)
	require.Equal(t, http.StatusAccepted, status, body)
	var br backgroundRun
	require.NoError(t, json.Unmarshal([]byte(body), &br))
	waitRun(t, a, "/agents/helpdesk/runs/"+br.RunID, "COMPLETED")
	for name, ts := range map[string]*testServer{"a": a, "b": b} {
		fs := openIDStream(t, ts, http.MethodGet, "/agents/helpdesk/runs/"+br.RunID+"/resume", "", "", "", nil).rest()
		require.Equal(t, "RunStarted", fs[0].Event, name)
		require.Equal(t, 0, fs[0].ID, name)
		require.Greater(t, len(fs), 2, "%s: every event of the run, not just its end", name)
		requireRunStream(t, fs, "RunCompleted")
	}
}
