package console_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	sdk "github.com/a2aproject/a2a-go/a2a"
	"github.com/a2aproject/a2a-go/a2aclient"
	"github.com/a2aproject/a2a-go/a2aclient/agentcard"
	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/fake"
)

// bearer adds a Troupe API key to every request of an A2A client.
type bearer struct{ key string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if b.key != "" {
		r.Header.Set("Authorization", "Bearer "+b.key)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// a2aClient resolves the card of target (agents/name, teams/name) with the
// SDK's resolver and returns the SDK's client for it, sending key.
func a2aClient(t *testing.T, ts *testServer, target, key string) (*a2aclient.Client, *sdk.AgentCard) {
	t.Helper()
	hc := &http.Client{Transport: bearer{key}, Timeout: 30 * time.Second}
	card, err := agentcard.NewResolver(hc).Resolve(t.Context(), ts.url+"/a2a/"+target)
	require.NoError(t, err)
	c, err := a2aclient.NewFromCard(t.Context(), card, a2aclient.WithJSONRPCTransport(hc))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Destroy() })
	return c, card
}

func textOf(parts sdk.ContentParts) string {
	var b strings.Builder
	for _, p := range parts {
		if tp, ok := p.(sdk.TextPart); ok {
			b.WriteString(tp.Text)
		}
	}
	return b.String()
}

func userText(s, contextID string) *sdk.MessageSendParams {
	m := sdk.NewMessage(sdk.MessageRoleUser, sdk.TextPart{Text: s})
	m.ContextID = contextID
	return &sdk.MessageSendParams{Message: m}
}

const a2aSpecs = historyModels + "kind: Agent\nname: helper\ndescription: Answers questions.\nmodel: scripted\n"

// TestA2AServer: the A2A SDK's client reads an agent's card, sends a
// message (a completed task whose context is the session: the second turn
// sees the first), streams one (the answer's chunks arrive as artifact
// appends) and cancels a task whose model blocks; tasks/get answers each
// state.
func TestA2AServer(t *testing.T) {
	t.Parallel()
	script := fake.New(
		fake.Step{Content: "Paris"},
		fake.Step{Deltas: []string{"Ly", "on"}},
		fake.Step{Deltas: []string{"thinking"}, Block: true},
	)
	ts := startServer(t, withProvider("anthropic", script), withSpecs(a2aSpecs), withKeys(keys))
	c, card := a2aClient(t, ts, "agents/helper", aliceKey)
	require.Equal(t, "helper", card.Name)
	require.Equal(t, "Answers questions.", card.Description)
	require.Equal(t, ts.url+"/a2a/agents/helper", card.URL)
	require.True(t, card.Capabilities.Streaming)
	require.Equal(t, []string{"text/plain"}, card.DefaultInputModes)
	require.Equal(t, []sdk.AgentSkill{{ID: "agents/helper", Name: "helper", Description: "Answers questions.", Tags: []string{"agent"}}}, card.Skills)

	// message/send: a completed task with the answer; taskId is the run,
	// contextId the session.
	res, err := c.SendMessage(t.Context(), userText("capital of France?", ""))
	require.NoError(t, err)
	task, ok := res.(*sdk.Task)
	require.True(t, ok, "%T", res)
	require.Equal(t, sdk.TaskStateCompleted, task.Status.State)
	require.Len(t, task.Artifacts, 1)
	require.Equal(t, "Paris", textOf(task.Artifacts[0].Parts))
	var run runJSON
	ts.json(http.MethodGet, "/agents/helper/runs/"+string(task.ID), aliceKey, "", http.StatusOK, &run)
	require.Equal(t, task.ContextID, run.SessionID)
	require.Equal(t, "Paris", run.Content)

	// message/stream in the same context: chunks, then completed; the model
	// saw the first turn as history.
	var chunks []string
	var states []sdk.TaskState
	var streamed sdk.TaskID
	for ev, err := range c.SendStreamingMessage(t.Context(), userText("and of Rhône?", task.ContextID)) {
		require.NoError(t, err)
		switch ev := ev.(type) {
		case *sdk.Task:
			streamed = ev.ID
			require.Equal(t, task.ContextID, ev.ContextID)
			states = append(states, ev.Status.State)
		case *sdk.TaskArtifactUpdateEvent:
			if s := textOf(ev.Artifact.Parts); s != "" {
				chunks = append(chunks, s)
			}
		case *sdk.TaskStatusUpdateEvent:
			require.True(t, ev.Final)
			states = append(states, ev.Status.State)
		}
	}
	require.Equal(t, []string{"Ly", "on"}, chunks)
	require.Equal(t, []sdk.TaskState{sdk.TaskStateWorking, sdk.TaskStateCompleted}, states)
	reqs := script.Requests()
	require.Equal(t, []model.Message{user("capital of France?"), assistant("Paris"), user("and of Rhône?")}, reqs[1].Messages)
	got, err := c.GetTask(t.Context(), &sdk.TaskQueryParams{ID: streamed})
	require.NoError(t, err)
	require.Equal(t, sdk.TaskStateCompleted, got.Status.State)
	require.Equal(t, "Lyon", textOf(got.Artifacts[0].Parts))

	// A blocked model: the stream's first event names the task, tasks/get
	// says working, tasks/cancel ends it canceled and the stream says so.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var final sdk.TaskState
	for ev, err := range c.SendStreamingMessage(ctx, userText("think hard", "")) {
		require.NoError(t, err)
		switch ev := ev.(type) {
		case *sdk.TaskArtifactUpdateEvent:
			// The blocked model has streamed its chunk: the run is working.
			if textOf(ev.Artifact.Parts) != "thinking" {
				continue
			}
			got, err := c.GetTask(ctx, &sdk.TaskQueryParams{ID: ev.TaskID})
			require.NoError(t, err)
			require.Equal(t, sdk.TaskStateWorking, got.Status.State)
			canceled, err := c.CancelTask(ctx, &sdk.TaskIDParams{ID: ev.TaskID})
			require.NoError(t, err)
			require.Equal(t, sdk.TaskStateCanceled, canceled.Status.State)
			_, err = c.CancelTask(ctx, &sdk.TaskIDParams{ID: ev.TaskID})
			require.ErrorIs(t, err, sdk.ErrTaskNotCancelable)
		case *sdk.TaskStatusUpdateEvent:
			final = ev.Status.State
		}
	}
	require.Equal(t, sdk.TaskStateCanceled, final)

	// Tasks are the caller's: bob's key finds none of alice's.
	bobc, _ := a2aClient(t, ts, "agents/helper", bobKey)
	_, err = bobc.GetTask(t.Context(), &sdk.TaskQueryParams{ID: task.ID})
	require.ErrorIs(t, err, sdk.ErrTaskNotFound)
}

// TestA2AAuth: without a key nothing is served; a key without agents:run
// reads the cards but is refused every JSON-RPC method; the directory card
// lists every target.
func TestA2AAuth(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withProvider("anthropic", fake.New(fake.Step{Content: "never"})), withSpecs(a2aSpecs), withKeys(keys))
	status, _, _ := ts.do(http.MethodGet, "/.well-known/agent-card.json", "", "", "")
	require.Equal(t, http.StatusUnauthorized, status)
	status, _, _ = ts.do(http.MethodPost, "/a2a/agents/helper", "", "application/json", `{"jsonrpc":"2.0","id":1,"method":"message/send"}`)
	require.Equal(t, http.StatusUnauthorized, status)

	c, _ := a2aClient(t, ts, "agents/helper", readerKey)
	_, err := c.SendMessage(t.Context(), userText("hi", ""))
	require.Error(t, err)
	status, body, _ := ts.do(http.MethodPost, "/a2a/agents/helper", readerKey, "application/json",
		`{"jsonrpc":"2.0","id":1,"method":"message/send","params":{"message":{"kind":"message","messageId":"m1","role":"user","parts":[{"kind":"text","text":"hi"}]}}}`)
	require.Equal(t, http.StatusForbidden, status)
	require.Contains(t, body, "agents:run")
	require.Empty(t, fakeRequests(t, ts))

	hc := &http.Client{Transport: bearer{readerKey}}
	dir, err := agentcard.NewResolver(hc).Resolve(t.Context(), ts.url)
	require.NoError(t, err)
	var ids []string
	for _, s := range dir.Skills {
		ids = append(ids, s.ID)
	}
	require.Contains(t, ids, "agents/helper")
	require.Contains(t, ids, "agents/calc")
	require.Equal(t, "bearer", func() string {
		for name := range dir.SecuritySchemes {
			return string(name)
		}
		return ""
	}())

	status, body, _ = ts.do(http.MethodGet, "/a2a/agents/nobody/.well-known/agent-card.json", readerKey, "", "")
	require.Equal(t, http.StatusNotFound, status)
	require.Contains(t, body, "lists every target")
}

// fakeRequests counts the runs stored so far: a refused request starts none.
func fakeRequests(t *testing.T, ts *testServer) []runJSON {
	t.Helper()
	var runs []runJSON
	ts.json(http.MethodGet, "/agents/helper/runs", adminKey, "", http.StatusOK, &runs)
	return runs
}

// TestA2ARemoteMember: a Troupe team lists a remote A2A agent (another
// Troupe server on loopback, reached with its API key) as a member; the
// team's stream shows the remote answer's chunks as the member's content,
// and an agent calls the same remote agent as a tool.
func TestA2ARemoteMember(t *testing.T) {
	t.Parallel()
	remoteModel := fake.New()
	remoteModel.Repeat = &fake.Step{Deltas: []string{"Bon", "jour"}}
	remote := startServer(t, withProvider("anthropic", remoteModel), withKeys(keys),
		withSpecs(historyModels+"kind: Agent\nname: scribe\ndescription: Writes greetings.\nmodel: scripted\n"))

	lead := fake.New(
		fake.Step{ToolCalls: []model.ToolCall{{ID: "r1", Name: "route_to_member", Arguments: `{"member":"a2a:writer","task":"greet in French"}`}}},
	)
	asker := fake.New(
		fake.Step{ToolCalls: []model.ToolCall{{ID: "t1", Name: "writer", Arguments: `{"message":"greet me"}`}}},
		fake.Step{Content: "they said Bonjour"},
	)
	local := startServer(t, withProvider("ollama", lead), withProvider("anthropic", asker), withSpecs(historyModels+`kind: Tool
name: writer
type: a2a
description: A remote writer.
url: `+remote.url+`/a2a/agents/scribe
headers:
  Authorization: Bearer `+aliceKey+`
allowed_hosts: ["127.0.0.1"]
---
kind: Team
name: crew-remote
mode: route
model: lead
members: ["a2a:writer"]
---
kind: Agent
name: asker
model: scripted
tools: [writer]
`))

	var team struct {
		Members []map[string]string `json:"members"`
	}
	local.json(http.MethodGet, "/teams/crew-remote", "", "", http.StatusOK, &team)
	require.Equal(t, []map[string]string{{"id": "a2a:writer", "name": "a2a:writer", "type": "a2a"}}, team.Members)

	frames, _ := local.stream("/teams/crew-remote/runs", "", "application/json", `{"message":"say hello"}`)
	var chunks []string
	for _, f := range frames {
		if f.Event == "RunContent" && f.Data["agent_id"] == "a2a:writer" {
			chunks = append(chunks, f.Data["content"].(string))
		}
	}
	require.Equal(t, []string{"Bon", "jour"}, chunks)
	last := frames[len(frames)-1]
	require.Equal(t, "TeamRunCompleted", last.Event)
	require.Equal(t, "Bonjour", last.Data["content"])
	require.Equal(t, "greet in French", remoteModel.Requests()[0].Messages[0].Content)

	// The remote run is alice's, in the remote server's sessions.
	var runs []runJSON
	remote.json(http.MethodGet, "/agents/scribe/runs", aliceKey, "", http.StatusOK, &runs)
	require.Len(t, runs, 1)
	require.Equal(t, "Bonjour", runs[0].Content)

	// As a tool: the answer is the tool result the model reads.
	var run runJSON
	local.json(http.MethodPost, "/agents/asker/runs", "", `{"message":"ask the writer","stream":false}`, http.StatusOK, &run)
	require.Equal(t, "they said Bonjour", run.Content)
	require.Equal(t, model.Message{Role: model.RoleTool, ToolCallID: "t1", Name: "writer", Content: "Bonjour"}, asker.Requests()[1].Messages[2])
}

// TestA2ARemoteRefused: the egress guard applies to remote agents (loopback
// is refused unless allowed), and a remote refusal (no key) is the member's
// error, not a hang.
func TestA2ARemoteRefused(t *testing.T) {
	t.Parallel()
	remote := startServer(t, withProvider("anthropic", fake.New()), withKeys(keys),
		withSpecs(historyModels+"kind: Agent\nname: scribe\nmodel: scripted\n"))
	asker := fake.New(
		fake.Step{ToolCalls: []model.ToolCall{{ID: "t1", Name: "guarded", Arguments: `{"message":"hi"}`}, {ID: "t2", Name: "keyless", Arguments: `{"message":"hi"}`}}},
		fake.Step{Content: "done"},
	)
	local := startServer(t, withProvider("anthropic", asker), withSpecs(historyModels+`kind: Tool
name: guarded
type: a2a
url: `+remote.url+`/a2a/agents/scribe
---
kind: Tool
name: keyless
type: a2a
url: `+remote.url+`/a2a/agents/scribe
allowed_hosts: ["127.0.0.1"]
---
kind: Agent
name: asker
model: scripted
tools: [guarded, keyless]
`))
	local.json(http.MethodPost, "/agents/asker/runs", "", `{"message":"ask","stream":false}`, http.StatusOK, nil)
	msgs := asker.Requests()[1].Messages
	require.Contains(t, msgs[2].Content, "refusing to connect to 127.0.0.1")
	require.Contains(t, msgs[3].Content, "401 Unauthorized")
	var runs []runJSON
	remote.json(http.MethodGet, "/agents/scribe/runs", adminKey, "", http.StatusOK, &runs)
	require.Empty(t, runs)
}

// TestA2AInputRequired: a run paused on an approval is an input-required
// task (message/send and tasks/get say so, with what it waits for), and
// tasks/cancel ends it canceled.
func TestA2AInputRequired(t *testing.T) {
	t.Parallel()
	ts, _, up := startApprovals(t, "1h", refundCall)
	c, _ := a2aClient(t, ts, "agents/clerk", "")
	res, err := c.SendMessage(t.Context(), userText("refund order A1", ""))
	require.NoError(t, err)
	task := res.(*sdk.Task)
	require.Equal(t, sdk.TaskStateInputRequired, task.Status.State)
	require.Contains(t, textOf(task.Status.Message.Parts), "waiting for approval")
	got, err := c.GetTask(t.Context(), &sdk.TaskQueryParams{ID: task.ID})
	require.NoError(t, err)
	require.Equal(t, sdk.TaskStateInputRequired, got.Status.State)

	canceled, err := c.CancelTask(t.Context(), &sdk.TaskIDParams{ID: task.ID})
	require.NoError(t, err)
	require.Equal(t, sdk.TaskStateCanceled, canceled.Status.State)
	require.Empty(t, up.got(), "the held refund never ran")
}

// TestA2AConcurrentRuns: a message is a run like any other: a key allowed
// one run at a time is refused a second while its first, sent over A2A,
// runs, with an error naming the limit; the API counts the A2A run too, and
// once it ends the next message goes through.
func TestA2AConcurrentRuns(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withLimits(rateKeys(t, "{concurrent_runs: 1}"), auth.RateLimit{}, time.Now))
	c, _ := a2aClient(t, ts, "agents/writer", rlAppKey)
	first := make(chan error, 1)
	go func() {
		_, err := c.SendMessage(t.Context(), userText("please block", ""))
		first <- err
	}()
	runID := waitBlockingRun(t, ts, "/agents/writer/runs", first, func(err error) string { return fmt.Sprint(err) })

	_, err := c.SendMessage(t.Context(), userText("hi", ""))
	require.ErrorIs(t, err, sdk.ErrServerError)
	require.ErrorContains(t, err, "concurrent runs limit reached for key:app: 1 of 1 runs are pending or running; retry when one ends")
	status, body, _ := ts.do(http.MethodPost, "/agents/writer/runs", rlAppKey, "application/json", `{"message":"hi","stream":false}`)
	require.Equal(t, http.StatusTooManyRequests, status, body)

	ts.json(http.MethodPost, "/agents/writer/runs/"+runID+"/cancel", rlAdminKey, "", http.StatusOK, nil)
	ts.waitStatus(t, runID, "CANCELLED")
	<-first
	res, err := c.SendMessage(t.Context(), userText("hi", ""))
	require.NoError(t, err)
	task, ok := res.(*sdk.Task)
	require.True(t, ok, "%T", res)
	require.Equal(t, sdk.TaskStateCompleted, task.Status.State)
}
