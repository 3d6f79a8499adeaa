package mcp

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	sdkmcp "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/troupehq/troupe/spec"
)

// DialFunc creates the transport to one MCP server; see [Options.Dial].
type DialFunc func(ctx context.Context, s *spec.Tool) (sdkmcp.Transport, error)

const (
	// stopGrace is how long a stdio server may take to exit after its stdin is
	// closed, and again after SIGTERM, before it is killed. Some servers
	// (server-everything among them) ignore the end of their input, so every
	// stop of those takes this long.
	stopGrace = 2 * time.Second
	// pipeDrain bounds how long stopping waits for stderr to be drained after
	// the server exited: a grandchild holding the pipe open must not block it.
	pipeDrain = time.Second
	// maxStderrLine bounds a logged stderr line; the rest of it is dropped.
	maxStderrLine = 2048
)

// endpoint is a transport plus what must happen after its session ended.
type endpoint struct {
	transport sdkmcp.Transport
	cmd       *exec.Cmd // the child process of a stdio server, nil otherwise
	cleanup   func()    // run once the session ended; never nil
}

// dial prepares (but does not start) the transport to the server.
func (t *Toolset) dial(ctx context.Context) (*endpoint, error) {
	if t.pool.opts.Dial != nil {
		tr, err := t.pool.opts.Dial(ctx, cloneSpec(t.spec))
		if err != nil {
			return nil, err
		}
		return &endpoint{transport: tr, cleanup: func() {}}, nil
	}
	if t.cfg.stdio() {
		return t.stdio(), nil
	}
	return t.streamable(), nil
}

// stdio prepares the child process of a stdio server. The SDK's
// CommandTransport starts it and speaks to it over stdin/stdout; see
// stdioConn for how it is stopped.
//
// The process is deliberately not tied to the context of the call that
// starts it (exec.CommandContext would kill it when that call returns): it
// lives until the toolset stops it.
func (t *Toolset) stdio() *endpoint {
	cmd := exec.Command(t.cfg.Command, t.cfg.Args...)
	cmd.Env = serverEnv(os.Environ(), t.cfg.Env)
	stderr := &lineLogger{log: t.log}
	cmd.Stderr = stderr
	cmd.WaitDelay = pipeDrain
	newProcessGroup(cmd)
	return &endpoint{
		transport: stdioTransport{&sdkmcp.CommandTransport{
			Command: cmd,
			// A fallback only: stdioConn.Close escalates first, and to the
			// whole process group.
			TerminateDuration: 2*stopGrace + time.Second,
		}},
		cmd: cmd,
		cleanup: func() {
			// Package runners such as npx start the server as a child of
			// their own; make sure nothing of the server outlives it.
			killProcessGroup(cmd)
			stderr.flush()
		},
	}
}

// stdioTransport is the SDK's CommandTransport with a shutdown that reaches
// the server's whole process group.
type stdioTransport struct{ *sdkmcp.CommandTransport }

func (t stdioTransport) Connect(ctx context.Context) (sdkmcp.Connection, error) {
	c, err := t.CommandTransport.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &stdioConn{Connection: c, cmd: t.Command}, nil
}

// stdioConn stops a stdio server the way the MCP specification asks: close
// its stdin and let it exit, then SIGTERM after a grace period, then SIGKILL.
// The SDK does the same, but signals only the process it started, and package
// runners such as npx do not reliably pass signals on to the server they run;
// so the signals go to the whole process group, before the SDK's own.
type stdioConn struct {
	sdkmcp.Connection
	cmd *exec.Cmd
}

func (c *stdioConn) Close() error {
	closed := make(chan struct{})
	defer close(closed)
	go func() {
		for _, signal := range []func(*exec.Cmd){terminateProcessGroup, killProcessGroup} {
			timer := time.NewTimer(stopGrace)
			select {
			case <-closed:
				timer.Stop()
				return
			case <-timer.C:
				signal(c.cmd)
			}
		}
	}()
	return c.Connection.Close() // closes stdin and waits for the process to exit
}

// streamable prepares a streamable HTTP connection whose requests carry the
// document's headers. Each connection gets its own HTTP transport so that
// stopping the toolset can drop its idle connections.
func (t *Toolset) streamable() *endpoint {
	base := http.DefaultTransport.(*http.Transport).Clone()
	hdr := make(http.Header, len(t.cfg.Headers))
	for k, v := range t.cfg.Headers {
		hdr.Set(k, v)
	}
	return &endpoint{
		transport: &sdkmcp.StreamableClientTransport{
			Endpoint:   t.cfg.URL,
			HTTPClient: &http.Client{Transport: &headerTransport{base: base, header: hdr}},
		},
		cleanup: base.CloseIdleConnections,
	}
}

// headerTransport adds configured headers to every request. Headers the SDK
// sets itself (content type, session id, protocol version) are left alone:
// the protocol depends on them.
type headerTransport struct {
	base   http.RoundTripper
	header http.Header
}

func (h *headerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context()) // a RoundTripper must not modify its request
	for k, vs := range h.header {
		if _, set := req.Header[k]; !set {
			req.Header[k] = slices.Clone(vs)
		}
	}
	return h.base.RoundTrip(req)
}

// inheritedEnv lists the variables stdio servers inherit; see the package
// documentation for why the rest of the environment is withheld.
var inheritedEnv = map[string]bool{
	"PATH": true, "HOME": true, "USER": true, "LANG": true, "LC_ALL": true,
	"TMPDIR": true, "TERM": true, "SHELL": true, "NODE_OPTIONS": true, "NODE_PATH": true,
}

// inheritedProxyEnv is matched in any case: tools disagree on the spelling.
var inheritedProxyEnv = map[string]bool{"HTTP_PROXY": true, "HTTPS_PROXY": true, "NO_PROXY": true}

// inheritedWindowsEnv holds what programs on Windows cannot run without.
var inheritedWindowsEnv = map[string]bool{
	"SYSTEMROOT": true, "SYSTEMDRIVE": true, "WINDIR": true, "COMSPEC": true, "PATHEXT": true,
	"USERPROFILE": true, "APPDATA": true, "LOCALAPPDATA": true, "PROGRAMDATA": true,
	"PROGRAMFILES": true, "TEMP": true, "TMP": true, "USERNAME": true,
}

func inherited(name string) bool {
	upper := strings.ToUpper(name)
	if runtime.GOOS == "windows" {
		// Variable names are case-insensitive on Windows ("Path").
		if inheritedEnv[upper] || inheritedWindowsEnv[upper] {
			return true
		}
	}
	return inheritedEnv[name] ||
		inheritedProxyEnv[upper] ||
		strings.HasPrefix(name, "XDG_") ||
		strings.HasPrefix(upper, "NPM_CONFIG_")
}

// serverEnv returns the environment of a stdio server: the inherited
// variables of environ, then extra, which wins. The result is sorted.
func serverEnv(environ []string, extra map[string]string) []string {
	env := make(map[string]string)
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && k != "" && inherited(k) {
			env[k] = v
		}
	}
	for k, v := range extra {
		if runtime.GOOS == "windows" {
			for old := range env {
				if strings.EqualFold(old, k) {
					delete(env, old)
				}
			}
		}
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

// lineLogger writes a server's stderr to the logger at debug level, one
// record per line, cutting lines at maxStderrLine bytes so a misbehaving
// server cannot make the engine buffer without bound.
type lineLogger struct {
	log *slog.Logger

	mu        sync.Mutex
	buf       []byte
	truncated bool // the current line exceeded maxStderrLine
}

func (w *lineLogger) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		line, rest, complete := bytes.Cut(p, []byte{'\n'})
		if room := maxStderrLine - len(w.buf); len(line) > room {
			line = line[:room]
			w.truncated = true
		}
		w.buf = append(w.buf, line...)
		if !complete {
			break
		}
		w.emit()
		p = rest
	}
	return n, nil
}

// flush logs a last line that did not end with a newline.
func (w *lineLogger) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.emit()
}

func (w *lineLogger) emit() {
	line := strings.TrimRight(string(w.buf), "\r")
	if w.truncated {
		line += " [line truncated]"
	}
	w.buf, w.truncated = w.buf[:0], false
	if strings.TrimSpace(line) != "" {
		w.log.Debug("MCP server stderr", "line", line)
	}
}
