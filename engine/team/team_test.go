package team_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/troupehq/troupe/engine/agent"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/echo"
	"github.com/troupehq/troupe/engine/model/fake"
	"github.com/troupehq/troupe/engine/team"
	"github.com/troupehq/troupe/spec"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var limits = spec.Limits{MaxToolCalls: 10, Timeout: spec.Duration(10 * time.Second), ToolTimeout: spec.Duration(5 * time.Second), MaxToolResult: 10000, MaxModelTurns: 10}

func newAgent(t *testing.T, name string, p model.Provider) *agent.Agent {
	t.Helper()
	a, err := agent.New(agent.Config{Spec: &spec.Agent{Meta: spec.Meta{Kind: spec.KindAgent, Name: name, Description: name + " does things"}, Model: "fake/m", Limits: limits}, Provider: p, Model: "m", Vendor: "fake"})
	require.NoError(t, err)
	return a
}

func newTeam(t *testing.T, name, mode string, leader model.Provider, share bool, members ...agent.Runner) *team.Team {
	t.Helper()
	tm, err := team.New(team.Config{Spec: &spec.Team{Meta: spec.Meta{Kind: spec.KindTeam, Name: name}, Mode: mode, Model: "fake/m", Instructions: "Lead well.", ShareMemberInteractions: share, Limits: limits},
		Provider: leader, Model: "m", Vendor: "fake", Members: members})
	require.NoError(t, err)
	return tm
}

func run(t *testing.T, r agent.Runner, msg string) ([]event.Event, *agent.Result) {
	t.Helper()
	var mu sync.Mutex
	var events []event.Event
	res := r.Execute(t.Context(), agent.Input{Message: msg, RunID: "run1", SessionID: "s1", Stream: true}, func(e event.Event) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	})
	// Exactly one terminal event at depth 0, and it is the last event.
	var terminals int
	for _, e := range events {
		if e.Depth == 0 && e.Type.Terminal() {
			terminals++
		}
	}
	require.Equal(t, 1, terminals)
	require.True(t, events[len(events)-1].Type.Terminal())
	require.Equal(t, 0, events[len(events)-1].Depth)
	return events, res
}

func call(id, name, args string) model.ToolCall {
	return model.ToolCall{ID: id, Name: name, Arguments: args}
}

func TestRoute(t *testing.T) {
	t.Parallel()
	writer := newAgent(t, "writer", fake.New(fake.Step{Deltas: []string{"a ", "draft"}}))
	critic := newAgent(t, "critic", fake.New())
	leader := fake.New(fake.Step{ToolCalls: []model.ToolCall{call("c1", team.RouteTool, `{"member":"writer","task":"write it"}`)}})
	tm := newTeam(t, "desk", spec.ModeRoute, leader, false, writer, critic)
	events, res := run(t, tm, "please write")
	require.Equal(t, event.StatusCompleted, res.Status, res.Err)
	require.Equal(t, "a draft", res.Content)
	require.Len(t, res.Members, 1)
	require.Equal(t, "writer", res.Members[0].Runner)

	// The team's own stream carries the member's answer; member events are tagged.
	var own, member strings.Builder
	for _, e := range events {
		if e.Type != event.RunContent {
			continue
		}
		if e.Depth == 0 {
			require.Equal(t, "desk", e.TeamID)
			own.WriteString(e.Content)
		} else {
			require.Equal(t, 1, e.Depth)
			require.Equal(t, "writer", e.Member)
			require.Equal(t, "writer", e.AgentID)
			member.WriteString(e.Content)
		}
	}
	require.Equal(t, "a draft", own.String())
	require.Equal(t, "a draft", member.String())
	req := leader.Requests()[0]
	require.Equal(t, team.RouteTool, req.Tools[0].Name)
	require.Contains(t, req.System, "- writer: writer does things")
}

func TestRouteToUnknownMemberRetriesThenFails(t *testing.T) {
	t.Parallel()
	bad := fake.Step{ToolCalls: []model.ToolCall{call("c1", team.RouteTool, `{"member":"ghost","task":"x"}`)}}
	tm := newTeam(t, "desk", spec.ModeRoute, fake.New(bad, bad), false, newAgent(t, "writer", fake.New()))
	events, res := run(t, tm, "hi")
	require.Equal(t, event.StatusError, res.Status)
	require.Contains(t, events[len(events)-1].Content, `routed to "ghost", which is not a member`)
}

func TestCoordinate(t *testing.T) {
	t.Parallel()
	researcher := newAgent(t, "researcher", fake.New(fake.Step{Content: "fact: 42"}))
	writer := newAgent(t, "writer", fake.New(fake.Step{Content: "prose"}))
	leader := fake.New(
		fake.Step{ToolCalls: []model.ToolCall{
			call("d1", team.DelegateTool, `{"member":"researcher","task":"find"}`),
			call("d2", team.DelegateTool, `{"member":"writer","task":"write"}`),
		}},
		fake.Step{Content: "final: fact: 42 in prose"},
	)
	tm := newTeam(t, "crew", spec.ModeCoordinate, leader, false, researcher, writer)
	events, res := run(t, tm, "answer")
	require.Equal(t, event.StatusCompleted, res.Status, res.Err)
	require.Equal(t, "final: fact: 42 in prose", res.Content)
	require.Len(t, res.Members, 2)
	second := leader.Requests()[1].Messages
	require.Equal(t, "fact: 42", second[2].Content)
	require.Equal(t, "prose", second[3].Content)
	members := map[string]bool{}
	for _, e := range events {
		if e.Depth == 1 {
			members[e.Member] = true
		}
		if e.Depth == 0 {
			require.Equal(t, "crew", e.TeamID)
			require.Empty(t, e.AgentID)
		}
	}
	require.Equal(t, map[string]bool{"researcher": true, "writer": true}, members)
}

func TestCoordinateSharesInteractions(t *testing.T) {
	t.Parallel()
	first := fake.New(fake.Step{Content: "notes"})
	second := fake.New(fake.Step{Content: "essay"})
	leader := fake.New(
		fake.Step{ToolCalls: []model.ToolCall{call("d1", team.DelegateTool, `{"member":"a","task":"take notes"}`)}},
		fake.Step{ToolCalls: []model.ToolCall{call("d2", team.DelegateTool, `{"member":"b","task":"write"}`)}},
		fake.Step{Content: "done"},
	)
	tm := newTeam(t, "crew", spec.ModeCoordinate, leader, true, newAgent(t, "a", first), newAgent(t, "b", second))
	_, res := run(t, tm, "go")
	require.Equal(t, event.StatusCompleted, res.Status, res.Err)
	hist := second.Requests()[0].Messages
	require.Equal(t, []model.Message{
		{Role: model.RoleUser, Content: "[task for a] take notes"},
		{Role: model.RoleAssistant, Content: "[a] notes"},
		{Role: model.RoleUser, Content: "write"},
	}, hist)
}

func TestBroadcast(t *testing.T) {
	t.Parallel()
	a := newAgent(t, "optimist", fake.New(fake.Step{Content: "yes"}))
	b := newAgent(t, "pessimist", fake.New(fake.Step{Content: "no"}))
	leader := fake.New(fake.Step{Content: "maybe"})
	tm := newTeam(t, "panel", spec.ModeBroadcast, leader, false, a, b)
	events, res := run(t, tm, "will it rain?")
	require.Equal(t, event.StatusCompleted, res.Status, res.Err)
	require.Equal(t, "maybe", res.Content)
	require.Equal(t, event.RunStarted, events[0].Type)
	require.Equal(t, "panel", events[0].TeamID)
	msg := leader.Requests()[0].Messages[0].Content
	require.Contains(t, msg, "## optimist\nyes")
	require.Contains(t, msg, "## pessimist\nno")
	starts := 0
	for _, e := range events {
		if e.Depth == 0 && e.Type == event.RunStarted {
			starts++
		}
	}
	require.Equal(t, 1, starts)
}

func TestNestedTeam(t *testing.T) {
	t.Parallel()
	inner := newTeam(t, "inner", spec.ModeBroadcast, fake.New(fake.Step{Content: "inner summary"}), false,
		newAgent(t, "x", fake.New(fake.Step{Content: "x says"})), newAgent(t, "y", fake.New(fake.Step{Content: "y says"})))
	outer := newTeam(t, "outer", spec.ModeRoute, fake.New(fake.Step{ToolCalls: []model.ToolCall{call("r", team.RouteTool, `{"member":"inner","task":"t"}`)}}), false,
		inner, newAgent(t, "z", fake.New()))
	events, res := run(t, outer, "go")
	require.Equal(t, event.StatusCompleted, res.Status, res.Err)
	require.Equal(t, "inner summary", res.Content)
	var deep []string
	for _, e := range events {
		if e.Depth == 2 && e.Type == event.RunCompleted {
			deep = append(deep, e.Member+"@"+e.TeamID+e.AgentID)
		}
	}
	require.ElementsMatch(t, []string{"x@x", "y@y"}, deep)
}

// TestEchoLeadsTeamsOffline runs each mode with the echo model everywhere.
func TestEchoLeadsTeamsOffline(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{spec.ModeRoute, spec.ModeCoordinate, spec.ModeBroadcast} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			tm := newTeam(t, "offline", mode, echo.Provider{}, false, newAgent(t, "one", echo.Provider{}), newAgent(t, "two", echo.Provider{}))
			_, res := run(t, tm, "hello team")
			require.Equal(t, event.StatusCompleted, res.Status, res.Err)
			require.Contains(t, res.Content, "hello team")
			require.NotEmpty(t, res.Members)
		})
	}
}

func TestTeamCancel(t *testing.T) {
	t.Parallel()
	slow := newAgent(t, "slow", fake.New(fake.Step{Block: true}))
	tm := newTeam(t, "panel", spec.ModeBroadcast, fake.New(), false, slow)
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(20*time.Millisecond, cancel)
	res := tm.Execute(ctx, agent.Input{Message: "x", RunID: "r"}, func(event.Event) {})
	require.Equal(t, event.StatusCancelled, res.Status)
}
