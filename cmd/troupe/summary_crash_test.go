package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// summarySpecs add an agent whose every second run crosses its summary
// threshold (one token, keeping the newest run).
const summarySpecs = `
---
kind: Agent
name: folder
model: fake
summary: {threshold_tokens: 1, keep_runs: 1}
`

// TestKilledSummaryJobResumesOnRestart kills -9 the server while the
// summary job waits for its model: after a restart River gives the job
// back, the summary is written, and the model is asked once more, not
// again afterwards.
func TestKilledSummaryJobResumesOnRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills server processes")
	}
	t.Parallel()
	fm := newFakeModel(t, 3, 5*time.Millisecond)
	dir := t.TempDir()
	cfg := replicaConfig{name: "solo", db: filepath.Join(t.TempDir(), "troupe.db"), model: fm.srv.URL, defaultID: true, dir: dir}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "specs.yaml"), fmt.Appendf(nil, replicaSpecs+summarySpecs, fm.srv.URL, cfg.name), 0o644))
	p, cfg := startReplica(t, cfg)

	// Turn 1 carries the marker the summarizer's transcript starts with;
	// the gate is set after it answered, so only the summary waits.
	var first, second runState
	status, _ := p.do(t, http.MethodPost, "/agents/folder/runs", "application/json", `{"message": "alpha [run:fold]", "stream": false}`, &first)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "COMPLETED", first.Status, first.Error)
	open := fm.gate("fold")
	status, _ = p.do(t, http.MethodPost, "/agents/folder/runs", "application/json",
		fmt.Sprintf(`{"message": "beta [run:two]", "stream": false, "session_id": %q}`, first.SessionID), &second)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "COMPLETED", second.Status, second.Error)
	require.Eventually(t, func() bool { return len(fm.seen("fold")) == 2 }, 20*time.Second, 5*time.Millisecond, "the summary job reaches the model")
	p.kill(t)
	open()

	restarted := time.Now()
	p, _ = startReplica(t, cfg)
	var sess struct {
		Summary *struct {
			Summary string `json:"summary"`
		} `json:"session_summary"`
	}
	require.Eventually(t, func() bool {
		status, _ := p.get(t, "/sessions/"+first.SessionID, &sess)
		return status == http.StatusOK && sess.Summary != nil
	}, 30*time.Second, 20*time.Millisecond, "the summary is written after the restart")
	t.Logf("the summary was written %s after the restart", time.Since(restarted).Round(time.Millisecond))
	require.Equal(t, fm.answer("fold"), sess.Summary.Summary)
	time.Sleep(300 * time.Millisecond) // nothing runs afterwards
	calls, _ := fm.counts()
	require.Equal(t, map[string]int{"fold": 3, "two": 1}, calls, "turn 1, the killed summary and its one retry")
}
