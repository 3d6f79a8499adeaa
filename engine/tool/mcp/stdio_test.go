//go:build unix

// The stdio tests use Unix signals and process ids.

package mcp

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/tool"
	"github.com/troupehq/troupe/spec"
)

func callText(t *testing.T, tl tool.Tool, args string) string {
	t.Helper()
	out, err := tl.Call(t.Context(), json.RawMessage(args))
	require.NoError(t, err)
	return out
}

// processGone reports whether pid no longer runs (Unix only).
func processGone(pid int) bool {
	return syscall.Kill(pid, 0) == syscall.ESRCH
}

func TestStdioCrashAndRestart(t *testing.T) {
	t.Setenv("TROUPE_MCP_TEST_SECRET", "must-not-leak")
	log, logs := testLogger(t)
	p := newPool(t, Options{Logger: log, RestartBackoff: 20 * time.Millisecond})
	ts := p.Acquire(&spec.Tool{
		Meta:    spec.Meta{Name: "crashy"},
		Type:    spec.ToolMCP,
		Command: crashServer,
		Env:     map[string]string{"CRASHY_MODE": "test"},
		Allow:   []string{"echo", "crash", "pid", "env"},
		Timeout: spec.Duration(10 * time.Second),
	})

	tools, err := ts.Tools(t.Context())
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"crashy_echo", "crashy_crash", "crashy_pid", "crashy_env"}, names(tools))
	echo, crash, pidTool, env := find(t, tools, "crashy_echo"), find(t, tools, "crashy_crash"), find(t, tools, "crashy_pid"), find(t, tools, "crashy_env")

	require.Equal(t, "hello", callText(t, echo, `{"message":"hello"}`))
	pid1, err := strconv.Atoi(callText(t, pidTool, `{}`))
	require.NoError(t, err)

	// The environment is filtered: the spec's env and PATH pass, the rest not.
	require.Equal(t, "test", callText(t, env, `{"name":"CRASHY_MODE"}`))
	require.Equal(t, "<unset>", callText(t, env, `{"name":"TROUPE_MCP_TEST_SECRET"}`))
	require.Equal(t, os.Getenv("PATH"), callText(t, env, `{"name":"PATH"}`))

	// stderr goes to the logger at debug level.
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), `line="crashserver ready"`) },
		5*time.Second, 10*time.Millisecond)

	// The server dies during a call: the call fails and is not retried,
	// since it was delivered.
	_, err = crash.Call(t.Context(), json.RawMessage(`{}`))
	require.ErrorContains(t, err, `MCP server "crashy" stopped during the call to "crash"`)
	require.False(t, ts.Running())
	require.Eventually(t, func() bool { return processGone(pid1) }, 5*time.Second, 10*time.Millisecond)

	// The next call restarts it.
	require.Equal(t, "again", callText(t, echo, `{"message":"again"}`))
	require.True(t, ts.Running())
	pid2, err := strconv.Atoi(callText(t, pidTool, `{}`))
	require.NoError(t, err)
	require.NotEqual(t, pid1, pid2)
	require.Contains(t, logs.String(), "restarting MCP server")
	require.Equal(t, 1, strings.Count(logs.String(), "crashing on purpose"))

	// Releasing the last reference stops the process.
	p.Release(ts)
	p.Wait()
	require.False(t, ts.Running())
	require.True(t, processGone(pid2), "server process still running after Release")
}

func TestStdioServerKilledWhileIdle(t *testing.T) {
	log, logs := testLogger(t)
	p := newPool(t, Options{Logger: log, RestartBackoff: 20 * time.Millisecond})
	ts := p.Acquire(&spec.Tool{Meta: spec.Meta{Name: "crashy"}, Type: spec.ToolMCP, Command: crashServer})
	tools, err := ts.Tools(t.Context())
	require.NoError(t, err)
	pid, err := strconv.Atoi(callText(t, find(t, tools, "crashy_pid"), `{}`))
	require.NoError(t, err)

	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	require.Eventually(t, func() bool {
		return !ts.Running() && strings.Contains(logs.String(), "it will be restarted on next use")
	}, 5*time.Second, 10*time.Millisecond)

	require.Equal(t, "back", callText(t, find(t, tools, "crashy_echo"), `{"message":"back"}`))
}
