package console_test

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/model/fake"
)

// keyed is the header of a request with an Idempotency-Key.
func keyed(key string) http.Header { return http.Header{"Idempotency-Key": {key}} }

// events returns the names of fs's events.
func events(fs []idFrame) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Event
	}
	return out
}

// TestIdempotencyKeyReplaysAsAnswered: a request repeated with its key is
// answered as the first one was. A streaming one gets a stream, not JSON:
// every event of the first run when they are still kept, the run followed
// live while it runs, and at least its terminal event made from the stored
// run on a replica that has none. A JSON one gets the run's result, waiting
// for the run's end as the first request does.
func TestIdempotencyKeyReplaysAsAnswered(t *testing.T) {
	t.Parallel()
	const body = `{"message":"hello there","stream":true}`

	t.Run("a finished run replays every event", func(t *testing.T) {
		t.Parallel()
		ts := startServer(t)
		first := openIDStream(t, ts, http.MethodPost, "/agents/helpdesk/runs", "", "application/json", body, keyed("fin")).rest()
		requireRunStream(t, first, "RunCompleted")
		s := openIDStream(t, ts, http.MethodPost, "/agents/helpdesk/runs", "", "application/json", body, keyed("fin"))
		require.Equal(t, "true", s.resp.Header.Get("Idempotent-Replayed"))
		again := s.rest()
		require.Equal(t, events(first), events(again))
		require.Equal(t, first[len(first)-1].Data["content"], again[len(again)-1].Data["content"])
		require.Equal(t, first[0].Data["run_id"], again[0].Data["run_id"], "the same run")
	})

	t.Run("a running run is followed live", func(t *testing.T) {
		t.Parallel()
		script := fake.New(fake.Step{Delay: 1500 * time.Millisecond, Content: "forty-two"})
		ts := startServer(t, withProvider("anthropic", script), withSpecs(slowCalc))
		const calc = `{"message":"what is 6*7?","stream":true}`
		orig := openIDStream(t, ts, http.MethodPost, "/agents/slowcalc/runs", "", "application/json", calc, keyed("live"))
		runID := orig.resp.Header.Get("X-Run-Id")
		require.NotEmpty(t, runID)
		require.Equal(t, "RUNNING", waitRunState(t, ts, "/agents/slowcalc/runs/"+runID).Status)
		s := openIDStream(t, ts, http.MethodPost, "/agents/slowcalc/runs", "", "application/json", calc, keyed("live"))
		require.Equal(t, "true", s.resp.Header.Get("Idempotent-Replayed"))
		require.Equal(t, runID, s.resp.Header.Get("X-Run-Id"))
		again := s.rest()
		requireRunStream(t, again, "RunCompleted")
		require.Equal(t, "RunStarted", again[0].Event)
		require.Equal(t, 0, again[0].ID)
		require.Equal(t, "forty-two", again[len(again)-1].Data["content"])
		require.Equal(t, events(orig.rest()), events(again))
		require.Len(t, script.Requests(), 1, "one run, one model call")
	})

	t.Run("a JSON replay of a running run waits for its end", func(t *testing.T) {
		t.Parallel()
		script := fake.New(fake.Step{Delay: time.Second, Content: "forty-two"})
		ts := startServer(t, withProvider("anthropic", script), withSpecs(slowCalc))
		const calc = `{"message":"what is 6*7?","stream":false}`
		send := func() (int, runState, http.Header) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.url+"/agents/slowcalc/runs", strings.NewReader(calc))
			if err != nil {
				return 0, runState{}, nil
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", "json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return 0, runState{}, nil
			}
			defer resp.Body.Close()
			var r runState
			_ = json.NewDecoder(resp.Body).Decode(&r)
			return resp.StatusCode, r, resp.Header
		}
		type answer struct {
			status int
			run    runState
		}
		firstDone := make(chan answer, 1)
		go func() {
			status, r, _ := send()
			firstDone <- answer{status, r}
		}()
		var runs []runState
		require.Eventually(t, func() bool {
			ts.json(http.MethodGet, "/agents/slowcalc/runs?status=RUNNING", "", "", http.StatusOK, &runs)
			return len(runs) == 1
		}, 15*time.Second, 10*time.Millisecond)
		status, again, h := send()
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, "true", h.Get("Idempotent-Replayed"))
		require.Equal(t, runs[0].RunID, again.RunID)
		require.Equal(t, "COMPLETED", again.Status, "the replay answers the run's result, not its progress")
		require.Equal(t, "forty-two", again.Content)
		first := <-firstDone
		require.Equal(t, answer{http.StatusOK, again}, first)
		require.Len(t, script.Requests(), 1, "one run, one model call")
	})

	t.Run("another replica replays the terminal event", func(t *testing.T) {
		t.Parallel()
		dsn := filepath.Join(t.TempDir(), "troupe.db")
		a := startServer(t, withDatabase(dsn))
		b := startServer(t, withDatabase(dsn))
		first := openIDStream(t, a, http.MethodPost, "/agents/helpdesk/runs", "", "application/json", body, keyed("other")).rest()
		requireRunStream(t, first, "RunCompleted")
		s := openIDStream(t, b, http.MethodPost, "/agents/helpdesk/runs", "", "application/json", body, keyed("other"))
		require.Equal(t, "true", s.resp.Header.Get("Idempotent-Replayed"))
		again := s.rest()
		require.Equal(t, []string{"RunCompleted"}, events(again))
		require.Equal(t, first[len(first)-1].Data["content"], again[0].Data["content"])
		require.Equal(t, first[len(first)-1].Data["run_id"], again[0].Data["run_id"])
	})
}

// waitRunState polls GET path until the run has started executing.
func waitRunState(t *testing.T, ts *testServer, path string) runState {
	t.Helper()
	var r runState
	require.Eventually(t, func() bool {
		ts.json(http.MethodGet, path, "", "", http.StatusOK, &r)
		return r.Status != "PENDING"
	}, 15*time.Second, 10*time.Millisecond)
	return r
}

// TestIdempotencyKeyExpires: a key past its retention is new again, with
// the same request or another, and the periodic purge deletes it.
func TestIdempotencyKeyExpires(t *testing.T) {
	t.Parallel()
	const ttl = 300 * time.Millisecond
	ts := startServer(t, withKeyTTL(ttl))
	send := func(key, body string) (int, string, http.Header) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.url+"/agents/helpdesk/runs", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var b json.RawMessage
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&b))
		return resp.StatusCode, string(b), resp.Header
	}
	const body = `{"message":"hello","stream":false}`
	status, out, h := send("k", body)
	require.Equal(t, http.StatusOK, status, out)
	first := h.Get("X-Run-Id")
	status, out, h = send("k", body)
	require.Equal(t, http.StatusOK, status, out)
	require.Equal(t, "true", h.Get("Idempotent-Replayed"), "within its retention the key replays")
	require.Equal(t, first, h.Get("X-Run-Id"))

	time.Sleep(ttl + 100*time.Millisecond)
	status, out, h = send("k", body)
	require.Equal(t, http.StatusOK, status, out)
	require.Empty(t, h.Get("Idempotent-Replayed"), "past its retention the key is new")
	second := h.Get("X-Run-Id")
	require.NotEqual(t, first, second)
	status, out, h = send("k", body)
	require.Equal(t, http.StatusOK, status, out)
	require.Equal(t, second, h.Get("X-Run-Id"), "and replays the new run")

	time.Sleep(ttl + 100*time.Millisecond)
	status, out, _ = send("k", `{"message":"another request","stream":false}`)
	require.Equal(t, http.StatusOK, status, "an expired key may come with another request: %s", out)

	// The purge job deletes keys past their retention.
	status, out, _ = send("purged", body)
	require.Equal(t, http.StatusOK, status, out)
	_, _, found, err := ts.db.LookupKey(t.Context(), "", "purged", time.Time{})
	require.NoError(t, err)
	require.True(t, found)
	require.Eventually(t, func() bool {
		_, _, found, err := ts.db.LookupKey(t.Context(), "", "purged", time.Time{})
		require.NoError(t, err)
		return !found
	}, 15*time.Second, 50*time.Millisecond, "the purge never deleted the expired key")
}

// TestBackgroundQueueFullReplays: a full queue refuses new runs with 429 but
// answers a replayed key with its run, as an empty one would.
func TestBackgroundQueueFullReplays(t *testing.T) {
	t.Parallel()
	script := fake.New(fake.Step{Block: true})
	script.Repeat = &fake.Step{Content: "done"}
	ts := startServer(t, withProvider("anthropic", script), withSpecs(slowCalc), withBackground(1, 1))
	const body = `{"message":"what is 6*7?","background":true}`
	submit := func(key string) (int, backgroundRun, http.Header) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.url+"/agents/slowcalc/runs", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var br backgroundRun
		if resp.StatusCode == http.StatusAccepted {
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&br))
		}
		return resp.StatusCode, br, resp.Header
	}
	status, running, _ := submit("running")
	require.Equal(t, http.StatusAccepted, status)
	waitRun(t, ts, "/agents/slowcalc/runs/"+running.RunID, "RUNNING")
	status, waiting, _ := submit("waiting")
	require.Equal(t, http.StatusAccepted, status, "one run may wait")
	for _, key := range []string{"", "new"} {
		status, _, _ := submit(key)
		require.Equal(t, http.StatusTooManyRequests, status, "the queue is full for a new request (key %q)", key)
	}

	tests := []struct {
		key    string
		run    backgroundRun
		status string
	}{
		{"running", running, "RUNNING"},
		{"waiting", waiting, "PENDING"},
	}
	for _, tt := range tests {
		status, br, h := submit(tt.key)
		require.Equal(t, http.StatusAccepted, status, "a replay of %q is answered, not refused", tt.key)
		require.Equal(t, "true", h.Get("Idempotent-Replayed"))
		require.Equal(t, backgroundRun{RunID: tt.run.RunID, SessionID: tt.run.SessionID, Status: tt.status}, br)
	}

	ts.json(http.MethodPost, "/agents/slowcalc/runs/"+running.RunID+"/cancel", "", "", http.StatusOK, nil)
	waitRun(t, ts, "/agents/slowcalc/runs/"+running.RunID, "CANCELLED")
	waitRun(t, ts, "/agents/slowcalc/runs/"+waiting.RunID, "COMPLETED")
	var runs []runState
	ts.json(http.MethodGet, "/agents/slowcalc/runs", "", "", http.StatusOK, &runs)
	require.Len(t, runs, 2, "no replay made a run")
}
