package engine_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/engine/agent"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/model/fake"
	"github.com/troupehq/troupe/engine/tool/mcp"
	"github.com/troupehq/troupe/spec"
)

// TestAgentCallsRealMCPServer runs an agent whose scripted model calls the echo
// and get-sum tools of the reference MCP server from npm, over stdio.
func TestAgentCallsRealMCPServer(t *testing.T) {
	if os.Getenv("TROUPE_TEST_NPX") != "1" {
		t.Skip("set TROUPE_TEST_NPX=1 to run against @modelcontextprotocol/server-everything from npm (needs npx and the npm registry)")
	}
	f := newFolder(t)
	f.write("mcp.yaml", `kind: Tool
name: everything
type: mcp
command: npx
args: ["-y", "@modelcontextprotocol/server-everything@2026.8.31", "stdio"]
allow: [echo, get-sum]
timeout: 120s
---
kind: Agent
name: mcp-user
model: openai/gpt-test
tools: [everything]
limits:
  tool_timeout: 120s
`)
	p := fake.New(
		fake.Step{ToolCalls: []model.ToolCall{
			{ID: "1", Name: "everything_echo", Arguments: `{"message":"hello from troupe"}`},
			{ID: "2", Name: "everything_get-sum", Arguments: `{"a":2,"b":40}`},
		}},
		fake.Step{Content: "done"},
	)
	rt := fakeRuntime(p)
	pool := mcp.NewPool(mcp.Options{})
	defer pool.Close()
	rt.Tools = engine.DefaultTools(engine.ToolOptions{MCP: pool})
	e := f.runtimeEngine(rt)
	defer e.Close()
	res, _, err := e.Execute(t.Context(), spec.KindAgent, "mcp-user", agent.Input{Message: "use the tools", RunID: "r"}, func(event.Event) {})
	require.NoError(t, err)
	require.Equal(t, event.StatusCompleted, res.Status, res.Err)
	require.Len(t, res.Tools, 2)
	require.False(t, res.Tools[0].Error, res.Tools[0].Result)
	require.Contains(t, res.Tools[0].Result, "Echo: hello from troupe")
	require.False(t, res.Tools[1].Error, res.Tools[1].Result)
	require.Contains(t, res.Tools[1].Result, "42")
	defs := p.Requests()[0].Tools
	require.Len(t, defs, 2)
	require.ElementsMatch(t, []string{"everything_echo", "everything_get-sum"}, []string{defs[0].Name, defs[1].Name})
}

// TestReloadKeepsUnchangedMCPServer proves a reload that does not touch an MCP
// tool keeps its session, and one that removes it stops the server.
func TestReloadKeepsUnchangedMCPServer(t *testing.T) {
	t.Parallel()
	var dials, closed atomic.Int32
	dial := func(ctx context.Context, s *spec.Tool) (sdk.Transport, error) {
		dials.Add(1)
		server := sdk.NewServer(&sdk.Implementation{Name: "test", Version: "1"}, nil)
		sdk.AddTool(server, &sdk.Tool{Name: "ping"}, func(context.Context, *sdk.CallToolRequest, struct{}) (*sdk.CallToolResult, any, error) {
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "pong"}}}, nil, nil
		})
		ct, st := sdk.NewInMemoryTransports()
		ss, err := server.Connect(context.Background(), st, nil)
		if err != nil {
			return nil, err
		}
		go func() { _ = ss.Wait(); closed.Add(1) }()
		return ct, nil
	}
	f := newFolder(t)
	f.write("tool.yaml", "kind: Tool\nname: srv\ntype: mcp\ncommand: unused\n")
	f.write("a.yaml", "kind: Agent\nname: a\nmodel: openai/gpt-test\ntools: [srv]\n")
	f.write("b.yaml", "kind: Agent\nname: b\nmodel: echo\n")
	p := &fake.Provider{Repeat: &fake.Step{Content: "ok"}}
	rt := fakeRuntime(p)
	pool := mcp.NewPool(mcp.Options{Dial: dial})
	rt.Tools = engine.DefaultTools(engine.ToolOptions{MCP: pool})
	e := f.runtimeEngine(rt)
	runA := func() {
		res, _, err := e.Execute(t.Context(), spec.KindAgent, "a", agent.Input{Message: "x", RunID: "r"}, func(event.Event) {})
		require.NoError(t, err)
		require.Equal(t, event.StatusCompleted, res.Status, res.Err)
	}
	runA()
	require.EqualValues(t, 1, dials.Load())
	for i := range 3 {
		f.write("b.yaml", fmt.Sprintf("kind: Agent\nname: b\nmodel: echo\ninstructions: v%d\n", i))
		require.True(t, e.Load().Changed)
		runA()
	}
	require.EqualValues(t, 1, dials.Load(), "unchanged MCP tool is not restarted by reloads")
	require.Equal(t, 1, pool.Len())

	f.remove("a.yaml")
	f.remove("tool.yaml")
	require.True(t, e.Load().Changed)
	pool.Wait()
	require.Zero(t, pool.Len(), "no snapshot uses the server any more")
	require.Eventually(t, func() bool { return closed.Load() == 1 }, 5e9, 1e7)
	e.Close()
	require.NoError(t, pool.Close())
}
