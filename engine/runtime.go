package engine

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/tool"
	"github.com/troupehq/troupe/engine/tool/builtin"
	"github.com/troupehq/troupe/engine/tool/httptool"
	"github.com/troupehq/troupe/engine/tool/mcp"
	"github.com/troupehq/troupe/spec"
)

// Runtime is what compiled agents need to run: model providers, tool
// constructors and the pools of expensive resources shared across snapshots.
// cmd/troupe builds it; tests build their own with fakes.
type Runtime struct {
	// Models builds providers by name (openai, anthropic, ollama, echo, ...).
	Models *model.Registry
	// MCP pools MCP sessions across reloads; nil makes MCP tools unavailable.
	MCP *mcp.Pool
	// Builtin configures the builtin tools.
	Builtin builtin.Options
	// Env resolves providers' default API key variables (OPENAI_API_KEY...).
	Env spec.Env
	// Now is the clock of runs; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger

	builtinMu sync.Mutex
	builtins  map[string]tool.Tool
}

// builtin returns the shared instance of a builtin tool.
func (rt *Runtime) builtin(name string) (tool.Tool, error) {
	rt.builtinMu.Lock()
	defer rt.builtinMu.Unlock()
	if t, ok := rt.builtins[name]; ok {
		return t, nil
	}
	t, err := builtin.New(name, rt.Builtin)
	if err != nil {
		return nil, err
	}
	if rt.builtins == nil {
		rt.builtins = map[string]tool.Tool{}
	}
	rt.builtins[name] = t
	return t, nil
}

// apiKeyVars are the variables each provider reads its key from when the spec
// has none, as the vendors' own SDKs do.
var apiKeyVars = map[string]string{"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}

// chain builds the provider chain for a model reference: the model itself, then
// its fallbacks, each with the retry and timeout policy of its Model spec.
func (rt *Runtime) chain(ref *ModelRef) (*model.Chain, error) {
	c := &model.Chain{}
	if rt.Logger != nil {
		log := rt.Logger
		c.OnRetry = func(t model.Target, attempt int, err error, wait time.Duration) {
			log.Warn("retrying model request", "provider", t.Name, "model", t.Model, "attempt", attempt, "wait", wait, "err", err)
		}
	}
	for _, r := range append([]*ModelRef{ref}, ref.Fallbacks...) {
		t, err := rt.target(r)
		if err != nil {
			return nil, err
		}
		c.Targets = append(c.Targets, t)
	}
	return c, nil
}

func (rt *Runtime) target(ref *ModelRef) (model.Target, error) {
	cfg := model.Config{Provider: ref.Provider}
	t := model.Target{Name: ref.Provider, Model: ref.Model, Timeout: spec.DefaultModelTimeout, Retries: spec.DefaultModelRetries}
	if m := ref.Spec; m != nil {
		cfg.BaseURL, cfg.APIKey, cfg.Headers = m.BaseURL, m.APIKey, m.Headers
		t.Timeout, t.Retries = m.Timeout.D(), *m.Retries
		t.Temperature, t.MaxTokens = m.Temperature, m.MaxTokens
	}
	if cfg.APIKey == "" && rt.Env != nil {
		if v, ok := apiKeyVars[cfg.Provider]; ok {
			cfg.APIKey, _ = rt.Env(v)
		}
	}
	if cfg.APIKey == "" && cfg.BaseURL == "" {
		if v, ok := apiKeyVars[cfg.Provider]; ok {
			return t, fmt.Errorf("model %s needs an API key: set %s, or api_key in a Model document", ref.Ref, v)
		}
	}
	if rt.Models == nil {
		return t, fmt.Errorf("no model providers are configured")
	}
	p, err := rt.Models.Provider(cfg)
	if err != nil {
		return t, fmt.Errorf("model %s: %w", ref.Ref, err)
	}
	t.Provider = p
	return t, nil
}

// resources are the pooled and per-snapshot instances a snapshot holds.
type resources struct {
	rt       *Runtime
	http     map[*spec.Tool]tool.Tool    // reused across snapshots while the doc is unchanged
	mcp      map[*spec.Tool]*mcp.Toolset // acquired from the pool; released on retire
	released bool
}

func (r *resources) httpTool(s *spec.Tool, prev *resources) (tool.Tool, error) {
	if t, ok := r.http[s]; ok {
		return t, nil
	}
	if prev != nil {
		if t, ok := prev.http[s]; ok {
			r.http[s] = t
			return t, nil
		}
	}
	t, err := httptool.New(s)
	if err != nil {
		return nil, fmt.Errorf("tool %s: %w", s.Name, err)
	}
	r.http[s] = t
	return t, nil
}

func (r *resources) mcpToolset(s *spec.Tool) (*mcp.Toolset, error) {
	if ts, ok := r.mcp[s]; ok {
		return ts, nil
	}
	if r.rt.MCP == nil {
		return nil, fmt.Errorf("tool %s: MCP tools are not available in this process", s.Name)
	}
	ts := r.rt.MCP.Acquire(s)
	r.mcp[s] = ts
	return ts, nil
}

// release gives pooled resources back; MCP servers no snapshot uses stop.
func (r *resources) release() {
	if r == nil || r.released {
		return
	}
	r.released = true
	for _, ts := range r.mcp {
		r.rt.MCP.Release(ts)
	}
}
