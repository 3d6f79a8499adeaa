package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/echo"
	"github.com/troupehq/troupe/engine/model/fake"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/spec"
	"github.com/troupehq/troupe/store"
	"github.com/troupehq/troupe/telemetry"
)

const serviceSpecs = `kind: Agent
name: helper
model: echo
tools: [calculator]
---
kind: Model
name: scripted
provider: openai
model: scripted
api_key: sk-test
---
kind: Agent
name: slow
model: scripted
---
kind: Team
name: crew
mode: route
model: echo
members: [helper]
`

// TestRunServiceWithoutHTTP starts, streams, cancels and finishes runs
// through the run service wired as troupe serve wires it (SQLite store, SQL
// trace sink, Prometheus metrics), with no HTTP involved, as a scheduler or a
// workflow step will, and finds each run stored, traced and counted.
func TestRunServiceWithoutHTTP(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "specs.yaml"), []byte(serviceSpecs), 0o644))
	reg := model.NewRegistry()
	reg.Register(echo.Name, echo.New)
	scripted := fake.New(fake.Step{Deltas: []string{"Thinking "}, Block: true})
	reg.Register("openai", func(model.Config) (model.Provider, error) { return scripted, nil })
	logger := slog.New(slog.DiscardHandler)
	eng, err := engine.New(engine.Options{Dirs: []string{dir}, Runtime: &engine.Runtime{Models: reg}, Logger: logger})
	require.NoError(t, err)
	defer eng.Close()

	dsn := filepath.Join(t.TempDir(), "troupe.db")
	db, err := store.Open(t.Context(), dsn, store.Options{})
	require.NoError(t, err)
	defer db.Close()
	tel, err := openTelemetry(t.Context(), "sql", dsn, db, 0, logger)
	require.NoError(t, err)
	defer tel.close()
	recCtx, stopRec := context.WithCancel(t.Context())
	var recWG sync.WaitGroup
	recWG.Go(func() { _ = tel.recorder.Run(recCtx) })
	defer func() { stopRec(); recWG.Wait() }()
	metrics := telemetry.NewMetrics()
	runs := newRunService(eng, db, nil, nil, newTracer(tel.recorder, tel.reader, nil, telemetry.ContentPolicy{}), metrics, time.Second, 0, 0, logger, nil, nil, nil)
	svcCtx, stopSvc := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- runs.Run(svcCtx) }()

	// Runs to completion: an agent with a tool, and a team whose member's
	// run is stored under the team's.
	tests := []struct {
		kind    spec.Kind
		name    string
		message string
		content string
		runs    int // stored in the session, members' included
	}{
		{spec.KindAgent, "helper", `/call calculator {"expression":"6*7"}`, "calculator: 42", 1},
		{spec.KindTeam, "crew", "hello crew", "Echo: hello crew", 2},
	}
	var runIDs []string
	for _, tt := range tests {
		turn, err := runs.Start(t.Context(), session.Params{Kind: tt.kind, Name: tt.name, Message: tt.message, UserID: "ann", Stream: true})
		require.NoError(t, err)
		var types []event.Type
		run := turn.Execute(t.Context(), func(e event.Event) {
			if e.Depth == 0 {
				types = append(types, e.Type)
			}
		})
		require.Equal(t, event.StatusCompleted, run.Status, run.Error)
		require.Contains(t, run.Content, tt.content)
		require.Equal(t, event.RunCompleted, types[len(types)-1])
		stored, err := db.ListRuns(t.Context(), turn.SessionID(), store.Filter{UserID: "ann"})
		require.NoError(t, err)
		require.Len(t, stored, tt.runs)
		require.Equal(t, turn.RunID(), stored[0].ID)
		require.Equal(t, event.StatusCompleted, stored[0].Status)
		for _, m := range stored[1:] {
			require.Equal(t, turn.RunID(), m.ParentRunID)
			require.Equal(t, "helper", m.ComponentID)
			require.Equal(t, event.StatusCompleted, m.Status)
		}
		runIDs = append(runIDs, turn.RunID())
	}

	// A run cancelled while it streams keeps what it said, marked partial.
	turn, err := runs.Start(t.Context(), session.Params{Kind: spec.KindAgent, Name: "slow", Message: "take your time", UserID: "ann", Stream: true})
	require.NoError(t, err)
	streaming := make(chan struct{})
	var once sync.Once
	done := make(chan *session.Run, 1)
	go func() {
		done <- turn.Execute(t.Context(), func(e event.Event) {
			if e.Type == event.RunContent {
				once.Do(func() { close(streaming) })
			}
		})
	}()
	<-streaming
	require.Equal(t, 1, runs.Active())
	ok, err := runs.Cancel(t.Context(), turn.RunID(), session.Match{UserID: "ann"})
	require.NoError(t, err)
	require.True(t, ok)
	cancelled := <-done
	require.Equal(t, event.StatusCancelled, cancelled.Status)
	stored, err := db.GetRun(t.Context(), turn.RunID(), store.Filter{})
	require.NoError(t, err)
	require.Equal(t, event.StatusCancelled, stored.Status)
	require.Equal(t, session.ErrCancelled.Error(), stored.Error)
	require.Equal(t, "Thinking ", stored.Content)
	require.True(t, stored.Partial)
	runIDs = append(runIDs, turn.RunID())

	stopSvc()
	require.NoError(t, <-served)
	require.Zero(t, runs.Active())

	// Traced: flushing the recorder writes each run's trace.
	stopRec()
	recWG.Wait()
	for i, id := range runIDs {
		traces, n, err := tel.reader.ListTraces(t.Context(), telemetry.TraceQuery{RunID: id})
		require.NoError(t, err)
		require.Equal(t, 1, n, id)
		want := telemetry.StatusOK
		if i == 2 {
			want = telemetry.StatusError
		}
		require.Equal(t, want, traces[0].Status)
	}

	// Counted.
	rec := httptest.NewRecorder()
	metrics.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := rec.Body.String()
	for _, series := range []string{
		`troupe_runs_total{kind="agent",status="completed",target="helper"} 1`,
		`troupe_runs_total{kind="team",status="completed",target="crew"} 1`,
		`troupe_runs_total{kind="agent",status="cancelled",target="slow"} 1`,
		`troupe_tool_call_duration_seconds_count{tool="calculator"} 1`,
	} {
		require.Contains(t, body, series)
	}
}

// TestRunWithDatabaseLeavesSessionServeLists runs troupe run --db twice in one
// session, then serves the same database and lists the session, its runs and
// its trace through the API.
func TestRunWithDatabaseLeavesSessionServeLists(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "troupe.db")
	var out, errOut bytes.Buffer
	err := run(t.Context(), []string{"run", "--dir", "../../agents.d", "--db", dbPath, "hello", "remember me"}, noEnv, &out, &errOut)
	require.NoError(t, err, errOut.String())
	line := out.String()[strings.LastIndex(out.String(), "— session "):]
	sessionID, runID, ok := strings.Cut(strings.TrimSpace(strings.TrimPrefix(line, "— session ")), " · run ")
	require.True(t, ok, out.String())

	out.Reset()
	err = run(t.Context(), []string{"run", "--dir", "../../agents.d", "--db", dbPath, "--session", sessionID, "-q", "hello", "again"}, noEnv, &out, &errOut)
	require.NoError(t, err, errOut.String())
	require.Contains(t, out.String(), "Echo: again")

	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() {
		served <- run(ctx, []string{"serve", "--dir", "../../agents.d", "--addr", "127.0.0.1:0", "--db", dbPath}, noEnv, logs, logs)
	}()
	defer func() { cancel(); require.NoError(t, <-served) }()
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "msg=serving") }, 10*time.Second, 10*time.Millisecond)
	base := regexp.MustCompile(`addr=(http://\S+)`).FindStringSubmatch(logs.String())[1]
	getJSON := func(url string, into any) {
		t.Helper()
		resp, err := http.Get(url)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		require.NoError(t, json.Unmarshal(body, into), string(body))
	}

	var sessions struct {
		Data []struct {
			SessionID string `json:"session_id"`
			AgentID   string `json:"agent_id"`
		} `json:"data"`
	}
	getJSON(base+"/sessions", &sessions)
	require.Len(t, sessions.Data, 1)
	require.Equal(t, sessionID, sessions.Data[0].SessionID)
	require.Equal(t, "hello", sessions.Data[0].AgentID)

	var runsOut []struct {
		RunID  string `json:"run_id"`
		Status string `json:"status"`
	}
	getJSON(base+"/sessions/"+sessionID+"/runs", &runsOut)
	require.Len(t, runsOut, 2)
	require.Equal(t, runID, runsOut[0].RunID)
	require.Equal(t, "COMPLETED", runsOut[0].Status)
	require.Equal(t, "COMPLETED", runsOut[1].Status)

	var traces struct {
		Data []struct {
			TraceID string `json:"trace_id"`
		} `json:"data"`
	}
	getJSON(base+"/traces?run_id="+runID, &traces)
	require.Len(t, traces.Data, 1)
}
