package console_test

import (
	"encoding/json"
	"net/http"
	"net/url"
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
	script := fake.New(fake.Step{Block: true})
	script.Repeat = &fake.Step{Content: "done"}
	ts := startServer(t, withProvider("anthropic", script), withSpecs(slowCalc), withBackground(1, 1))
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
}
