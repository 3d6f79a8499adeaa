package mcp

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/spec"
)

// everythingVersion is the verified release of the MCP reference server
// @modelcontextprotocol/server-everything. Its first argument picks the
// transport (stdio, sse or streamableHttp; stdio is the default but is
// passed explicitly). Its echo tool takes {"message"} and answers
// "Echo: <message>"; get-sum takes {"a", "b"} (numbers) and answers
// "The sum of <a> and <b> is <a+b>.".
const everythingVersion = "2026.8.31"

// TestEverythingServer runs a real third-party server through npx. It needs
// Node.js and access to the npm registry, so it runs only when
// TROUPE_TEST_NPX=1.
func TestEverythingServer(t *testing.T) {
	if os.Getenv("TROUPE_TEST_NPX") != "1" {
		t.Skip("set TROUPE_TEST_NPX=1 to run @modelcontextprotocol/server-everything via npx (needs Node.js and the npm registry)")
	}
	log, logs := testLogger(t)
	p := newPool(t, Options{Logger: log})
	ts := p.Acquire(&spec.Tool{
		Meta:    spec.Meta{Name: "everything"},
		Type:    spec.ToolMCP,
		Command: "npx",
		Args:    []string{"-y", "@modelcontextprotocol/server-everything@" + everythingVersion, "stdio"},
		Allow:   []string{"echo", "get-sum"},
		Timeout: spec.Duration(60 * time.Second),
	})

	// The first start may download the package.
	tools, err := ts.Tools(t.Context())
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"everything_echo", "everything_get-sum"}, names(tools))

	echo := find(t, tools, "everything_echo")
	require.NotEmpty(t, echo.Def().Description)
	require.Contains(t, echo.Def().Parameters["properties"], "message")
	out, err := echo.Call(t.Context(), json.RawMessage(`{"message":"hello from troupe"}`))
	require.NoError(t, err)
	require.Equal(t, "Echo: hello from troupe", out)

	sum := find(t, tools, "everything_get-sum")
	out, err = sum.Call(t.Context(), json.RawMessage(`{"a":2,"b":3}`))
	require.NoError(t, err)
	require.Equal(t, "The sum of 2 and 3 is 5.", out)

	// Invalid arguments come back as an error, not as a result.
	_, err = sum.Call(t.Context(), json.RawMessage(`{"a":"two"}`))
	require.ErrorContains(t, err, "expected number")

	start := time.Now()
	p.Release(ts)
	p.Wait()
	require.False(t, ts.Running())
	// It ignores the end of its input: stopping takes the grace period, then
	// SIGTERM to its process group ends npx and node.
	require.Less(t, time.Since(start), 3*stopGrace)
	require.Contains(t, logs.String(), "Starting default (STDIO) server...", "stderr is logged")
}
