package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// crashWorkflow is five agent steps, each asking the fake model with its own
// marker, each using the previous step's output.
const crashWorkflow = `
---
kind: Workflow
name: five
steps:
  - {name: s1, agent: worker, input: "one [run:s1]"}
  - {name: s2, agent: worker, input: "two [run:s2] after {{ steps.s1.output }}"}
  - {name: s3, agent: worker, input: "three [run:s3] after {{ steps.s2.output }}"}
  - {name: s4, agent: worker, input: "four [run:s4] after {{ steps.s3.output }}"}
  - {name: s5, agent: worker, input: "five [run:s5] after {{ steps.s4.output }}"}
output: "{{ steps.s1.output }} | {{ steps.s5.output }}"
---
kind: Workflow
name: gated
steps:
  - {name: g1, agent: worker, input: "draft [run:g1]"}
  - {name: ok, approval: "Publish {{ steps.g1.output }}?"}
  - {name: g2, agent: worker, input: "publish [run:g2] {{ steps.ok.output.comment }}"}
`

// TestKilledWorkflowResumesOnRestart kills -9 the server during step 3 of a
// five-step workflow: after a restart the run completes, steps 1 and 2 are
// not executed again, step 3 (whose answer the kill cut off) executes once
// more, steps 4 and 5 once.
func TestKilledWorkflowResumesOnRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills server processes")
	}
	t.Parallel()
	fm := newFakeModel(t, 4, 10*time.Millisecond)
	open := fm.gate("s3")
	dir := t.TempDir()
	cfg := replicaConfig{name: "solo", db: filepath.Join(t.TempDir(), "troupe.db"), model: fm.srv.URL, defaultID: true, dir: dir}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "specs.yaml"), fmt.Appendf(nil, replicaSpecs+crashWorkflow, fm.srv.URL, cfg.name), 0o644))
	p, cfg := startReplica(t, cfg)

	var accepted runState
	status, _ := p.do(t, http.MethodPost, "/workflows/five/runs", "application/json", `{"message": "go", "background": true}`, &accepted)
	require.Equal(t, http.StatusAccepted, status)
	require.Eventually(t, func() bool { return len(fm.seen("s3")) == 1 }, 20*time.Second, 5*time.Millisecond, "step 3 reaches the model")
	p.kill(t)
	open()

	restarted := time.Now()
	p, _ = startReplica(t, cfg)
	var run struct {
		runState
		Steps []struct {
			Name     string `json:"step_name"`
			Status   string `json:"status"`
			Attempts int    `json:"attempts"`
		} `json:"steps"`
	}
	require.Eventually(t, func() bool {
		status, _ := p.get(t, "/workflows/five/runs/"+accepted.RunID, &run)
		require.Equal(t, http.StatusOK, status)
		return run.Status != "PENDING" && run.Status != "RUNNING"
	}, 30*time.Second, 20*time.Millisecond, "the run ends after the restart")
	t.Logf("the workflow completed %s after the restart", time.Since(restarted).Round(time.Millisecond))
	require.Equal(t, "COMPLETED", run.Status, run.Error)
	require.Equal(t, fm.answer("s1")+" | "+fm.answer("s5"), run.Content)
	time.Sleep(300 * time.Millisecond) // nothing runs afterwards
	calls, _ := fm.counts()
	require.Equal(t, map[string]int{"s1": 1, "s2": 1, "s3": 2, "s4": 1, "s5": 1}, calls,
		"steps 1-2 are not executed again; step 3 once more after the kill cut its answer; 4-5 once")
	var got []string
	for _, s := range run.Steps {
		require.Equal(t, "COMPLETED", s.Status, s.Name)
		got = append(got, fmt.Sprintf("%s:%d", s.Name, s.Attempts))
	}
	require.Equal(t, []string{"s1:1", "s2:1", "s3:2", "s4:1", "s5:1"}, got)
	b, _ := json.Marshal(run)
	t.Logf("run: %s", b)
}

// TestApprovalContinuesAcrossRestart pauses a workflow at its approval step,
// kills the server, and continues the run on the restarted one: it
// completes without executing its first step again.
func TestApprovalContinuesAcrossRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills server processes")
	}
	t.Parallel()
	fm := newFakeModel(t, 2, time.Millisecond)
	dir := t.TempDir()
	cfg := replicaConfig{name: "solo", db: filepath.Join(t.TempDir(), "troupe.db"), model: fm.srv.URL, defaultID: true, dir: dir}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "specs.yaml"), fmt.Appendf(nil, replicaSpecs+crashWorkflow, fm.srv.URL, cfg.name), 0o644))
	p, cfg := startReplica(t, cfg)
	var run runState
	status, _ := p.do(t, http.MethodPost, "/workflows/gated/runs", "application/json", `{"message": "go", "background": true}`, &run)
	require.Equal(t, http.StatusAccepted, status)
	id := run.RunID
	require.Eventually(t, func() bool {
		p.get(t, "/workflows/gated/runs/"+id, &run)
		return run.Status == "PAUSED"
	}, 20*time.Second, 10*time.Millisecond)
	require.Equal(t, "Publish "+fm.answer("g1")+"?", run.Content)
	p.kill(t)

	p, _ = startReplica(t, cfg)
	p.get(t, "/workflows/gated/runs/"+id, &run)
	require.Equal(t, "PAUSED", run.Status, "a paused run stays paused across a restart")
	status, _ = p.do(t, http.MethodPost, "/workflows/gated/runs/"+id+"/continue", "application/json", `{"approved": true, "comment": "yes"}`, nil)
	require.Equal(t, http.StatusAccepted, status)
	require.Eventually(t, func() bool {
		p.get(t, "/workflows/gated/runs/"+id, &run)
		return run.Status == "COMPLETED"
	}, 20*time.Second, 10*time.Millisecond)
	require.Equal(t, fm.answer("g2"), run.Content)
	calls, _ := fm.counts()
	require.Equal(t, map[string]int{"g1": 1, "g2": 1}, calls)
}

// TestKilledWorkflowResumesOnOtherReplica: two replicas on one PostgreSQL
// database; replica A runs a five-step workflow and is killed -9 during
// step 3. Once A's replica lease expires, replica B requeues the run and
// resumes it from its checkpoints: steps 1 and 2 are not executed again
// (their model calls all came from A), step 3, cut off mid-answer, executes
// once more on B, and steps 4 and 5 once, on B. The stored run and every
// stored step are complete.
func TestKilledWorkflowResumesOnOtherReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills server processes")
	}
	t.Parallel()
	dsn, db := pgDatabase(t)
	fm := newFakeModel(t, 4, 10*time.Millisecond)
	open := fm.gate("s3")
	t.Cleanup(open)
	flags := []string{"--replica-lease", testReplicaLease.String(), "--job-lease", testJobLease.String(), "--shutdown-timeout", "2s"}
	start := func(name string) *replica {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "specs.yaml"), fmt.Appendf(nil, replicaSpecs+crashWorkflow, fm.srv.URL, name), 0o644))
		p, _ := startReplica(t, replicaConfig{name: name, db: dsn, model: fm.srv.URL, dir: dir, extra: flags})
		return p
	}
	a := start("a")
	b := start("b")

	// A foreground run executes on the replica that took the request.
	live := a.openStream(t, http.MethodPost, "/workflows/five/runs", `{"message": "go"}`)
	runID := live.runID
	require.NotEmpty(t, runID)
	require.Eventually(t, func() bool { return len(fm.seen("s3")) == 1 }, 20*time.Second, 5*time.Millisecond, "step 3 reaches the model")
	killed := time.Now()
	a.kill(t)
	open()

	var run struct {
		runState
		Steps []struct {
			Name     string `json:"step_name"`
			Status   string `json:"status"`
			Attempts int    `json:"attempts"`
			Output   any    `json:"output"`
		} `json:"steps"`
	}
	require.Eventually(t, func() bool {
		status, _ := b.get(t, "/workflows/five/runs/"+runID, &run)
		require.Equal(t, http.StatusOK, status)
		return run.Status != "PENDING" && run.Status != "RUNNING"
	}, 25*time.Second, 20*time.Millisecond, "B resumes and ends the run")
	t.Logf("the workflow completed on B %s after A was killed (replica lease %s)", time.Since(killed).Round(time.Millisecond), testReplicaLease)
	require.Equal(t, "COMPLETED", run.Status, run.Error)
	require.Equal(t, fm.answer("s1")+" | "+fm.answer("s5"), run.Content)
	time.Sleep(300 * time.Millisecond) // nothing runs afterwards
	calls, _ := fm.counts()
	require.Equal(t, map[string]int{"s1": 1, "s2": 1, "s3": 2, "s4": 1, "s5": 1}, calls,
		"steps 1-2 are not executed again; step 3 once more after the kill cut its answer; 4-5 once")
	for marker, replicas := range map[string][]string{"s1": {"a"}, "s2": {"a"}, "s3": {"a", "b"}, "s4": {"b"}, "s5": {"b"}} {
		require.Equal(t, replicas, fm.seen(marker), "the replicas that called the model for %s", marker)
	}
	var got []string
	for _, s := range run.Steps {
		require.Equal(t, "COMPLETED", s.Status, s.Name)
		require.NotEmpty(t, s.Output, s.Name)
		got = append(got, fmt.Sprintf("%s:%d", s.Name, s.Attempts))
	}
	require.Equal(t, []string{"s1:1", "s2:1", "s3:2", "s4:1", "s5:1"}, got)

	// The store agrees: the run and its five checkpoints are complete.
	var status string
	require.NoError(t, db.QueryRowContext(t.Context(), `SELECT status FROM runs WHERE id = $1`, runID).Scan(&status))
	require.Equal(t, "COMPLETED", status)
	var steps, done int
	require.NoError(t, db.QueryRowContext(t.Context(),
		`SELECT COUNT(*), COUNT(*) FILTER (WHERE status = 'COMPLETED' AND output <> 'null'::jsonb) FROM workflow_steps WHERE run_id = $1`, runID).Scan(&steps, &done))
	require.Equal(t, 5, steps)
	require.Equal(t, 5, done)
}
