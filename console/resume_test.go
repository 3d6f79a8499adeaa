package console_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/model"
)

// gatedProvider streams its first deltas, then holds the call until gate is
// closed (or the run's context ends), then streams the rest: a slow model
// whose pace the test decides.
type gatedProvider struct {
	first, rest []string
	gate        chan struct{}
}

func newGated() *gatedProvider {
	return &gatedProvider{first: []string{"one ", "two "}, rest: []string{"three ", "four ", "five."}, gate: make(chan struct{})}
}

func (g *gatedProvider) Generate(ctx context.Context, req *model.Request, onDelta func(model.Delta)) (*model.Response, error) {
	send := func(ds []string) {
		for _, d := range ds {
			if onDelta != nil {
				onDelta(model.Delta{Content: d})
			}
		}
	}
	send(g.first)
	select {
	case <-g.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	send(g.rest)
	return &model.Response{Content: strings.Join(append(append([]string(nil), g.first...), g.rest...), ""), Model: req.Model, StopReason: model.StopEnd}, nil
}

const gatedSpecs = `kind: Model
name: gated
provider: anthropic
model: gated
api_key: sk-test
---
kind: Agent
name: slow
description: Answers slowly.
model: gated
`

// idFrame is an SSE frame with its id line.
type idFrame struct {
	ID    int
	Event string
	Data  map[string]any
}

// idStream reads an event stream frame by frame.
type idStream struct {
	t      *testing.T
	resp   *http.Response
	sc     *bufio.Scanner
	cancel context.CancelFunc
}

// open sends a request whose answer is an event stream; key may be empty.
func openIDStream(t *testing.T, ts *testServer, method, path, key, contentType, body string, header http.Header) *idStream {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, method, ts.url+path, strings.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %s: %s %s", method, path, resp.Status, b)
	}
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	return &idStream{t: t, resp: resp, sc: sc, cancel: cancel}
}

// next returns the next frame, or false at the end of the stream.
func (s *idStream) next() (idFrame, bool) {
	s.t.Helper()
	f := idFrame{ID: -1}
	for s.sc.Scan() {
		line := s.sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			n, err := strconv.Atoi(strings.TrimPrefix(line, "id: "))
			require.NoError(s.t, err)
			f.ID = n
		case strings.HasPrefix(line, "event: "):
			f.Event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			require.NoError(s.t, json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &f.Data))
		case line == "" && f.Data != nil:
			require.Equal(s.t, f.Event, f.Data["event"])
			require.GreaterOrEqual(s.t, f.ID, 0, "every run frame has an id")
			return f, true
		}
	}
	return idFrame{}, false
}

// take reads n frames.
func (s *idStream) take(n int) []idFrame {
	s.t.Helper()
	out := make([]idFrame, 0, n)
	for range n {
		f, ok := s.next()
		require.True(s.t, ok, "the stream ended after %d of %d frames", len(out), n)
		out = append(out, f)
	}
	return out
}

// rest reads frames until the stream ends.
func (s *idStream) rest() []idFrame {
	s.t.Helper()
	var out []idFrame
	for {
		f, ok := s.next()
		if !ok {
			return out
		}
		out = append(out, f)
	}
}

// requireRunStream checks that fs are the frames of a whole run, in order:
// ids increasing, each once, ending with one terminal event.
func requireRunStream(t *testing.T, fs []idFrame, terminal string) {
	t.Helper()
	require.NotEmpty(t, fs)
	for i := 1; i < len(fs); i++ {
		require.Greater(t, fs[i].ID, fs[i-1].ID, "ids increase")
	}
	require.Equal(t, terminal, fs[len(fs)-1].Event)
	for _, f := range fs[:len(fs)-1] {
		require.NotContains(t, []string{"RunCompleted", "RunError", "RunCancelled"}, f.Event)
	}
}

// after returns the frames of fs with an id above idx.
func after(fs []idFrame, idx int) []idFrame {
	var out []idFrame
	for _, f := range fs {
		if f.ID > idx {
			out = append(out, f)
		}
	}
	return out
}

func resumePath(runID string) string { return "/agents/slow/runs/" + runID + "/resume" }

func TestResumeOnTheSameServer(t *testing.T) {
	t.Parallel()
	g := newGated()
	ts := startServer(t, withProvider("anthropic", g), withSpecs(gatedSpecs))

	live := openIDStream(t, ts, http.MethodPost, "/agents/slow/runs", "", "application/json", `{"message":"go"}`, nil)
	runID := live.resp.Header.Get("X-Run-Id")
	seen := live.take(3) // RunStarted and the first two deltas; the model now waits
	require.Equal(t, []int{0, 1, 2}, []int{seen[0].ID, seen[1].ID, seen[2].ID})
	require.Equal(t, "RunStarted", seen[0].Event)

	// A client that saw only RunStarted resumes as AgentOS clients do, gets
	// what it missed, and loses that connection too.
	first := openIDStream(t, ts, http.MethodPost, resumePath(runID), "", "application/json", `{"last_event_index": 0}`, nil)
	missed := first.take(2)
	require.Equal(t, seen[1:], missed)
	first.cancel()

	// It reconnects as an EventSource would, with Last-Event-ID.
	second := openIDStream(t, ts, http.MethodGet, resumePath(runID), "", "", "",
		http.Header{"Last-Event-Id": {strconv.Itoa(missed[len(missed)-1].ID)}})
	close(g.gate)
	all := append(seen, live.rest()...)
	requireRunStream(t, all, "RunCompleted")
	require.Equal(t, "one two three four five.", all[len(all)-1].Data["content"], "a resume's disconnect does not stop the run")
	resumed := second.rest()
	require.Equal(t, after(all, 2), resumed, "the rest once, in order, up to the terminal event")

	// The run is finished: a resume gets the rest at once and ends, from
	// the form field, or from the start without an index.
	done := openIDStream(t, ts, http.MethodPost, resumePath(runID), "", "application/x-www-form-urlencoded", "last_event_index=1", nil)
	require.Equal(t, after(all, 1), done.rest())
	whole := openIDStream(t, ts, http.MethodPost, resumePath(runID), "", "", "", nil)
	require.Equal(t, all, whole.rest())
}

func TestResumeOnAnotherServer(t *testing.T) {
	t.Parallel()
	databases := map[string]func(t *testing.T) string{
		"sqlite": func(t *testing.T) string { return filepath.Join(t.TempDir(), "shared.db") },
	}
	if dsn := os.Getenv("TROUPE_TEST_POSTGRES_DSN"); dsn != "" {
		databases["postgres"] = func(t *testing.T) string { return pgSchema(t, dsn) }
	}
	for name, dsn := range databases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			db := dsn(t)
			g := newGated()
			a := startServer(t, withDatabase(db), withProvider("anthropic", g), withSpecs(gatedSpecs))
			b := startServer(t, withDatabase(db), withProvider("anthropic", g), withSpecs(gatedSpecs))

			live := openIDStream(t, a, http.MethodPost, "/agents/slow/runs", "", "application/json", `{"message":"go"}`, nil)
			runID := live.resp.Header.Get("X-Run-Id")
			seen := live.take(2)

			// Replica b tails the log of a run executing on a.
			tail := openIDStream(t, b, http.MethodPost, resumePath(runID), "", "application/json", `{"last_event_index": 1}`, nil)
			got := tail.take(1) // the second delta, read from the log while the model waits
			require.Equal(t, "RunContent", got[0].Event)
			close(g.gate)
			got = append(got, tail.rest()...)
			all := append(seen, live.rest()...)
			requireRunStream(t, all, "RunCompleted")
			require.Equal(t, after(all, 1), got)

			// Finished: b serves the whole stream from the log.
			whole := openIDStream(t, b, http.MethodGet, resumePath(runID), "", "", "", nil)
			require.Equal(t, all, whole.rest())
		})
	}
}

func TestResumeRefusals(t *testing.T) {
	t.Parallel()
	g := newGated()
	close(g.gate)
	ts := startServer(t, withKeys(keys), withProvider("anthropic", g), withSpecs(gatedSpecs))
	var run runJSON
	ts.json(http.MethodPost, "/agents/slow/runs", aliceKey, `{"message":"go","stream":false}`, http.StatusOK, &run)
	require.NotEmpty(t, run.RunID)
	tests := []struct {
		name, method, path, key, header string
		status                          int
	}{
		{"unknown run", http.MethodPost, resumePath("no-such-run"), aliceKey, "", http.StatusNotFound},
		{"another agent's run", http.MethodPost, "/agents/writer/runs/" + run.RunID + "/resume", aliceKey, "", http.StatusNotFound},
		{"a team's route", http.MethodPost, "/teams/slow/runs/" + run.RunID + "/resume", aliceKey, "", http.StatusNotFound},
		{"another user's run", http.MethodGet, resumePath(run.RunID), bobKey, "", http.StatusNotFound},
		{"no key", http.MethodGet, resumePath(run.RunID), "", "", http.StatusUnauthorized},
		{"read-only key", http.MethodGet, resumePath(run.RunID), readerKey, "", http.StatusForbidden},
		{"bad Last-Event-ID", http.MethodGet, resumePath(run.RunID), aliceKey, "x", http.StatusUnprocessableEntity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, ts.url+tt.path, nil)
			require.NoError(t, err)
			if tt.key != "" {
				req.Header.Set("Authorization", "Bearer "+tt.key)
			}
			if tt.header != "" {
				req.Header.Set("Last-Event-ID", tt.header)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			require.Equal(t, tt.status, resp.StatusCode, string(body))
		})
	}
	// The owner and the admin may resume it.
	for _, key := range []string{aliceKey, adminKey} {
		fs := openIDStream(t, ts, http.MethodGet, resumePath(run.RunID), key, "", "", nil).rest()
		requireRunStream(t, fs, "RunCompleted")
		require.Equal(t, 0, fs[0].ID)
	}
}

func TestOpenAPIDocumentsResume(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	var doc struct {
		Paths map[string]map[string]map[string]any `json:"paths"`
	}
	ts.json(http.MethodGet, "/openapi.json", "", "", http.StatusOK, &doc)
	for _, p := range []string{"/agents/{agent_id}/runs/{run_id}/resume", "/teams/{team_id}/runs/{run_id}/resume"} {
		require.Contains(t, doc.Paths, p)
		require.Contains(t, doc.Paths[p], "post")
		require.Contains(t, doc.Paths[p], "get")
		require.Contains(t, doc.Paths[p]["post"]["responses"], "404")
	}
}
