package console_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/fake"
)

const reasoningSpecs = `
kind: Model
name: plan-model
provider: anthropic
model: plan-1
api_key: sk-test
---
kind: Model
name: answer-model
provider: anthropic
model: answer-1
api_key: sk-test
---
kind: Agent
name: strategist
description: Plans, then answers.
model: answer-model
instructions: Answer briefly.
reasoning: {model: plan-model, max_steps: 2}
`

// reasoningScript plans with the plan model (three steps, of which
// max_steps keeps two) and answers with the answer model, for a few runs.
func reasoningScript() *fake.Provider {
	var steps []fake.Step
	for range 4 {
		steps = append(steps,
			fake.Step{Match: func(r *model.Request) bool { return r.Model == "plan-1" }, Content: "1. Find the capital.\n2. Say it in one word.\n3. Never shown."},
			fake.Step{Match: func(r *model.Request) bool { return r.Model == "answer-1" }, Deltas: []string{"Par", "is."}},
		)
	}
	return fake.New(steps...)
}

// TestReasoningStreamsAndIsStored: a planning pass streams as
// ReasoningStarted, one ReasoningStep per kept step and ReasoningCompleted
// before the answer; the answering model is given the steps; the stored run
// and RunCompleted carry them as reasoning_steps and, for Agent UI, as
// extra_data.reasoning_steps.
func TestReasoningStreamsAndIsStored(t *testing.T) {
	t.Parallel()
	script := reasoningScript()
	ts := startServer(t, withProvider("anthropic", script), withSpecs(reasoningSpecs))

	frames, _ := ts.stream("/agents/strategist/runs", "", "application/json", `{"message":"Capital of France?"}`)
	require.Equal(t, []string{"RunStarted", "ReasoningStarted", "ReasoningStep", "ReasoningStep", "ReasoningCompleted",
		"RunContent", "RunContent", "RunCompleted"}, names(frames))
	step := frames[2].Data
	require.Equal(t, "Step 1: Find the capital.", step["content"])
	require.Equal(t, "ReasoningStep", step["content_type"])
	require.Equal(t, map[string]any{"title": "Step 1", "action": "Find the capital.", "next_action": "continue", "source": "plan"}, step["reasoning_step"])
	wantSteps := []any{
		map[string]any{"title": "Step 1", "action": "Find the capital.", "next_action": "continue", "source": "plan"},
		map[string]any{"title": "Step 2", "action": "Say it in one word.", "next_action": "final_answer", "source": "plan"},
	}
	require.Equal(t, wantSteps, frames[4].Data["reasoning_steps"])
	done := frames[len(frames)-1].Data
	require.Equal(t, "Paris.", done["content"])
	require.Equal(t, wantSteps, done["reasoning_steps"])
	require.Equal(t, wantSteps, done["extra_data"].(map[string]any)["reasoning_steps"])

	// What the answering model received: its instructions, then the plan.
	var answered []model.Request
	for _, r := range script.Requests() {
		if r.Model == "answer-1" {
			answered = append(answered, r)
		}
	}
	require.Len(t, answered, 1)
	require.Equal(t, "Answer briefly.\n\nBefore answering, you reasoned through these steps; follow them:\n1. Find the capital.\n2. Say it in one word.", answered[0].System)

	var runs []map[string]any
	ts.json(http.MethodGet, "/sessions/"+frames[0].Data["session_id"].(string)+"/runs", "", "", http.StatusOK, &runs)
	require.Len(t, runs, 1)
	require.Equal(t, wantSteps, runs[0]["reasoning_steps"])
	require.Equal(t, wantSteps, runs[0]["extra_data"].(map[string]any)["reasoning_steps"])
	require.Equal(t, 2.0, runs[0]["metrics"].(map[string]any)["model_requests"], "the planning pass counts")
}

// TestConsoleChatShowsReasoning: the console chat streams the reasoning
// into a collapsible block (open while steps arrive, closed with the step
// count when complete), and the session page shows it on the stored run.
func TestConsoleChatShowsReasoning(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withProvider("anthropic", reasoningScript()), withSpecs(reasoningSpecs))
	resp, body := ts.page(http.MethodPost, "/ui/agents/strategist/chat", "", url.Values{"message": {"Capital of France?"}})
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	evs := chatEvents(t, body)
	runID := evs[0].Data["run"]

	var appended, replaced []string
	for _, e := range evs {
		switch {
		case e.Name == "append" && strings.HasPrefix(e.Data["t"], "r-"):
			require.Equal(t, "r-"+runID+"-steps", e.Data["t"])
			appended = append(appended, doc(t, e.Data["h"]).Find(`[data-testid="reasoning-step"]`).Text())
		case e.Name == "replace" && e.Data["t"] == "r-"+runID:
			replaced = append(replaced, e.Data["h"])
		case e.Name == "append" && e.Data["t"] == "s-"+runID:
			opened := doc(t, e.Data["h"]).Find(`details[data-testid="reasoning"]`)
			require.Equal(t, 1, opened.Length())
			_, open := opened.Attr("open")
			require.True(t, open, "the block is open while the steps stream in")
		}
	}
	require.Equal(t, []string{"Step 1 Find the capital.", "Step 2 Say it in one word."}, appended)
	require.Len(t, replaced, 1)
	block := doc(t, replaced[0]).Find(`details[data-testid="reasoning"]`)
	_, open := block.Attr("open")
	require.False(t, open, "a finished block is collapsed")
	require.Equal(t, "2 steps", block.Find(`[data-testid="reasoning-count"]`).Text())
	require.Equal(t, 2, block.Find(`[data-testid="reasoning-step"]`).Length())

	// The session page renders the stored run's reasoning the same way.
	resp, page := ts.page(http.MethodGet, "/ui/sessions/"+evs[0].Data["session"], "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, page)
	stored := doc(t, page).Find(`#run-` + runID + ` details[data-testid="reasoning"]`)
	require.Equal(t, 1, stored.Length())
	require.Equal(t, "Step 2 Say it in one word.", stored.Find(`[data-testid="reasoning-step"]`).Last().Text())
}

const teamReasoningSpecs = reasoningSpecs + `
---
kind: Agent
name: geographer
description: Knows capitals.
model: answer-model
---
kind: Team
name: bureau
mode: coordinate
members: [geographer]
model: lead-model
reasoning: {model: plan-model, max_steps: 2}
---
kind: Model
name: lead-model
provider: anthropic
model: lead-1
api_key: sk-test
`

// TestTeamLeaderReasons: a coordinate team's leader plans before it
// delegates; the plan streams as the team's own reasoning events and is
// stored with the team's run.
func TestTeamLeaderReasons(t *testing.T) {
	t.Parallel()
	isModel := func(id string) func(*model.Request) bool { return func(r *model.Request) bool { return r.Model == id } }
	script := fake.New(
		fake.Step{Match: isModel("plan-1"), Content: "1. Ask the geographer.\n2. Report its answer."},
		fake.Step{Match: isModel("lead-1"), ToolCalls: []model.ToolCall{{ID: "d1", Name: "delegate_task_to_member", Arguments: `{"member":"geographer","task":"Capital of France?"}`}}},
		fake.Step{Match: isModel("answer-1"), Content: "Paris."},
		fake.Step{Match: isModel("lead-1"), Content: "The geographer says Paris."},
	)
	ts := startServer(t, withProvider("anthropic", script), withSpecs(teamReasoningSpecs))
	frames, _ := ts.stream("/teams/bureau/runs", "", "application/json", `{"message":"Capital of France?"}`)
	var reasoning []string
	for _, f := range frames {
		if strings.Contains(f.Event, "Reasoning") {
			reasoning = append(reasoning, f.Event)
		}
	}
	require.Equal(t, []string{"TeamReasoningStarted", "TeamReasoningStep", "TeamReasoningStep", "TeamReasoningCompleted"}, reasoning)
	done := frames[len(frames)-1]
	require.Equal(t, "TeamRunCompleted", done.Event)
	require.Equal(t, "The geographer says Paris.", done.Data["content"])
	require.Len(t, done.Data["reasoning_steps"], 2)

	var lead []model.Request
	for _, r := range script.Requests() {
		if r.Model == "lead-1" {
			lead = append(lead, r)
		}
	}
	require.Len(t, lead, 2)
	require.Contains(t, lead[0].System, "follow them:\n1. Ask the geographer.\n2. Report its answer.")

	var runs []map[string]any
	ts.json(http.MethodGet, "/sessions/"+frames[0].Data["session_id"].(string)+"/runs", "", "", http.StatusOK, &runs)
	require.Len(t, runs, 1)
	require.Len(t, runs[0]["reasoning_steps"], 2)
}

// deepSeekStream is a streamed chat completion as DeepSeek and vLLM send
// it: reasoning_content deltas, then the answer.
const deepSeekStream = `data: {"id":"1","model":"deepseek-reasoner","choices":[{"index":0,"delta":{"role":"assistant","content":null,"reasoning_content":"Six "},"finish_reason":null}]}

data: {"id":"1","model":"deepseek-reasoner","choices":[{"index":0,"delta":{"content":null,"reasoning_content":"sevens."},"finish_reason":null}]}

data: {"id":"1","model":"deepseek-reasoner","choices":[{"index":0,"delta":{"content":"42","reasoning_content":null},"finish_reason":null}]}

data: {"id":"1","model":"deepseek-reasoner","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":5,"total_tokens":14}}

data: [DONE]

`

// deepSeek serves deepSeekStream (or its whole answer when not streamed)
// on loopback.
func deepSeek(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Stream bool `json:"stream"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		if !req.Stream {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"id":"1","model":"deepseek-reasoner","choices":[{"index":0,"message":{"role":"assistant","content":"42","reasoning_content":"Six sevens."},"finish_reason":"stop"}]}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for _, part := range strings.SplitAfter(deepSeekStream, "\n\n") {
			_, _ = io.WriteString(w, part)
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func deepSeekSpecs(url string) string {
	return `
kind: Model
name: reasoner
provider: openai
model: deepseek-reasoner
base_url: ` + url + `
api_key: sk-test
retries: 0
---
kind: Agent
name: thinker
description: Thinks natively.
model: reasoner
`
}

// TestNativeReasoningStreamsLive: a model's native reasoning
// (reasoning_content on the OpenAI wire) streams as it is generated — as
// ReasoningContentDelta events on AgentOS routes, reasoning_content deltas
// on /v1/chat/completions, and text into the console chat's open reasoning
// block — and is then kept whole as one step.
func TestNativeReasoningStreamsLive(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withSpecs(deepSeekSpecs(deepSeek(t))))

	frames, _ := ts.stream("/agents/thinker/runs", "", "application/json", `{"message":"6 times 7?"}`)
	require.Equal(t, []string{"RunStarted", "ReasoningStarted", "ReasoningContentDelta", "ReasoningContentDelta", "RunContent",
		"ReasoningStep", "ReasoningCompleted", "RunCompleted"}, names(frames))
	require.Equal(t, "Six ", frames[2].Data["reasoning_content"])
	require.Equal(t, "sevens.", frames[3].Data["reasoning_content"])
	require.Equal(t, "Six sevens.", frames[5].Data["reasoning_step"].(map[string]any)["reasoning"])
	require.Equal(t, "42", frames[len(frames)-1].Data["content"])

	// The OpenAI-compatible endpoint passes the reasoning on as DeepSeek does.
	status, body, _ := ts.do(http.MethodPost, "/v1/chat/completions", "", "application/json", `{"model":"thinker","stream":true,"messages":[{"role":"user","content":"6 times 7?"}]}`)
	require.Equal(t, http.StatusOK, status, body)
	var reasoning, content strings.Builder
	for _, line := range strings.Split(body, "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var c struct {
			Choices []struct {
				Delta struct {
					Content          string `json:"content"`
					ReasoningContent string `json:"reasoning_content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		require.NoError(t, json.Unmarshal([]byte(data), &c), data)
		for _, ch := range c.Choices {
			reasoning.WriteString(ch.Delta.ReasoningContent)
			content.WriteString(ch.Delta.Content)
		}
	}
	require.Equal(t, "Six sevens.", reasoning.String())
	require.Equal(t, "42", content.String())

	// The console chat writes the text into the open block as it arrives,
	// then empties it when the step it became is listed.
	resp, page := ts.page(http.MethodPost, "/ui/agents/thinker/chat", "", url.Values{"message": {"6 times 7?"}})
	require.Equal(t, http.StatusOK, resp.StatusCode, page)
	evs := chatEvents(t, page)
	live := "r-" + evs[0].Data["run"] + "-live"
	var texts []string
	cleared := false
	for _, e := range evs {
		switch {
		case e.Name == "append" && e.Data["t"] == "s-"+evs[0].Data["run"]:
			require.Equal(t, 1, doc(t, e.Data["h"]).Find(`#`+live).Length(), "the open block has a live paragraph")
		case e.Name == "text" && e.Data["t"] == live:
			require.False(t, cleared)
			texts = append(texts, e.Data["s"])
		case e.Name == "replace" && e.Data["t"] == live:
			cleared = true
			require.Empty(t, doc(t, e.Data["h"]).Find(`#`+live).Text())
		}
	}
	require.Equal(t, []string{"Six ", "sevens."}, texts)
	require.True(t, cleared)
}
