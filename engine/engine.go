package engine

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/spec"
)

// Options configure an Engine.
type Options struct {
	// Dirs are the spec folders (default agents.d).
	Dirs []string
	// ReadRoots are folders besides Dirs that spec files (by symlink) and
	// knowledge sources may be read from; see spec.LoaderOptions.
	ReadRoots []string
	// Env resolves ${VAR} in specs; nil means the process environment.
	Env spec.Env
	// Logger receives one line per reload; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Runtime supplies providers and tools. Nil compiles specs without making
	// them runnable (only useful to tools that inspect specs).
	Runtime *Runtime
	// ApproverScopes are the API key scopes approval policies may name (the
	// server's auth scopes); empty accepts any resource:verb.
	ApproverScopes []string
}

// ReloadResult describes one reload attempt.
type ReloadResult struct {
	Generation uint64           `json:"generation"` // of the snapshot serving after the reload
	Version    string           `json:"version"`
	Time       time.Time        `json:"time"`
	Duration   time.Duration    `json:"duration_ns"`
	Changed    bool             `json:"changed"` // a new snapshot was swapped in
	Err        error            `json:"-"`       // the folder could not be read; the old snapshot keeps serving
	Counts     map[Status]int   `json:"counts"`
	Errors     int              `json:"errors"`
	Warnings   int              `json:"warnings"`
	Stages     map[string]int64 `json:"stages_ns"` // per-stage timings: load, compile
}

// Success reports whether the reload read the folder (errors in individual
// objects do not make a reload fail).
func (r *ReloadResult) Success() bool { return r.Err == nil }

// Engine owns the current snapshot and the reload loop.
type Engine struct {
	dirs    []string
	loader  *spec.Loader
	runtime *Runtime
	log     *slog.Logger
	now     func() time.Time

	current atomic.Pointer[Snapshot]
	last    atomic.Pointer[ReloadResult]

	trigger chan struct{}           // buffered 1: a reload is wanted
	reqs    chan chan *ReloadResult // synchronous reload requests

	reloadMu sync.Mutex // serializes reloads between Run and Load
	subsMu   sync.Mutex
	subs     map[chan *Snapshot]struct{}
}

// New creates an engine and loads the folder once, so Current never returns nil.
// An unreadable folder is an error; errors in specs are not (they are reported in
// the snapshot and the reload result).
func New(opts Options) (*Engine, error) {
	if len(opts.Dirs) == 0 {
		opts.Dirs = []string{"agents.d"}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	e := &Engine{
		dirs:    opts.Dirs,
		runtime: opts.Runtime,
		loader:  spec.NewLoader(spec.LoaderOptions{Env: opts.Env, ReadRoots: opts.ReadRoots, BuiltinTools: opts.Runtime.registry().Builtins(), ApproverScopes: opts.ApproverScopes}),
		log:     opts.Logger,
		now:     opts.Now,
		trigger: make(chan struct{}, 1),
		reqs:    make(chan chan *ReloadResult),
		subs:    map[chan *Snapshot]struct{}{},
	}
	if res := e.reload(); res.Err != nil {
		return nil, res.Err
	}
	return e, nil
}

// Current returns the snapshot serving now. It is safe to call from any
// goroutine and never returns nil.
func (e *Engine) Current() *Snapshot { return e.current.Load() }

// LastReload returns the result of the most recent reload.
func (e *Engine) LastReload() *ReloadResult { return e.last.Load() }

// Dirs returns the spec folders.
func (e *Engine) Dirs() []string { return e.dirs }

// Trigger asks the reload loop to reload soon. It never blocks; triggers that
// arrive while a reload is pending coalesce into it.
func (e *Engine) Trigger() {
	select {
	case e.trigger <- struct{}{}:
	default:
	}
}

// Reload asks the reload loop for a reload and waits for its result. The reload
// starts after the call, so it sees every change made before it. Run must be
// running.
func (e *Engine) Reload(ctx context.Context) (*ReloadResult, error) {
	reply := make(chan *ReloadResult, 1)
	select {
	case e.reqs <- reply:
	case <-ctx.Done():
		return nil, fmt.Errorf("requesting reload: %w", ctx.Err())
	}
	select {
	case res := <-reply:
		return res, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for reload: %w", ctx.Err())
	}
}

// Subscribe returns a channel that receives each new snapshot (latest wins for
// slow readers) and a function that ends the subscription.
func (e *Engine) Subscribe() (<-chan *Snapshot, func()) {
	ch := make(chan *Snapshot, 1)
	e.subsMu.Lock()
	e.subs[ch] = struct{}{}
	e.subsMu.Unlock()
	return ch, func() {
		e.subsMu.Lock()
		delete(e.subs, ch)
		e.subsMu.Unlock()
	}
}

// Run is the reload loop: it reloads on every trigger, on every value from dirty
// (a file watcher; may be nil) and on every Reload request, until ctx is
// cancelled. Requests arriving during a reload are answered by the next one.
func (e *Engine) Run(ctx context.Context, dirty <-chan struct{}) error {
	for {
		var waiters []chan *ReloadResult
		select {
		case <-ctx.Done():
			return nil
		case <-e.trigger:
		case <-dirty:
		case w := <-e.reqs:
			waiters = append(waiters, w)
		}
		// Coalesce everything already queued into this reload.
	drain:
		for {
			select {
			case <-e.trigger:
			case <-dirty:
			case w := <-e.reqs:
				waiters = append(waiters, w)
			default:
				break drain
			}
		}
		res := e.reload()
		for _, w := range waiters {
			w <- res
		}
	}
}

// Load reloads synchronously, without the loop: for the CLI and tests.
func (e *Engine) Load() *ReloadResult { return e.reload() }

func (e *Engine) reload() *ReloadResult {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	start := e.now()
	res := &ReloadResult{Time: start, Stages: map[string]int64{}}
	prev := e.current.Load()

	set, err := e.loader.Load(e.dirs...)
	loaded := e.now()
	res.Stages["load"] = int64(loaded.Sub(start))
	if err != nil {
		res.Err = err
		res.Duration = e.now().Sub(start)
		if prev != nil {
			res.Generation, res.Version = prev.generation, prev.version
		}
		e.last.Store(res)
		e.log.Error("reload failed; the previous snapshot keeps serving", "err", err, "generation", res.Generation)
		return res
	}

	snap := prev
	if prev == nil || prev.version != set.Version() {
		var gen uint64 = 1
		if prev != nil {
			gen = prev.generation + 1
		}
		snap = Compile(set, prev, gen, start, e.runtime)
		e.current.Store(snap)
		if prev != nil {
			prev.retire()
		}
		res.Changed = true
		e.publish(snap)
	}
	res.Stages["compile"] = int64(e.now().Sub(loaded))
	res.Duration = e.now().Sub(start)
	res.Generation, res.Version = snap.generation, snap.version
	res.Counts = map[Status]int{}
	for _, o := range snap.objects {
		res.Counts[o.Status]++
	}
	for _, d := range snap.diagnostics {
		if d.Severity == spec.Error {
			res.Errors++
		} else {
			res.Warnings++
		}
	}
	e.last.Store(res)
	if res.Changed {
		e.log.Info("reloaded",
			"generation", res.Generation, "version", res.Version,
			"duration", res.Duration, "load", time.Duration(res.Stages["load"]), "compile", time.Duration(res.Stages["compile"]),
			"ok", res.Counts[StatusOK], "stale", res.Counts[StatusStale], "broken", res.Counts[StatusBroken],
			"errors", res.Errors, "warnings", res.Warnings)
		for _, d := range snap.diagnostics.Errors() {
			e.log.Warn("spec error", "diagnostic", d.Error())
		}
	}
	return res
}

func (e *Engine) publish(s *Snapshot) {
	e.subsMu.Lock()
	defer e.subsMu.Unlock()
	for ch := range e.subs {
		select {
		case <-ch: // drop the stale one: latest wins
		default:
		}
		ch <- s
	}
}

// Close retires the current snapshot, releasing pooled resources once its runs
// end. Call it after the reload loop has stopped.
func (e *Engine) Close() {
	if s := e.current.Load(); s != nil {
		s.retire()
	}
}

// ErrNotFound is returned when a run names an agent or team the snapshot does
// not serve. It is the run service's ErrNotFound, so that the service
// classifies the engine's answers without importing the engine.
var ErrNotFound = session.ErrNotFound
