package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdkmcp "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/troupehq/troupe/engine/tool"
	"github.com/troupehq/troupe/spec"
)

// startTimeout bounds starting a server and listing its tools. It is generous
// because the first start of an npx server downloads the package.
const startTimeout = 2 * time.Minute

// Toolset is one MCP server's tools. Safe for concurrent use.
//
// Toolsets come from [Pool.Acquire] and are stopped by the pool; they have no
// Close method of their own, because they may be shared by several snapshots.
type Toolset struct {
	pool *Pool
	key  string
	refs int // guarded by pool.mu

	cfg  config
	spec *spec.Tool // private copy, for Options.Dial
	log  *slog.Logger

	// life is cancelled when the toolset stops: it aborts starts, backoff
	// waits and calls in progress, so that stopping is prompt.
	life context.Context
	stop context.CancelFunc

	// sem is held while starting the server or refreshing its tool list, so
	// that concurrent first calls start it once. It is a channel rather than a
	// mutex so that waiting for it respects the caller's context. shutdown
	// takes it for good.
	sem chan struct{}
	// watchers counts the goroutines waiting for sessions to end. Add is only
	// called with sem held, so shutdown's Wait cannot race with it.
	watchers sync.WaitGroup

	mu       sync.Mutex
	conn     *conn // the live session; nil before the first start and after it ended
	stopped  bool
	starts   int             // successful starts, to tell restarts apart in logs
	startErr error           // why the last start failed, if it did
	failedAt time.Time       // when it failed
	diedAt   time.Time       // when the last session ended unexpectedly
	missing  map[string]bool // allow-listed names already reported missing
}

var (
	_ tool.Toolset      = (*Toolset)(nil)
	_ tool.SecretHolder = (*Toolset)(nil)
)

// Secrets returns the credentials the toolset gives its server: header and
// environment values whose names look like credentials or that were
// interpolated from the environment, and the URL's password and query
// values. A server may echo them in a tool result; the agent loop removes
// them.
func (t *Toolset) Secrets() []string {
	var out []string
	for _, m := range []map[string]string{t.spec.Headers, t.spec.Env} {
		for k, v := range m {
			if tool.SecretName(k) {
				out = append(out, v)
			}
		}
	}
	for _, field := range []string{"headers", "env", "url"} {
		out = append(out, t.spec.EnvValues(t.spec.Path()+"."+field)...)
	}
	return append(out, tool.URLSecrets(t.spec.URL)...)
}

// conn is one session with the server, from one start to its end.
type conn struct {
	session *sdkmcp.ClientSession
	ep      *endpoint
	done    chan struct{} // closed once the session ended and was cleaned up
	closing atomic.Bool   // the session is being ended on purpose
	stale   atomic.Bool   // the server announced that its tool list changed
	tools   []tool.Tool   // guarded by Toolset.mu once the conn is published
}

func (c *conn) ended() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// shut ends the session on purpose and waits until it is cleaned up (for a
// stdio server: until the process exited).
func (c *conn) shut() error {
	c.closing.Store(true)
	err := c.session.Close()
	<-c.done
	return err
}

func newToolset(p *Pool, key string, cfg config, s *spec.Tool) *Toolset {
	life, stop := context.WithCancel(context.Background())
	return &Toolset{
		pool:    p,
		key:     key,
		cfg:     cfg,
		spec:    cloneSpec(s),
		log:     p.log.With("mcp_server", cfg.Name),
		life:    life,
		stop:    stop,
		sem:     make(chan struct{}, 1),
		missing: make(map[string]bool),
	}
}

// Tools starts the server if it is not running, and returns its tools (those
// of the allow-list, if the document has one), named "<document>_<tool>".
// The list is fetched once per start, and again after the server announces
// that it changed.
func (t *Toolset) Tools(ctx context.Context) ([]tool.Tool, error) {
	ctx, cancel := t.bind(ctx)
	defer cancel()
	c, err := t.ready(ctx, true)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(c.tools), nil
}

// Running reports whether the server is started and its session alive.
func (t *Toolset) Running() bool { return t.live() != nil }

// live returns the current session if it has not ended.
func (t *Toolset) live() *conn {
	t.mu.Lock()
	c := t.conn
	t.mu.Unlock()
	if c == nil || c.ended() {
		return nil
	}
	return c
}

// bind returns ctx, cancelled also when the toolset stops.
func (t *Toolset) bind(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(t.life, func() { cancel(t.stoppedErr()) })
	return ctx, func() {
		stop()
		cancel(nil)
	}
}

func (t *Toolset) stoppedErr() error {
	return fmt.Errorf("MCP server %q was stopped (its configuration was removed or changed, or the engine is shutting down)", t.cfg.Name)
}

// interrupted explains why ctx ended while doing something.
func (t *Toolset) interrupted(ctx context.Context, doing string) error {
	if t.life.Err() != nil {
		return t.stoppedErr()
	}
	return fmt.Errorf("%s MCP server %q: %w", doing, t.cfg.Name, context.Cause(ctx))
}

// ready returns a live session, starting the server if needed. With fresh,
// it also refreshes a tool list the server announced as changed.
func (t *Toolset) ready(ctx context.Context, fresh bool) (*conn, error) {
	if c := t.live(); c != nil && !(fresh && c.stale.Load()) {
		return c, nil
	}
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, t.interrupted(ctx, "waiting for")
	}
	defer func() { <-t.sem }()

	// Another caller may have started it while this one waited.
	if c := t.live(); c != nil {
		if fresh && c.stale.Load() {
			t.refresh(ctx, c)
		}
		return c, nil
	}
	return t.start(ctx)
}

// start starts the server, or reports why it cannot. Called with sem held.
func (t *Toolset) start(ctx context.Context) (*conn, error) {
	t.mu.Lock()
	stopped, restart := t.stopped, t.starts > 0
	startErr, failedAt, diedAt := t.startErr, t.failedAt, t.diedAt
	t.mu.Unlock()
	if stopped {
		return nil, t.stoppedErr()
	}

	backoff := t.pool.opts.RestartBackoff
	if startErr != nil && time.Since(failedAt) < backoff {
		// Report the same failure again rather than hammer a server that
		// does not start; it is tried again once the backoff has passed.
		return nil, startErr
	}
	if wait := time.Until(diedAt.Add(backoff)); restart && wait > 0 {
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return nil, t.interrupted(ctx, "restarting")
		}
	}
	if restart {
		t.log.Info("restarting MCP server", "endpoint", t.cfg.endpoint())
	}

	c, err := t.connect(ctx)
	t.mu.Lock()
	if err != nil {
		// A cancelled caller says nothing about the server: the next caller
		// tries again at once.
		if ctx.Err() == nil {
			t.startErr, t.failedAt = err, time.Now()
		}
		t.mu.Unlock()
		if t.life.Err() != nil {
			return nil, t.stoppedErr()
		}
		t.log.Warn("MCP server did not start", "error", err)
		return nil, err
	}
	if t.stopped {
		t.mu.Unlock()
		_ = c.shut()
		return nil, t.stoppedErr()
	}
	t.conn = c
	t.starts++
	t.startErr = nil
	t.mu.Unlock()
	t.log.Info("MCP server started", "endpoint", t.cfg.endpoint(), "tools", len(c.tools), "restart", restart)
	return c, nil
}

// startError wraps a failure to start or reach the server.
func (t *Toolset) startError(err error) error {
	verb := "starting"
	if !t.cfg.stdio() {
		verb = "connecting to"
	}
	return fmt.Errorf("%s MCP server %q (%s): %w", verb, t.cfg.Name, t.cfg.endpoint(), t.cfg.redact(err))
}

// connect starts a session and lists the server's tools. Called with sem held.
func (t *Toolset) connect(ctx context.Context) (*conn, error) {
	// The session outlives the call that starts it, so it must not carry
	// that call's values or end with it: it runs under the toolset's life,
	// and only the start itself is abandoned when the caller gives up.
	sctx, cancel := context.WithTimeout(t.life, startTimeout)
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()

	ep, err := t.dial(sctx)
	if err != nil {
		return nil, t.startError(err)
	}
	c := &conn{ep: ep, done: make(chan struct{})}
	client := sdkmcp.NewClient(
		&sdkmcp.Implementation{Name: t.pool.opts.ClientName, Version: t.pool.opts.ClientVersion},
		&sdkmcp.ClientOptions{
			Logger: t.log,
			ToolListChangedHandler: func(context.Context, *sdkmcp.ToolListChangedRequest) {
				c.stale.Store(true)
			},
		})
	cs, err := client.Connect(sctx, ep.transport, nil)
	if err != nil {
		ep.cleanup() // the SDK closed what it opened; make sure no process is left
		return nil, t.startError(t.explain(ctx, sctx, err))
	}
	c.session = cs
	t.watchers.Add(1)
	go t.watch(c)

	tools, err := t.list(sctx, c)
	if err != nil {
		_ = c.shut()
		return nil, fmt.Errorf("listing tools of MCP server %q (%s): %w", t.cfg.Name, t.cfg.endpoint(), t.cfg.redact(t.explain(ctx, sctx, err)))
	}
	c.tools = tools
	return c, nil
}

// explain replaces a bare context error of a start with its reason.
func (t *Toolset) explain(ctx, sctx context.Context, err error) error {
	switch {
	case sctx.Err() == nil:
		return err
	case ctx.Err() != nil:
		return fmt.Errorf("%w (%v)", context.Cause(ctx), err)
	case t.life.Err() == nil:
		return fmt.Errorf("no answer within %s: %w", startTimeout, err)
	}
	return err
}

// watch waits for a session to end, cleans up after it, and marks the server
// as not running, so that the next use restarts it.
func (t *Toolset) watch(c *conn) {
	defer t.watchers.Done()
	err := c.session.Wait()
	// Close even a session that ended by itself: it releases what the SDK
	// keeps for the session (such as its subscription to list changes).
	_ = c.session.Close()
	c.ep.cleanup()
	close(c.done)

	t.mu.Lock()
	if t.conn == c {
		t.conn = nil
		t.diedAt = time.Now()
	}
	t.mu.Unlock()

	switch {
	case c.closing.Load():
		t.log.Debug("MCP session closed", "status", t.cfg.redact(err))
	case err != nil:
		t.log.Warn("MCP server exited or disconnected; it will be restarted on next use", "error", t.cfg.redact(err))
	default:
		t.log.Warn("MCP server exited or disconnected; it will be restarted on next use")
	}
}

// drop forgets a session whose connection broke, so that the next use starts
// the server again. The session normally closes itself when its connection
// breaks; closing it here makes sure of it.
func (t *Toolset) drop(c *conn) {
	t.mu.Lock()
	if t.conn == c {
		t.conn = nil
		t.diedAt = time.Now()
	}
	t.mu.Unlock()
	_ = c.session.Close()
}

// list fetches every page of the server's tools and adapts those allowed.
func (t *Toolset) list(ctx context.Context, c *conn) ([]tool.Tool, error) {
	var remote []*sdkmcp.Tool
	for rt, err := range c.session.Tools(ctx, nil) {
		if err != nil {
			return nil, err
		}
		remote = append(remote, rt)
	}

	var allowed map[string]bool
	if len(t.cfg.Allow) > 0 {
		allowed = make(map[string]bool, len(t.cfg.Allow))
		for _, name := range t.cfg.Allow {
			allowed[name] = true
		}
	}
	present := make(map[string]bool, len(remote))
	named := make(map[string]string, len(remote)) // offered name → server name
	var out []tool.Tool
	for _, rt := range remote {
		present[rt.Name] = true
		if allowed != nil && !allowed[rt.Name] {
			continue
		}
		mt := newTool(t, rt)
		if prev, dup := named[mt.def.Name]; dup {
			// Sanitizing can map two server names to one; the first wins.
			t.log.Warn("MCP tool skipped: its name collides with another tool's after sanitizing",
				"tool", rt.Name, "other", prev, "name", mt.def.Name)
			continue
		}
		named[mt.def.Name] = rt.Name
		out = append(out, mt)
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	for _, name := range t.cfg.Allow {
		if !present[name] && !t.missing[name] {
			t.missing[name] = true
			t.log.Warn("MCP tool in allow list does not exist on the server", "tool", name)
		}
	}
	return out, nil
}

// refresh lists the tools again after the server announced a change. Called
// with sem held. A failure keeps the previous list, which is still mostly
// right, and leaves the list marked stale so that the next use tries again.
func (t *Toolset) refresh(ctx context.Context, c *conn) {
	c.stale.Store(false) // before listing: a change announced meanwhile marks it again
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	tools, err := t.list(ctx, c)
	if err != nil {
		c.stale.Store(true)
		if connectionLost(c, err) {
			t.drop(c)
		}
		t.log.Warn("listing the changed tools of the MCP server failed; keeping the previous list", "error", t.cfg.redact(err))
		return
	}
	t.mu.Lock()
	c.tools = tools
	t.mu.Unlock()
	t.log.Info("MCP tool list changed", "tools", len(tools))
}

// call calls a server tool, restarting the server first if it is not
// running.
//
// A call that the closed connection refused to send (the server died while
// idle and that was not noticed yet) is retried once on a new session. A call
// that was already sent when the connection broke is not retried: the server
// may have carried it out, and tools are not necessarily idempotent. The
// error says so, and the next call restarts the server.
func (t *Toolset) call(ctx context.Context, name string, args json.RawMessage) (string, error) {
	ctx, cancel := t.bind(ctx)
	defer cancel()
	for retried := false; ; retried = true {
		c, err := t.ready(ctx, false)
		if err != nil {
			return "", err
		}
		res, err := t.callOnce(ctx, c, name, args)
		switch {
		case err == nil:
			out, err := callResult(t.cfg.Name, name, res)
			return out, t.cfg.redact(err)
		case ctx.Err() != nil:
			return "", t.interrupted(ctx, fmt.Sprintf("calling tool %q of", name))
		case !connectionLost(c, err):
			return "", t.callError(name, err)
		}
		t.drop(c)
		if !retried && notSent(err) {
			t.log.Info("MCP connection was closed; retrying the call on a new session", "tool", name, "error", t.cfg.redact(err))
			continue
		}
		return "", fmt.Errorf("MCP server %q stopped during the call to %q (%v); it will be restarted on the next call, but whether this call took effect is unknown", t.cfg.Name, name, t.cfg.redact(err))
	}
}

func (t *Toolset) callOnce(ctx context.Context, c *conn, name string, args json.RawMessage) (*sdkmcp.CallToolResult, error) {
	cctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	res, err := c.session.CallTool(cctx, &sdkmcp.CallToolParams{Name: name, Arguments: args})
	if err != nil && ctx.Err() == nil && cctx.Err() != nil {
		return nil, fmt.Errorf("MCP tool %q of server %q did not answer within %s: %w", name, t.cfg.Name, t.cfg.Timeout, context.DeadlineExceeded)
	}
	return res, err
}

// callError words a failed call for the model.
func (t *Toolset) callError(name string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return err // already worded by callOnce
	}
	var werr *jsonrpc.Error
	if errors.As(err, &werr) && werr.Code == jsonrpc.CodeInvalidParams {
		return tool.ArgumentError("MCP tool %q of server %q: %s", name, t.cfg.Name, t.cfg.redact(errors.New(werr.Message)))
	}
	return fmt.Errorf("calling MCP tool %q of server %q: %w", name, t.cfg.Name, t.cfg.redact(err))
}

// connectionLost reports whether err means that the session is unusable.
func connectionLost(c *conn, err error) bool {
	return c.ended() || notSent(err) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// notSent reports whether err means that a request never reached the server
// because the connection was already closed (or, for streamable HTTP, the
// server no longer knows the session).
func notSent(err error) bool {
	return errors.Is(err, sdkmcp.ErrConnectionClosed) ||
		errors.Is(err, sdkmcp.ErrSessionMissing) ||
		errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.ErrClosedPipe) ||
		errors.Is(err, os.ErrClosed) ||
		errors.Is(err, net.ErrClosed)
}

// shutdown stops the toolset for good: it cancels what is in progress, ends
// the session and waits until the server has exited. Called by the pool.
func (t *Toolset) shutdown() error {
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return nil
	}
	t.stopped = true
	c := t.conn
	t.conn = nil
	t.mu.Unlock()

	t.stop()
	t.sem <- struct{}{} // wait for a start in progress to give up; never released

	var err error
	if c != nil {
		err = c.shut()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			// How a server exits when asked to is its business.
			t.log.Debug("MCP server exited", "status", exit)
			err = nil
		}
		if err != nil {
			err = fmt.Errorf("stopping MCP server %q (%s): %w", t.cfg.Name, t.cfg.endpoint(), t.cfg.redact(err))
		}
	}
	t.watchers.Wait()
	if c != nil {
		t.log.Info("MCP server stopped")
	}
	return err
}
