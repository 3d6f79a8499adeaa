package console_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/store"
)

// liveRun is a streamed run being read frame by frame.
type liveRun struct {
	t         *testing.T
	resp      *http.Response
	sc        *bufio.Scanner
	cancel    context.CancelFunc
	runID     string
	sessionID string
}

// startBlockingRun streams a run of writer whose model sends "thinking "
// and then waits until the request to it is cancelled, and reads up to that
// first piece of content.
func startBlockingRun(t *testing.T, ts *testServer) *liveRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.url+"/agents/writer/runs", strings.NewReader(`{"message":"block","stream":true}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	require.Equal(t, http.StatusOK, resp.StatusCode)
	lr := &liveRun{t: t, resp: resp, sc: bufio.NewScanner(resp.Body), cancel: cancel}
	for {
		f, ok := lr.next()
		require.True(t, ok, "the stream ended before any content")
		if f.Event == "RunContent" {
			lr.runID, lr.sessionID = f.Data["run_id"].(string), f.Data["session_id"].(string)
			require.Equal(t, "thinking ", f.Data["content"])
			return lr
		}
	}
}

// next reads one frame; false at the end of the stream.
func (lr *liveRun) next() (frame, bool) {
	var f frame
	for lr.sc.Scan() {
		line := lr.sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			f.Event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			require.NoError(lr.t, json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &f.Data))
		case line == "" && f.Event != "":
			return f, true
		}
	}
	return f, false
}

// rest reads the remaining frames' names.
func (lr *liveRun) rest() []string {
	var out []string
	for {
		f, ok := lr.next()
		if !ok {
			return out
		}
		out = append(out, f.Event)
	}
}

// TestDeleteSessionStopsItsRun: deleting a session while its run streams
// cancels the run at once (the model request is abandoned), then deletes;
// the run's final save does not bring the session or the run back.
func TestDeleteSessionStopsItsRun(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	lr := startBlockingRun(t, ts)

	start := time.Now()
	status, body, _ := ts.do(http.MethodDelete, "/sessions/"+lr.sessionID, "", "", "")
	require.Equal(t, http.StatusNoContent, status, body)
	require.Less(t, time.Since(start), 3*time.Second, "the run stopped promptly")
	require.Equal(t, []string{"RunCancelled"}, lr.rest())

	status, body, _ = ts.do(http.MethodGet, "/sessions/"+lr.sessionID, "", "", "")
	require.Equal(t, http.StatusNotFound, status, body)
	_, err := ts.db.GetRun(t.Context(), lr.runID, store.Filter{})
	require.ErrorIs(t, err, store.ErrNotFound)
	_, total, err := ts.db.ListSessions(t.Context(), store.SessionQuery{})
	require.NoError(t, err)
	require.Zero(t, total, "no session re-created by the run's final save")
}

// TestInterruptedRunKeepsStreamedText: a run cancelled after its answer
// started streaming stores the text the client saw, marked partial, whether
// the cancel route or the client's disconnect stopped it.
func TestInterruptedRunKeepsStreamedText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		stop  func(t *testing.T, ts *testServer, lr *liveRun)
		error string
	}{
		{"cancel route", func(t *testing.T, ts *testServer, lr *liveRun) {
			status, body, _ := ts.do(http.MethodPost, "/agents/writer/runs/"+lr.runID+"/cancel", "", "", "")
			require.Equal(t, http.StatusOK, status, body)
			require.Equal(t, []string{"RunCancelled"}, lr.rest())
		}, "cancelled by request"},
		{"client disconnect", func(_ *testing.T, _ *testServer, lr *liveRun) { lr.cancel() }, "context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t)
			lr := startBlockingRun(t, ts)
			tt.stop(t, ts, lr)

			var run *store.Run
			require.Eventually(t, func() bool {
				r, err := ts.db.GetRun(t.Context(), lr.runID, store.Filter{})
				require.NoError(t, err)
				run = r
				return r.Status != event.StatusRunning
			}, 10*time.Second, 10*time.Millisecond)
			require.Equal(t, event.StatusCancelled, run.Status)
			require.Equal(t, "thinking ", run.Content)
			require.True(t, run.Partial)
			require.Equal(t, tt.error, run.Error)

			var runs []map[string]any
			ts.json(http.MethodGet, "/sessions/"+lr.sessionID+"/runs", "", "", http.StatusOK, &runs)
			require.Len(t, runs, 1)
			require.Equal(t, "thinking ", runs[0]["content"])
			require.Equal(t, true, runs[0]["partial"])
			require.Equal(t, "CANCELLED", runs[0]["status"])
		})
	}
}

// TestCrashedRunIsTraced: a run left RUNNING by a process that died (its
// trace lived only in that process's memory) is failed at the next start and
// gets a trace of its own, so that the crash shows in the trace list.
func TestCrashedRunIsTraced(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "troupe.db")
	db, err := store.Open(t.Context(), path, store.Options{})
	require.NoError(t, err)
	r := &store.Run{ID: "crashed-run", Input: "write a poem", Model: "test-model", Provider: "openai", SpecVersion: "v1"}
	require.NoError(t, db.StartRun(t.Context(), &store.Session{ID: "crashed-session", Type: store.SessionAgent, ComponentID: "writer", UserID: "u1"}, r))
	require.NoError(t, db.Close(), "the process dies with the run in flight")

	ts := startServer(t, withDatabase(path))
	got, err := ts.db.GetRun(t.Context(), "crashed-run", store.Filter{})
	require.NoError(t, err)
	require.Equal(t, event.StatusError, got.Status)
	require.Equal(t, store.InterruptedRunError, got.Error)

	var list struct {
		Data []map[string]any `json:"data"`
	}
	require.Eventually(t, func() bool {
		ts.json(http.MethodGet, "/traces?run_id=crashed-run", "", "", http.StatusOK, &list)
		return len(list.Data) == 1
	}, 10*time.Second, 20*time.Millisecond)
	traceID, _ := list.Data[0]["trace_id"].(string)
	require.NotEmpty(t, traceID, list.Data[0])

	var trace struct {
		Tree []traceNode `json:"tree"`
	}
	ts.json(http.MethodGet, "/traces/"+traceID, "", "", http.StatusOK, &trace)
	require.Len(t, trace.Tree, 1)
	root := trace.Tree[0]
	require.Equal(t, "agent.run writer", root.Name)
	require.Equal(t, "ERROR", root.Status)
	require.Equal(t, got.CreatedAt, root.Start.UTC())
	require.Equal(t, got.UpdatedAt, root.End.UTC())
}
