package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdkmcp "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/troupehq/troupe/engine/tool"
	"github.com/troupehq/troupe/spec"
)

// crashServer is the path of the binary built from testdata/crashserver.
var crashServer string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "troupe-mcp-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	crashServer = filepath.Join(dir, "crashserver")
	if runtime.GOOS == "windows" {
		crashServer += ".exe"
	}
	build := exec.Command("go", "build", "-o", crashServer, "./testdata/crashserver")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building testdata/crashserver:", err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		_ = os.RemoveAll(dir)
		os.Exit(code)
	}))
}

// logBuffer collects log output, safe for the goroutines that log.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testLogger logs at debug level into a buffer, printed if the test fails.
func testLogger(t *testing.T) (*slog.Logger, *logBuffer) {
	t.Helper()
	buf := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", buf)
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// newPool returns a pool closed at the end of the test.
func newPool(t *testing.T, opts Options) *Pool {
	t.Helper()
	p := NewPool(opts)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	return p
}

func mcpSpec(name string) *spec.Tool {
	return &spec.Tool{Meta: spec.Meta{Name: name}, Type: spec.ToolMCP, Command: "in-memory"}
}

func textResult(s string) *sdkmcp.CallToolResult {
	return &sdkmcp.CallToolResult{Content: []sdkmcp.Content{&sdkmcp.TextContent{Text: s}}}
}

type addIn struct {
	A int `json:"a" jsonschema:"first addend"`
	B int `json:"b" jsonschema:"second addend"`
}

type noArgs struct{}

// memServer is an SDK server reached through in-memory transports, via
// Options.Dial. It records every session so tests can watch them end.
type memServer struct {
	server *sdkmcp.Server

	mu       sync.Mutex
	sessions []*sdkmcp.ServerSession
}

func newMemServer(t *testing.T) *memServer {
	t.Helper()
	// A page size of 1 makes listing the tools take several pages.
	srv := sdkmcp.NewServer(&sdkmcp.Implementation{Name: "mem", Version: "test"}, &sdkmcp.ServerOptions{PageSize: 1})
	sdkmcp.AddTool(srv, &sdkmcp.Tool{Name: "add", Description: "Adds two integers."},
		func(_ context.Context, _ *sdkmcp.CallToolRequest, in addIn) (*sdkmcp.CallToolResult, any, error) {
			return textResult(strconv.Itoa(in.A + in.B)), nil, nil
		})
	sdkmcp.AddTool(srv, &sdkmcp.Tool{Name: "fail", Description: "Always fails."},
		func(context.Context, *sdkmcp.CallToolRequest, noArgs) (*sdkmcp.CallToolResult, any, error) {
			res := textResult("boom: the widget is broken")
			res.IsError = true
			return res, nil, nil
		})
	sdkmcp.AddTool(srv, &sdkmcp.Tool{Name: "sleep", Description: "Blocks until cancelled."},
		func(ctx context.Context, _ *sdkmcp.CallToolRequest, _ noArgs) (*sdkmcp.CallToolResult, any, error) {
			<-ctx.Done()
			return nil, nil, ctx.Err()
		})
	sdkmcp.AddTool(srv, &sdkmcp.Tool{Name: "get.info"},
		func(context.Context, *sdkmcp.CallToolRequest, noArgs) (*sdkmcp.CallToolResult, any, error) {
			return &sdkmcp.CallToolResult{Content: []sdkmcp.Content{
				&sdkmcp.TextContent{Text: "info"},
				&sdkmcp.ImageContent{MIMEType: "image/png", Data: make([]byte, 1234)},
			}}, nil, nil
		})
	return &memServer{server: srv}
}

func (m *memServer) dial(ctx context.Context, _ *spec.Tool) (sdkmcp.Transport, error) {
	serverT, clientT := sdkmcp.NewInMemoryTransports()
	ss, err := m.server.Connect(ctx, serverT, nil)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.sessions = append(m.sessions, ss)
	m.mu.Unlock()
	return clientT, nil
}

func (m *memServer) dials() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sessions)
}

func (m *memServer) session(i int) *sdkmcp.ServerSession {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sessions[i]
}

// requireEnded fails unless the server session ends soon.
func requireEnded(t *testing.T, ss *sdkmcp.ServerSession) {
	t.Helper()
	ended := make(chan struct{})
	go func() {
		_ = ss.Wait()
		close(ended)
	}()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		_ = ss.Close() // let the goroutine above finish
		t.Fatal("server session did not end")
	}
}

func names(tools []tool.Tool) []string {
	out := make([]string, len(tools))
	for i, tl := range tools {
		out[i] = tl.Def().Name
	}
	return out
}

func find(t *testing.T, tools []tool.Tool, name string) tool.Tool {
	t.Helper()
	for _, tl := range tools {
		if tl.Def().Name == name {
			return tl
		}
	}
	t.Fatalf("no tool %q in %v", name, names(tools))
	return nil
}

func TestToolsetInMemory(t *testing.T) {
	ms := newMemServer(t)
	log, _ := testLogger(t)
	p := newPool(t, Options{Logger: log, Dial: ms.dial})

	ts := p.Acquire(mcpSpec("calc"))
	require.False(t, ts.Running())
	require.Zero(t, ms.dials(), "Acquire must not connect")

	tools, err := ts.Tools(t.Context())
	require.NoError(t, err)
	require.True(t, ts.Running())
	require.Equal(t, []string{"calc_add", "calc_fail", "calc_get_info", "calc_sleep"}, names(tools))

	add := find(t, tools, "calc_add")
	def := add.Def()
	require.Equal(t, "Adds two integers.", def.Description)
	require.Equal(t, "object", def.Parameters["type"])
	require.Contains(t, def.Parameters["properties"], "a")
	require.Contains(t, def.Parameters["properties"], "b")
	require.Equal(t, "Tool get.info of MCP server calc.", find(t, tools, "calc_get_info").Def().Description)

	out, err := add.Call(t.Context(), json.RawMessage(`{"a": 2, "b": 40}`))
	require.NoError(t, err)
	require.Equal(t, "42", out)

	out, err = find(t, tools, "calc_get_info").Call(t.Context(), nil)
	require.NoError(t, err)
	require.Equal(t, "info\n[image: image/png, 1234 bytes]", out)

	_, err = find(t, tools, "calc_fail").Call(t.Context(), json.RawMessage(`{}`))
	require.ErrorContains(t, err, "boom: the widget is broken")
	require.ErrorContains(t, err, `MCP tool "fail" of server "calc" failed`)
	require.NotErrorIs(t, err, tool.ErrInvalidArguments)

	_, err = add.Call(t.Context(), json.RawMessage(`[1, 2]`))
	require.ErrorIs(t, err, tool.ErrInvalidArguments)

	// Later calls reuse the session and the cached list.
	again, err := ts.Tools(t.Context())
	require.NoError(t, err)
	require.Equal(t, names(tools), names(again))
	require.Equal(t, 1, ms.dials())
}

func TestAllowList(t *testing.T) {
	ms := newMemServer(t)
	log, logs := testLogger(t)
	p := newPool(t, Options{Logger: log, Dial: ms.dial})

	s := mcpSpec("calc")
	s.Allow = []string{"add", "nope"}
	ts := p.Acquire(s)
	for range 2 {
		tools, err := ts.Tools(t.Context())
		require.NoError(t, err)
		require.Equal(t, []string{"calc_add"}, names(tools))
	}
	require.Equal(t, 1, strings.Count(logs.String(), "does not exist on the server"), "warned once")
	require.Contains(t, logs.String(), "tool=nope")
}

func TestPoolSharing(t *testing.T) {
	ms := newMemServer(t)
	log, _ := testLogger(t)
	p := newPool(t, Options{Logger: log, Dial: ms.dial})

	s1 := mcpSpec("calc")
	s1.Allow = []string{"add", "fail"}
	s2 := mcpSpec("calc")
	s2.Allow = []string{"fail", "add", "add"}                     // same set
	s2.Timeout = spec.Duration(spec.DefaultToolTimeout)           // the default, spelled out
	s2.Meta.Description = "descriptions do not affect the server" // not part of the key

	a := p.Acquire(s1)
	b := p.Acquire(s2)
	require.Same(t, a, b)
	require.Equal(t, 1, p.Len())

	changed := mcpSpec("calc")
	changed.Allow = []string{"add"}
	c := p.Acquire(changed)
	require.NotSame(t, a, c)
	require.Equal(t, 2, p.Len())

	_, err := a.Tools(t.Context())
	require.NoError(t, err)
	_, err = c.Tools(t.Context())
	require.NoError(t, err)
	require.Equal(t, 2, ms.dials(), "one session per distinct configuration")

	// A reload that keeps the configuration: acquire the new reference, then
	// release the old one. The server keeps running.
	d := p.Acquire(s1)
	require.Same(t, a, d)
	p.Release(a)
	p.Release(b)
	require.True(t, d.Running())
	require.Equal(t, 2, ms.dials(), "no restart")

	// Releasing the last reference ends the session.
	p.Release(d)
	p.Wait()
	requireEnded(t, ms.session(0))
	require.False(t, d.Running())
	require.Equal(t, 1, p.Len())
	p.Release(d) // extra releases are ignored
	_, err = d.Tools(t.Context())
	require.ErrorContains(t, err, `MCP server "calc" was stopped`)

	// The other configuration was not affected.
	require.True(t, c.Running())
	p.Release(c)
	p.Wait()
	requireEnded(t, ms.session(1))
	require.Zero(t, p.Len())

	// Acquiring the configuration again starts a new toolset.
	e := p.Acquire(s1)
	require.NotSame(t, a, e)
	_, err = e.Tools(t.Context())
	require.NoError(t, err)
	require.Equal(t, 3, ms.dials())
}

func TestPoolClose(t *testing.T) {
	ms := newMemServer(t)
	p := NewPool(Options{Dial: ms.dial})
	ts := p.Acquire(mcpSpec("calc"))
	_, err := ts.Tools(t.Context())
	require.NoError(t, err)

	require.NoError(t, p.Close())
	requireEnded(t, ms.session(0))
	require.Zero(t, p.Len())
	require.NoError(t, p.Close(), "idempotent")
	p.Release(ts) // after Close: ignored

	late := p.Acquire(mcpSpec("calc"))
	_, err = late.Tools(t.Context())
	require.ErrorContains(t, err, "was stopped")
	require.Equal(t, 1, ms.dials())
}

func TestConcurrentFirstCallsStartOnce(t *testing.T) {
	ms := newMemServer(t)
	p := newPool(t, Options{Dial: ms.dial})
	ts := p.Acquire(mcpSpec("calc"))

	var wg sync.WaitGroup
	var failures atomic.Int32
	for range 16 {
		wg.Go(func() {
			tools, err := ts.Tools(t.Context())
			if err != nil || len(tools) != 4 {
				failures.Add(1)
			}
		})
	}
	wg.Wait()
	require.Zero(t, failures.Load())
	require.Equal(t, 1, ms.dials())
}

func TestReconnectAfterDisconnect(t *testing.T) {
	ms := newMemServer(t)
	log, logs := testLogger(t)
	p := newPool(t, Options{Logger: log, Dial: ms.dial, RestartBackoff: 10 * time.Millisecond})
	ts := p.Acquire(mcpSpec("calc"))
	tools, err := ts.Tools(t.Context())
	require.NoError(t, err)

	// The server goes away between calls.
	require.NoError(t, ms.session(0).Close())
	require.Eventually(t, func() bool {
		return !ts.Running() && strings.Contains(logs.String(), "it will be restarted on next use")
	}, 5*time.Second, 5*time.Millisecond)

	out, err := find(t, tools, "calc_add").Call(t.Context(), json.RawMessage(`{"a":1,"b":1}`))
	require.NoError(t, err)
	require.Equal(t, "2", out)
	require.True(t, ts.Running())
	require.Equal(t, 2, ms.dials())
	require.Contains(t, logs.String(), "restarting MCP server")
}

func TestToolListChanged(t *testing.T) {
	ms := newMemServer(t)
	p := newPool(t, Options{Dial: ms.dial})
	ts := p.Acquire(mcpSpec("calc"))
	_, err := ts.Tools(t.Context())
	require.NoError(t, err)

	sdkmcp.AddTool(ms.server, &sdkmcp.Tool{Name: "mul", Description: "Multiplies."},
		func(_ context.Context, _ *sdkmcp.CallToolRequest, in addIn) (*sdkmcp.CallToolResult, any, error) {
			return textResult(strconv.Itoa(in.A * in.B)), nil, nil
		})
	require.Eventually(t, func() bool {
		tools, err := ts.Tools(t.Context())
		return err == nil && slices.Contains(names(tools), "calc_mul")
	}, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, 1, ms.dials(), "refreshed without reconnecting")
}

func TestCallTimeout(t *testing.T) {
	ms := newMemServer(t)
	p := newPool(t, Options{Dial: ms.dial})
	s := mcpSpec("calc")
	s.Timeout = spec.Duration(100 * time.Millisecond)
	ts := p.Acquire(s)
	tools, err := ts.Tools(t.Context())
	require.NoError(t, err)

	start := time.Now()
	_, err = find(t, tools, "calc_sleep").Call(t.Context(), nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, `MCP tool "sleep" of server "calc" did not answer within 100ms`)
	require.Less(t, time.Since(start), 5*time.Second)

	// The session survives a slow tool.
	out, err := find(t, tools, "calc_add").Call(t.Context(), json.RawMessage(`{"a":1,"b":2}`))
	require.NoError(t, err)
	require.Equal(t, "3", out)
	require.Equal(t, 1, ms.dials())
}

func TestCallerCancellation(t *testing.T) {
	ms := newMemServer(t)
	p := newPool(t, Options{Dial: ms.dial})
	ts := p.Acquire(mcpSpec("calc"))
	tools, err := ts.Tools(t.Context())
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err = find(t, tools, "calc_sleep").Call(ctx, nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.True(t, ts.Running(), "a cancelled call does not stop the server")
}

func TestStartFailure(t *testing.T) {
	log, _ := testLogger(t)
	p := newPool(t, Options{Logger: log, RestartBackoff: time.Hour})
	s := &spec.Tool{Meta: spec.Meta{Name: "bad"}, Type: spec.ToolMCP, Command: "/nonexistent/mcp-server", Args: []string{"--flag"}}
	ts := p.Acquire(s)

	_, err := ts.Tools(t.Context())
	require.ErrorContains(t, err, `starting MCP server "bad" (/nonexistent/mcp-server): `)
	require.False(t, ts.Running())

	// Within the backoff the failure is reported again without a new attempt.
	_, err2 := ts.Tools(t.Context())
	require.Same(t, err, err2)
}

func TestResultText(t *testing.T) {
	size := int64(9)
	for _, tc := range []struct {
		name string
		res  *sdkmcp.CallToolResult
		want string
		err  string
	}{
		{"text blocks", &sdkmcp.CallToolResult{Content: []sdkmcp.Content{
			&sdkmcp.TextContent{Text: "one"}, &sdkmcp.TextContent{Text: "two"},
		}}, "one\ntwo", ""},
		{"non-text blocks", &sdkmcp.CallToolResult{Content: []sdkmcp.Content{
			&sdkmcp.AudioContent{MIMEType: "audio/wav", Data: []byte("abc")},
			&sdkmcp.ResourceLink{URI: "file:///a.txt", Name: "a", Size: &size},
			&sdkmcp.EmbeddedResource{Resource: &sdkmcp.ResourceContents{URI: "file:///b.txt", Text: "embedded"}},
			&sdkmcp.EmbeddedResource{Resource: &sdkmcp.ResourceContents{URI: "file:///c.bin", MIMEType: "application/zip", Blob: []byte{1, 2}}},
		}}, "[audio: audio/wav, 3 bytes]\n[resource link: file:///a.txt]\nembedded\n[resource: file:///c.bin, application/zip, 2 bytes]", ""},
		{"structured only", &sdkmcp.CallToolResult{StructuredContent: map[string]any{"sum": 3}}, `{"sum":3}`, ""},
		{"text wins over structured", &sdkmcp.CallToolResult{
			Content: []sdkmcp.Content{&sdkmcp.TextContent{Text: "3"}}, StructuredContent: map[string]any{"sum": 3},
		}, "3", ""},
		{"error", &sdkmcp.CallToolResult{IsError: true, Content: []sdkmcp.Content{&sdkmcp.TextContent{Text: "nope"}}}, "", `MCP tool "t" of server "s" failed: nope`},
		{"error without text", &sdkmcp.CallToolResult{IsError: true}, "", "no details given"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := callResult("s", "t", tc.res)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestParameters(t *testing.T) {
	require.Equal(t, map[string]any{"type": "object"}, parameters(nil))
	require.Equal(t, map[string]any{"type": "object"}, parameters("not a schema"))
	require.Equal(t, map[string]any{"type": "object", "properties": map[string]any{}},
		parameters(map[string]any{"properties": map[string]any{}}))
	require.Equal(t, map[string]any{"type": "object", "required": []any{"x"}},
		parameters(json.RawMessage(`{"type":"object","required":["x"]}`)))
}

func TestServerEnv(t *testing.T) {
	environ := []string{
		"PATH=/bin", "HOME=/home/me", "OPENAI_API_KEY=sk-secret", "XDG_CACHE_HOME=/c",
		"npm_config_cache=/npm", "NPM_CONFIG_REGISTRY=https://r", "https_proxy=http://p", "NO_PROXY=localhost",
		"AWS_SECRET_ACCESS_KEY=x", "LANG=C.UTF-8", "NODE_OPTIONS=--max-old-space-size=512", "MALFORMED",
	}
	got := serverEnv(environ, map[string]string{"PATH": "/opt/bin", "API_TOKEN": "mine"})
	require.Equal(t, []string{
		"API_TOKEN=mine", "HOME=/home/me", "LANG=C.UTF-8", "NODE_OPTIONS=--max-old-space-size=512",
		"NO_PROXY=localhost", "NPM_CONFIG_REGISTRY=https://r", "PATH=/opt/bin", "XDG_CACHE_HOME=/c",
		"https_proxy=http://p", "npm_config_cache=/npm",
	}, got)
}

func TestLineLogger(t *testing.T) {
	log, logs := testLogger(t)
	w := &lineLogger{log: log}
	_, _ = w.Write([]byte("first line\r\nsecond "))
	_, _ = w.Write([]byte("half\n\n" + strings.Repeat("x", 3*maxStderrLine) + "\nlast"))
	w.flush()
	out := logs.String()
	require.Contains(t, out, `line="first line"`)
	require.Contains(t, out, `line="second half"`)
	require.Contains(t, out, strings.Repeat("x", maxStderrLine)+" [line truncated]")
	require.NotContains(t, out, strings.Repeat("x", maxStderrLine+1))
	require.Contains(t, out, "line=last")
	require.Equal(t, 4, strings.Count(out, "MCP server stderr"))
}

func TestConfigKey(t *testing.T) {
	base := &spec.Tool{Meta: spec.Meta{Name: "x"}, Type: spec.ToolMCP, URL: "https://h/mcp", Headers: map[string]string{"authorization": "a"}}
	same := &spec.Tool{Meta: spec.Meta{Name: "x"}, Type: spec.ToolMCP, URL: "https://h/mcp", Headers: map[string]string{"Authorization": "a"}, Timeout: spec.Duration(spec.DefaultToolTimeout)}
	require.Equal(t, newConfig(base).key(), newConfig(same).key())

	for _, change := range []func(*spec.Tool){
		func(s *spec.Tool) { s.Name = "y" },
		func(s *spec.Tool) { s.URL = "https://h/other" },
		func(s *spec.Tool) { s.Headers = map[string]string{"Authorization": "b"} },
		func(s *spec.Tool) { s.Allow = []string{"t"} },
		func(s *spec.Tool) { s.Timeout = spec.Duration(time.Minute) },
		func(s *spec.Tool) { s.Command, s.URL, s.Headers = "srv", "", nil },
	} {
		s := cloneSpec(base)
		change(s)
		require.NotEqual(t, newConfig(base).key(), newConfig(s).key())
	}
	stdio := &spec.Tool{Meta: spec.Meta{Name: "x"}, Command: "srv"}
	for _, change := range []func(*spec.Tool){
		func(s *spec.Tool) { s.Args = []string{"a"} },
		func(s *spec.Tool) { s.Env = map[string]string{"K": "v"} },
	} {
		s := cloneSpec(stdio)
		change(s)
		require.NotEqual(t, newConfig(stdio).key(), newConfig(s).key())
	}

	require.Equal(t, "https://h/mcp", newConfig(&spec.Tool{URL: "https://user:pw@h/mcp?token=t#f"}).endpoint())
}

// breakableConn fails writes once broken, like a pipe to a server that died
// while idle before the session noticed.
type breakableConn struct {
	sdkmcp.Connection
	broken *atomic.Bool
}

func (c breakableConn) Write(ctx context.Context, msg jsonrpc.Message) error {
	if c.broken.Load() {
		return fmt.Errorf("write: %w", io.ErrClosedPipe)
	}
	return c.Connection.Write(ctx, msg)
}

type breakableTransport struct {
	sdkmcp.Transport
	broken *atomic.Bool
}

func (t breakableTransport) Connect(ctx context.Context) (sdkmcp.Connection, error) {
	c, err := t.Transport.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return breakableConn{c, t.broken}, nil
}

func TestCallRetriedWhenConnectionClosed(t *testing.T) {
	ms := newMemServer(t)
	log, logs := testLogger(t)
	var broken atomic.Bool
	dial := func(ctx context.Context, s *spec.Tool) (sdkmcp.Transport, error) {
		tr, err := ms.dial(ctx, s)
		if err != nil {
			return nil, err
		}
		fresh := new(atomic.Bool)
		if ms.dials() == 1 {
			fresh = &broken // only the first session breaks
		}
		return breakableTransport{tr, fresh}, nil
	}
	p := newPool(t, Options{Logger: log, Dial: dial, RestartBackoff: 10 * time.Millisecond})
	ts := p.Acquire(mcpSpec("calc"))
	tools, err := ts.Tools(t.Context())
	require.NoError(t, err)
	add := find(t, tools, "calc_add")

	broken.Store(true)
	out, err := add.Call(t.Context(), json.RawMessage(`{"a":1,"b":2}`))
	require.NoError(t, err)
	require.Equal(t, "3", out)
	require.Equal(t, 2, ms.dials())
	require.Contains(t, logs.String(), "retrying the call on a new session")
	requireEnded(t, ms.session(0))
}

// TestSecrets: a toolset declares the credentials it gives its server, so
// that the agent loop can remove them from what the server sends back.
func TestSecrets(t *testing.T) {
	tests := []struct {
		name string
		spec spec.Tool
		want []string
	}{
		{"headers", spec.Tool{URL: "https://mcp.example.com/mcp", Headers: map[string]string{"Authorization": "Bearer tok-123456", "X-Team": "blue"}},
			[]string{"Bearer tok-123456"}},
		{"url credentials", spec.Tool{URL: "https://user:pa55word@mcp.example.com/mcp?api_key=k-987654"}, []string{"pa55word", "pa55word", "k-987654"}},
		{"environment", spec.Tool{Command: "server", Env: map[string]string{"GITHUB_TOKEN": "ghp_abcdef", "LOG_LEVEL": "debug"}}, []string{"ghp_abcdef"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.spec
			s.Kind, s.Name, s.Type = spec.KindTool, "srv", spec.ToolMCP
			p := NewPool(Options{})
			t.Cleanup(func() { require.NoError(t, p.Close()) })
			ts := p.Acquire(&s)
			t.Cleanup(func() { p.Release(ts) })
			require.ElementsMatch(t, tt.want, ts.Secrets())
		})
	}
}
