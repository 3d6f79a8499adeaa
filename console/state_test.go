package console_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/fake"
)

const stateAgent = historyModels + "kind: Agent\nname: keeper\nmodel: scripted\nsession_state: true\nhistory: 0\n"

func setStateCall(values string) fake.Step {
	return fake.Step{ToolCalls: []model.ToolCall{{ID: "s1", Name: "set_state", Arguments: `{"values":` + values + `}`}}}
}

type sessionState struct {
	SessionState map[string]any `json:"session_state"`
}

// TestAgentSessionState: a set_state call in turn 1 is in turn 2's model
// request (instructions), the session routes return it, and a request's
// session_state merges into it.
func TestAgentSessionState(t *testing.T) {
	t.Parallel()
	script := fake.New(setStateCall(`{"city":"Lyon","count":2}`), fake.Step{Content: "noted"}, fake.Step{Content: "you live in Lyon"}, fake.Step{Content: "ok"})
	ts := startServer(t, withProvider("anthropic", script), withSpecs(stateAgent))

	var run runJSON
	ts.json(http.MethodPost, "/agents/keeper/runs", "", `{"message":"I live in Lyon","stream":false}`, http.StatusOK, &run)
	ts.json(http.MethodPost, "/agents/keeper/runs", "", `{"message":"where do I live?","stream":false,"session_id":"`+run.SessionID+`"}`, http.StatusOK, nil)

	reqs := script.Requests()
	require.Len(t, reqs, 3)
	require.Equal(t, "The session state (JSON; read it with get_state, change it with set_state):\n{}", reqs[0].System)
	var names []string
	for _, d := range reqs[0].Tools {
		names = append(names, d.Name)
	}
	require.Equal(t, []string{"get_state", "set_state"}, names)
	require.Equal(t, model.Message{Role: model.RoleTool, ToolCallID: "s1", Name: "set_state", Content: `{"city":"Lyon","count":2}`}, reqs[1].Messages[2])
	require.Equal(t, "The session state (JSON; read it with get_state, change it with set_state):\n{\"city\":\"Lyon\",\"count\":2}", reqs[2].System)

	waitState(t, ts, run.SessionID, "", map[string]any{"city": "Lyon", "count": float64(2)})

	// A request's session_state merges (null deletes) and the run sees it.
	ts.json(http.MethodPost, "/agents/keeper/runs", "", `{"message":"hi","stream":false,"session_id":"`+run.SessionID+`","session_state":{"count":null,"lang":"fr"}}`, http.StatusOK, nil)
	require.Equal(t, "The session state (JSON; read it with get_state, change it with set_state):\n{\"city\":\"Lyon\",\"lang\":\"fr\"}", script.Requests()[3].System)
	waitState(t, ts, run.SessionID, "", map[string]any{"city": "Lyon", "lang": "fr"})

	// The console's session page shows it.
	resp, body := ts.page("GET", "/ui/sessions/"+run.SessionID, "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, body, `<section aria-label="Session state" data-testid="session-state"><h2>Session state</h2><pre>{
  &#34;city&#34;: &#34;Lyon&#34;,
  &#34;lang&#34;: &#34;fr&#34;
}</pre></section>`)
}

// TestSessionStateBounds: a tool call or a request that would take the state
// past its bounds is refused with an error saying what to do, and the state
// is unchanged.
func TestSessionStateBounds(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 64<<10)
	var many []string
	for i := range 101 {
		many = append(many, fmt.Sprintf(`"k%d":1`, i))
	}
	for _, tc := range []struct{ name, values, want string }{
		{"bytes", `{"blob":"` + big + `"}`, "Error: set_state: the session state would take 65547 bytes as JSON, more than 65536: keep smaller values in it"},
		{"keys", "{" + strings.Join(many, ",") + "}", "Error: set_state: the session state would hold 101 keys, more than 100: write fewer keys or reuse them"},
		{"not an object", `"x"`, `Error: set_state needs {"values": {"key": value, ...}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			script := fake.New(setStateCall(tc.values), fake.Step{Content: "could not"})
			ts := startServer(t, withProvider("anthropic", script), withSpecs(stateAgent))
			var run runJSON
			ts.json(http.MethodPost, "/agents/keeper/runs", "", `{"message":"remember","stream":false}`, http.StatusOK, &run)
			reqs := script.Requests()
			require.Len(t, reqs, 2)
			result := reqs[1].Messages[2]
			require.True(t, result.IsError)
			require.Equal(t, tc.want, result.Content)
			// The run is stored once its answer is sent: wait for it, then
			// the state is still empty.
			waitRun(t, ts, "/agents/keeper/runs/"+run.RunID, "COMPLETED")
			var got sessionState
			ts.json(http.MethodGet, "/sessions/"+run.SessionID, "", "", http.StatusOK, &got)
			require.Empty(t, got.SessionState)
		})
	}

	script := fake.New()
	script.Repeat = &fake.Step{Content: "ok"}
	ts := startServer(t, withProvider("anthropic", script), withSpecs(stateAgent))
	status, body, _ := ts.do(http.MethodPost, "/agents/keeper/runs", "", "application/json", `{"message":"hi","stream":false,"session_state":{"blob":"`+big+`"}}`)
	require.Equal(t, http.StatusUnprocessableEntity, status, body)
	require.Contains(t, body, "session_state: the session state would take 65547 bytes as JSON, more than 65536: keep smaller values in it")
	require.Empty(t, script.Requests(), "a refused request runs nothing")
	status, body, _ = ts.do(http.MethodPost, "/agents/keeper/runs", "", "application/json", `{"message":"hi","background":true,"session_state":{"a":1}}`)
	require.Equal(t, http.StatusUnprocessableEntity, status, body)
	require.Contains(t, body, "session_state cannot be sent with background: true")
}

// TestSessionStateIsolation: another user's session state is never readable,
// neither through the session routes nor by continuing or merging into it.
func TestSessionStateIsolation(t *testing.T) {
	t.Parallel()
	script := fake.New(setStateCall(`{"secret":"alice's"}`), fake.Step{Content: "noted"})
	script.Repeat = &fake.Step{Content: "ok"}
	ts := startServer(t, withKeys(keys), withProvider("anthropic", script), withSpecs(stateAgent))
	var run runJSON
	ts.json(http.MethodPost, "/agents/keeper/runs", aliceKey, `{"message":"keep this","stream":false}`, http.StatusOK, &run)
	waitState(t, ts, run.SessionID, aliceKey, map[string]any{"secret": "alice's"})

	ts.json(http.MethodGet, "/sessions/"+run.SessionID, bobKey, "", http.StatusNotFound, nil)
	ts.json(http.MethodPost, "/agents/keeper/runs", bobKey, `{"message":"what is the secret?","stream":false,"session_id":"`+run.SessionID+`"}`, http.StatusNotFound, nil)
	ts.json(http.MethodPost, "/agents/keeper/runs", bobKey, `{"message":"x","stream":false,"session_id":"`+run.SessionID+`","session_state":{"secret":"bob's"}}`, http.StatusNotFound, nil)
	// Bob's own session starts empty; his model never saw alice's state.
	ts.json(http.MethodPost, "/agents/keeper/runs", bobKey, `{"message":"what is the secret?","stream":false}`, http.StatusOK, nil)
	for _, r := range script.Requests()[2:] {
		require.NotContains(t, r.System, "alice's")
	}
	var got sessionState
	ts.json(http.MethodGet, "/sessions/"+run.SessionID, aliceKey, "", http.StatusOK, &got)
	require.Equal(t, map[string]any{"secret": "alice's"}, got.SessionState, "bob's merge never landed")
}

// waitState waits for session id's stored state to be want: a run's answer
// is sent before the run and its state are stored.
func waitState(t *testing.T, ts *testServer, id, key string, want map[string]any) {
	t.Helper()
	var got sessionState
	require.Eventually(t, func() bool {
		got = sessionState{}
		status, body, _ := ts.do(http.MethodGet, "/sessions/"+id, key, "", "")
		return status == http.StatusOK && json.Unmarshal([]byte(body), &got) == nil && reflect.DeepEqual(want, got.SessionState)
	}, 5*time.Second, 10*time.Millisecond, "session %s state: got %v, want %v", id, got.SessionState, want)
}

// TestTeamSessionState: members with session_state share the session's
// state in every mode; what one sets in turn 1 is in turn 2's request, and
// the session routes return it.
func TestTeamSessionState(t *testing.T) {
	t.Parallel()
	route := fake.Step{ToolCalls: []model.ToolCall{{ID: "r", Name: "route_to_member", Arguments: `{"member":"st-keeper"}`}}}
	delegate := fake.Step{ToolCalls: []model.ToolCall{{ID: "d", Name: "delegate_task_to_member", Arguments: `{"member":"st-keeper","task":"do it"}`}}}
	for _, tc := range []struct {
		mode   string
		leader []fake.Step
	}{
		{"route", []fake.Step{route, route}},
		{"coordinate", []fake.Step{delegate, {Content: "done 1"}, delegate, {Content: "done 2"}}},
		{"broadcast", []fake.Step{{Content: "done 1"}, {Content: "done 2"}}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			leader := fake.New(tc.leader...)
			members := fake.New(setStateCall(`{"step":1}`), fake.Step{Content: "noted"}, fake.Step{Content: "ok"})
			specs := historyModels + "kind: Agent\nname: st-keeper\ndescription: Keeps.\nmodel: scripted\nsession_state: true\nhistory: 0\n---\n" +
				"kind: Team\nname: st-crew\nmode: " + tc.mode + "\nmodel: lead\nmembers: [st-keeper]\nhistory: 0\n"
			ts := startServer(t, withProvider("ollama", leader), withProvider("anthropic", members), withSpecs(specs))
			var run runJSON
			ts.json(http.MethodPost, "/teams/st-crew/runs", "", `{"message":"first","stream":false}`, http.StatusOK, &run)
			waitState(t, ts, run.SessionID, "", map[string]any{"step": float64(1)})
			ts.json(http.MethodPost, "/teams/st-crew/runs", "", `{"message":"second","stream":false,"session_id":"`+run.SessionID+`"}`, http.StatusOK, nil)
			reqs := members.Requests()
			require.Len(t, reqs, 3)
			require.Equal(t, "The session state (JSON; read it with get_state, change it with set_state):\n{\"step\":1}", reqs[2].System)
		})
	}
}

// TestTeamLeaderSessionState: a coordinate or broadcast team with
// session_state gives its leader the state and the state tools; what the
// leader sets in turn 1 is in its instructions in turn 2, while a member
// that did not opt in never sees it.
func TestTeamLeaderSessionState(t *testing.T) {
	t.Parallel()
	delegate := fake.Step{ToolCalls: []model.ToolCall{{ID: "d", Name: "delegate_task_to_member", Arguments: `{"member":"st-helper","task":"do it"}`}}}
	for _, tc := range []struct {
		mode   string
		leader []fake.Step
	}{
		{"coordinate", []fake.Step{setStateCall(`{"plan":"A"}`), delegate, {Content: "done 1"}, {Content: "done 2"}}},
		{"broadcast", []fake.Step{setStateCall(`{"plan":"A"}`), {Content: "done 1"}, {Content: "done 2"}}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			leader := fake.New(tc.leader...)
			members := fake.New(fake.Step{Content: "helped"}, fake.Step{Content: "helped again"})
			specs := historyModels + "kind: Agent\nname: st-helper\ndescription: Helps.\nmodel: scripted\nhistory: 0\n---\n" +
				"kind: Team\nname: st-lead\nmode: " + tc.mode + "\nmodel: lead\nmembers: [st-helper]\nhistory: 0\nsession_state: true\n"
			ts := startServer(t, withProvider("ollama", leader), withProvider("anthropic", members), withSpecs(specs))
			var run runJSON
			ts.json(http.MethodPost, "/teams/st-lead/runs", "", `{"message":"first","stream":false}`, http.StatusOK, &run)
			waitState(t, ts, run.SessionID, "", map[string]any{"plan": "A"})
			ts.json(http.MethodPost, "/teams/st-lead/runs", "", `{"message":"second","stream":false,"session_id":"`+run.SessionID+`"}`, http.StatusOK, nil)

			reqs := leader.Requests()
			require.Len(t, reqs, len(tc.leader))
			const section = "The session state (JSON; read it with get_state, change it with set_state):\n"
			require.True(t, strings.HasSuffix(reqs[0].System, section+"{}"), reqs[0].System)
			last := reqs[len(reqs)-1]
			require.True(t, strings.HasSuffix(last.System, section+`{"plan":"A"}`), last.System)
			var tools []string
			for _, d := range last.Tools {
				tools = append(tools, d.Name)
			}
			require.Contains(t, tools, "get_state")
			require.Contains(t, tools, "set_state")
			for _, r := range members.Requests() {
				require.NotContains(t, r.System, "plan", "a member without session_state never sees the state")
			}
		})
	}
}
