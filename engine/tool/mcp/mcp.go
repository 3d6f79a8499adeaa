// Package mcp offers the tools of Model Context Protocol servers to agents.
//
// Each Tool document of type mcp becomes a [Toolset]: one MCP server, reached
// over stdio (a child process started from command/args/env) or streamable
// HTTP (url/headers). Its tools are offered to models as
// "<document name>_<server tool name>", so two servers can never collide.
//
// # Lazy start
//
// Acquiring a toolset never starts anything: the server is started (or
// connected to) by the first call to [Toolset.Tools] or to one of its tools,
// because configurations often declare servers that no agent uses right away,
// and a broken server must not stop the engine from loading. Concurrent first
// calls share one start. If the server dies or the connection breaks, the
// toolset notices (the session ends or a call fails with a connection error),
// and the next use starts it again, waiting at least [Options.RestartBackoff]
// after a crash so a server that dies at once cannot spin.
//
// # Pooling
//
// The engine compiles a new snapshot of its configuration on every reload.
// Restarting every MCP server on each reload would be slow and would lose
// server-side state, so snapshots obtain toolsets from a [Pool] instead of
// creating them: the pool keys toolsets by their normalized configuration
// (name, command, args, env, url, headers, allow, timeout) and counts
// references. A reload that leaves an MCP tool unchanged acquires the same
// *Toolset and keeps its running server; when the previous snapshot releases
// it, the count merely drops. The server is stopped when the last reference is
// released, or when the pool is closed at shutdown.
//
// # Environment of stdio servers
//
// Stdio servers are usually third-party programs (often started with npx), so
// they do not inherit the engine's environment, which holds API keys and other
// secrets. They receive only what programs and package runners need to work:
// PATH, HOME, USER, LANG, LC_ALL, TMPDIR, TERM, SHELL, XDG_*, NODE_OPTIONS,
// NODE_PATH, npm_config_* (any case), HTTP_PROXY, HTTPS_PROXY and NO_PROXY (any
// case), plus on Windows the variables its programs cannot start without
// (SystemRoot, ComSpec, PATHEXT, USERPROFILE, APPDATA, LOCALAPPDATA, TEMP, TMP,
// ...). The document's env is added on top and wins. Anything else a server
// needs, such as its own API key, must be listed in env (with ${VAR}).
//
// A stdio server's stderr is its log: it goes to the logger at debug level, one
// record per line, never to the engine's own output.
package mcp

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/troupehq/troupe/engine/tool"
	"github.com/troupehq/troupe/spec"
)

// Options configures a [Pool].
type Options struct {
	Logger        *slog.Logger // nil discards
	ClientName    string       // default "troupe"
	ClientVersion string       // default "dev"
	// RestartBackoff is the minimum wait before reconnecting a server that died
	// (default 1s). A server that fails to start is not retried within this
	// time either: the failure is reported again at once.
	RestartBackoff time.Duration

	// Dial overrides how the transport is created (tests). It is called for
	// every start, with a copy of the toolset's spec.
	Dial DialFunc
}

const (
	defaultClientName     = "troupe"
	defaultClientVersion  = "dev"
	defaultRestartBackoff = time.Second
)

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ClientName == "" {
		o.ClientName = defaultClientName
	}
	if o.ClientVersion == "" {
		o.ClientVersion = defaultClientVersion
	}
	if o.RestartBackoff <= 0 {
		o.RestartBackoff = defaultRestartBackoff
	}
	return o
}

// Pool shares MCP sessions between the compiled snapshots of the engine.
// Entries are keyed by the normalized configuration of the spec (name,
// command, args, env, url, headers, allow, timeout), and reference-counted: a
// reload that does not change an MCP tool gets the same *Toolset (no
// restart); the session closes when the last reference is released.
//
// A Pool is safe for concurrent use.
type Pool struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	entries map[string]*Toolset // by config key
	closed  bool

	// stopping tracks servers being stopped in the background after their last
	// release; Wait and Close wait for them.
	stopping sync.WaitGroup
}

// Module registers the mcp type over pool: each snapshot acquires the toolsets
// of its documents and releases them when it retires, so a server runs while
// any snapshot uses its configuration.
func Module(pool *Pool) tool.Module {
	return tool.Module{Type: spec.ToolMCP,
		NewToolset: func(_ context.Context, s *spec.Tool, _ tool.Deps) (tool.Toolset, error) {
			return pool.Acquire(s), nil
		},
		Cleanup: func(instance any) {
			if ts, ok := instance.(*Toolset); ok {
				pool.Release(ts)
			}
		}}
}

var _ tool.Toolset = (*Toolset)(nil)

// NewPool returns an empty pool.
func NewPool(opts Options) *Pool {
	opts = opts.withDefaults()
	return &Pool{opts: opts, log: opts.Logger, entries: make(map[string]*Toolset)}
}

// Acquire returns the toolset for s, creating it if no equal configuration is
// in use, and adds a reference to it that the caller must [Pool.Release]. It
// never connects and is cheap. After [Pool.Close], it returns a toolset whose
// Tools reports that the pool is closed.
func (p *Pool) Acquire(s *spec.Tool) *Toolset {
	cfg := newConfig(s)
	key := cfg.key()

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		ts := newToolset(p, key, cfg, s)
		ts.shutdown() // nothing was started: this returns at once
		return ts
	}
	if ts := p.entries[key]; ts != nil {
		ts.refs++
		return ts
	}
	ts := newToolset(p, key, cfg, s)
	ts.refs = 1
	p.entries[key] = ts
	return ts
}

// Release drops a reference obtained from [Pool.Acquire]. Releasing the last
// reference stops the server in the background (stdio servers get a grace
// period after their stdin is closed, then are terminated), so a reload that
// drops an MCP tool never waits for a slow server to exit; [Pool.Wait] and
// [Pool.Close] wait for it. Releasing nil, a toolset of another pool, or more
// often than acquired does nothing.
func (p *Pool) Release(ts *Toolset) {
	if ts == nil || ts.pool != p {
		return
	}
	p.mu.Lock()
	if ts.refs == 0 || p.entries[ts.key] != ts {
		p.mu.Unlock()
		return
	}
	ts.refs--
	if ts.refs > 0 {
		p.mu.Unlock()
		return
	}
	delete(p.entries, ts.key)
	p.mu.Unlock()

	// Stop outside the lock: it waits for the server to exit, and other
	// toolsets must stay acquirable meanwhile.
	p.stopping.Go(func() {
		if err := ts.shutdown(); err != nil {
			ts.log.Warn("stopping MCP server", "error", err)
		}
	})
}

// Wait blocks until every server released so far has exited.
func (p *Pool) Wait() { p.stopping.Wait() }

// Close stops every server of the pool, in parallel, and waits for them to
// exit. Toolsets acquired before stay valid values but fail from now on;
// releasing them does nothing. Close is idempotent.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	entries := p.entries
	p.entries = make(map[string]*Toolset)
	for _, ts := range entries {
		ts.refs = 0
	}
	p.mu.Unlock()

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, ts := range entries {
		wg.Go(func() {
			if err := ts.shutdown(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	p.stopping.Wait()
	return errors.Join(errs...)
}

// Len returns the number of toolsets in use (acquired and not yet released),
// for tests and metrics.
func (p *Pool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.entries)
}
