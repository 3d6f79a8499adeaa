package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// memoryCrashSpecs is an agent with automatic memory on an OpenAI-compatible
// model served by the test.
const memoryCrashSpecs = `kind: Model
name: fake
provider: openai
model: fake-1
base_url: %s
api_key: sk-test
retries: 0
---
kind: Agent
name: keeper
description: Remembers its users.
model: fake
instructions: Answer briefly.
memory: automatic
`

// extractionMarker is in the extraction's system prompt (extract.DefaultPrompt),
// never in a run's.
const extractionMarker = "You maintain an assistant"

// extractionOps is the fake model's extraction answer: two memories.
const extractionOps = `[{"op":"add","memory":"The user lives in Lisbon.","topics":["home"]},{"op":"add","memory":"The user keeps bees.","topics":["hobbies"]}]`

// memoryModel is an OpenAI-compatible chat completions server on loopback
// that answers runs at once and holds the first memory extraction until
// its client goes away (the test kills the process); later extractions are
// answered with extractionOps.
type memoryModel struct {
	mu          sync.Mutex
	extractions int
	held        chan struct{} // closed when the first extraction arrived
}

func (f *memoryModel) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var req struct {
		Stream bool `json:"stream"`
	}
	if err != nil || r.URL.Path != "/chat/completions" || json.Unmarshal(body, &req) != nil {
		http.Error(w, "not a chat completion request", http.StatusBadRequest)
		return
	}
	answer := "Noted."
	if strings.Contains(string(body), extractionMarker) {
		f.mu.Lock()
		f.extractions++
		first := f.extractions == 1
		f.mu.Unlock()
		if first {
			close(f.held)
			<-r.Context().Done() // the process was killed mid-job
			return
		}
		answer = extractionOps
	}
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": "c", "object": "chat.completion", "model": "fake-1",
			"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": answer}, "finish_reason": "stop"}}})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	for _, chunk := range []map[string]any{
		{"index": 0, "delta": map[string]any{"content": answer}, "finish_reason": nil},
		{"index": 0, "delta": map[string]any{}, "finish_reason": "stop"},
	} {
		data, _ := json.Marshal(map[string]any{"id": "c", "object": "chat.completion.chunk", "model": "fake-1", "choices": []any{chunk}})
		_, _ = fmt.Fprintf(w, "data: %s\n\n", data)
	}
	_, _ = io.WriteString(w, "data: [DONE]\n\n")
}

func (f *memoryModel) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.extractions
}

// TestMemoryExtractionResumesAfterKill runs an agent with automatic memory
// on SQLite, kills the `troupe serve` process with SIGKILL while the
// run's memory_extract job waits for the model, and restarts it on the same
// database: the job is given back at once (the database is the process's
// alone), its second attempt completes, and the user's memories are stored
// once each.
func TestMemoryExtractionResumesAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills server processes")
	}
	t.Parallel()
	fm := &memoryModel{held: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(fm.serve))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "specs.yaml"), fmt.Appendf(nil, memoryCrashSpecs, srv.URL), 0o644))
	cfg := replicaConfig{name: "solo", db: filepath.Join(t.TempDir(), "troupe.db"), dir: dir}
	p, cfg := startReplica(t, cfg)

	var run runState
	status, _ := p.do(t, http.MethodPost, "/agents/keeper/runs", "application/json",
		`{"message":"I live in Lisbon and I keep bees.","stream":false,"user_id":"alice"}`, &run)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "COMPLETED", run.Status, run.Error)
	select {
	case <-fm.held:
	case <-time.After(10 * time.Second):
		t.Fatal("the run's memory extraction never asked the model")
	}
	job := extractJob(t, p)
	require.Equal(t, "running", job.State)
	require.Equal(t, 1, job.Attempt)
	p.kill(t)

	p, _ = startReplica(t, cfg)
	require.Eventually(t, func() bool { return extractJob(t, p).State == "completed" }, 15*time.Second, 20*time.Millisecond,
		"the killed process's job is given back and completes")
	job = extractJob(t, p)
	require.Equal(t, 2, job.Attempt, "the second attempt completed it")
	require.Equal(t, 2, fm.count(), "the model was asked once per attempt")

	want := []string{"The user keeps bees.", "The user lives in Lisbon."}
	require.Equal(t, want, memoryTexts(t, p, "alice"))
	// Nothing more happens: the completed job is not run again.
	time.Sleep(300 * time.Millisecond)
	require.Equal(t, want, memoryTexts(t, p, "alice"), "each memory stored once")
	require.Equal(t, 2, fm.count())
}

// extractJob is the one memory_extract job on the replica's queues.
type extractJobState struct {
	State   string `json:"state"`
	Attempt int    `json:"attempt"`
}

func extractJob(t *testing.T, p *replica) extractJobState {
	t.Helper()
	var page struct {
		Data []extractJobState `json:"data"`
	}
	status, _ := p.get(t, "/queue/jobs?kind=memory_extract", &page)
	require.Equal(t, http.StatusOK, status)
	require.Len(t, page.Data, 1, "one extraction job for the one run")
	return page.Data[0]
}

// memoryTexts lists a user's memories, sorted.
func memoryTexts(t *testing.T, p *replica, user string) []string {
	t.Helper()
	var page struct {
		Data []struct {
			Memory string `json:"memory"`
		} `json:"data"`
	}
	status, _ := p.get(t, "/memories?user_id="+user+"&limit=100", &page)
	require.Equal(t, http.StatusOK, status)
	var out []string
	for _, m := range page.Data {
		out = append(out, m.Memory)
	}
	slices.Sort(out)
	return out
}
