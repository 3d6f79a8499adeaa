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

	"github.com/troupehq/troupe/engine/knowledge/embed"
)

// memoryCrashSpecs is an agent with automatic memory on an OpenAI-compatible
// model served by the test, and a knowledge base embedding through the same
// endpoint, which indexes the memories when --memory-knowledge names it.
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
---
kind: Knowledge
name: recall
embedder: {model: fake, dimensions: 96}
`

// extractionMarker is in the extraction's system prompt (extract.DefaultPrompt),
// never in a run's.
const extractionMarker = "You maintain an assistant"

// extractionOps is the fake model's extraction answer: two memories.
const extractionOps = `[{"op":"add","memory":"The user lives in Lisbon.","topics":["home"]},{"op":"add","memory":"The user keeps bees.","topics":["hobbies"]}]`

// memoryModel is an OpenAI-compatible server on loopback: chat completions
// answer runs at once and extractions with extractionOps; embeddings are
// the local embedder's. It holds one request until its client goes away
// (the test kills the process): the first extraction (holdExtraction), or
// the first embedding of a text holding heldMemory (the index embeds a
// memory's text with its topics).
type memoryModel struct {
	holdExtraction bool
	heldMemory     string
	held           chan struct{} // closed when the held request arrived

	mu          sync.Mutex
	extractions int
	holding     bool
}

// hold reports whether this request is the one to hold, once.
func (f *memoryModel) hold(match bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !match || f.holding {
		return false
	}
	f.holding = true
	close(f.held)
	return true
}

func (f *memoryModel) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "reading the request", http.StatusBadRequest)
		return
	}
	if r.URL.Path == "/embeddings" {
		f.embed(w, r, body)
		return
	}
	var req struct {
		Stream bool `json:"stream"`
	}
	if r.URL.Path != "/chat/completions" || json.Unmarshal(body, &req) != nil {
		http.Error(w, "not a chat completion request", http.StatusBadRequest)
		return
	}
	answer := "Noted."
	if strings.Contains(string(body), extractionMarker) {
		f.mu.Lock()
		f.extractions++
		f.mu.Unlock()
		if f.hold(f.holdExtraction) {
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

// embed answers an embeddings request with the local embedder's vectors.
func (f *memoryModel) embed(w http.ResponseWriter, r *http.Request, body []byte) {
	var req struct {
		Input      []string `json:"input"`
		Dimensions int      `json:"dimensions"`
	}
	if json.Unmarshal(body, &req) != nil || req.Dimensions <= 0 {
		http.Error(w, `{"error":{"message":"bad request"}}`, http.StatusBadRequest)
		return
	}
	if f.hold(f.heldMemory != "" && slices.ContainsFunc(req.Input, func(in string) bool { return strings.Contains(in, f.heldMemory) })) {
		<-r.Context().Done() // the process was killed mid-job
		return
	}
	vecs, err := embed.NewLocal(embed.LocalOptions{Dimension: req.Dimensions}).Embed(r.Context(), req.Input)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	data := make([]map[string]any, len(vecs))
	for i, v := range vecs {
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": v}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data, "model": "fake-1"})
}

func (f *memoryModel) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.extractions
}

// TestMemoryExtractionResumesAfterKill runs an agent with automatic memory
// on SQLite, kills the `troupe serve` process with SIGKILL while the run's
// memory_extract job is in progress, and restarts it on the same database:
// the job is given back at once (the database is the process's alone), its
// second attempt completes, and the user's memories are stored once each —
// also when the first attempt had stored one of them before the kill.
func TestMemoryExtractionResumesAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills server processes")
	}
	t.Parallel()
	tests := []struct {
		name           string
		holdExtraction bool
		heldMemory     string
		extra          []string
		// stored are the memories in the database at the kill.
		stored []string
	}{
		{name: "killed while the model answers", holdExtraction: true},
		{name: "killed after one memory was stored", heldMemory: "The user lives in Lisbon.",
			// Memories indexed through the test's embedder, which holds
			// the first memory's embedding: its row is written, the
			// second add has not started.
			extra: []string{"--memory-knowledge", "recall"}, stored: []string{"The user lives in Lisbon."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fm := &memoryModel{holdExtraction: tt.holdExtraction, heldMemory: tt.heldMemory, held: make(chan struct{})}
			srv := httptest.NewServer(http.HandlerFunc(fm.serve))
			t.Cleanup(srv.Close)
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "specs.yaml"), fmt.Appendf(nil, memoryCrashSpecs, srv.URL), 0o644))
			cfg := replicaConfig{name: "solo", db: filepath.Join(t.TempDir(), "troupe.db"), dir: dir, extra: tt.extra}
			p, cfg := startReplica(t, cfg)

			var run runState
			status, _ := p.do(t, http.MethodPost, "/agents/keeper/runs", "application/json",
				`{"message":"I live in Lisbon and I keep bees.","stream":false,"user_id":"alice"}`, &run)
			require.Equal(t, http.StatusOK, status)
			require.Equal(t, "COMPLETED", run.Status, run.Error)
			select {
			case <-fm.held:
			case <-time.After(10 * time.Second):
				t.Fatal("the run's memory extraction never reached the held request")
			}
			job := extractJob(t, p)
			require.Equal(t, "running", job.State)
			require.Equal(t, 1, job.Attempt)
			require.Equal(t, tt.stored, memoryTexts(t, p, "alice"), "stored before the kill")
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
		})
	}
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
