package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/troupehq/troupe/engine/agent"
	"github.com/troupehq/troupe/engine/budget"
	"github.com/troupehq/troupe/engine/guard"
	"github.com/troupehq/troupe/engine/memory"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/tool"
	"github.com/troupehq/troupe/engine/tool/egress"
	"github.com/troupehq/troupe/spec"
)

// Runtime is what compiled agents need to run: model providers, tool
// constructors and the pools of expensive resources shared across snapshots.
// cmd/troupe builds it; tests build their own with fakes.
type Runtime struct {
	// Models builds providers by name (openai, anthropic, ollama, echo, ...).
	Models *model.Registry
	// Tools builds tools by Tool document type and builtin name; nil means
	// DefaultTools with zero options (builtins without a knowledge searcher,
	// no MCP). The spec's list of builtin tools is derived from it.
	Tools *tool.Registry
	// Env resolves providers' default API key variables (OPENAI_API_KEY...).
	Env spec.Env
	// Now is the clock of runs; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// Workflows builds the runner of a compiled workflow (engine/workflow's
	// New, bound to the store's checkpoints by cmd/troupe). It is injected
	// because the workflow runner walks the engine's compiled tree, so the
	// engine cannot import it. Nil: workflows compile but do not run.
	Workflows func(*Workflow) agent.Runner
	// Egress is the policy of guardrails' HTTP calls (http guardrails), as
	// tools have theirs; the zero value reaches public addresses only.
	Egress egress.Policy

	guardHTTPOnce sync.Once
	guardHTTP     *http.Client
	// Budgets keeps budget counters (the store); nil enforces no budgets.
	Budgets budget.Store
	// Learning provides the save_learning tool of agents whose learning
	// offers it (engine/learning's Learner); nil offers none.
	Learning LearningTools
	// Memory provides the remember, forget and recall tools of agents and
	// team leaders with memory: agentic (engine/memory's Service); nil
	// offers none.
	Memory MemoryTools

	defaultTools sync.Once
	tools        *tool.Registry

	builtinMu sync.Mutex
	builtins  map[string]tool.Tool
}

// LearningTools builds the save_learning tool of an agent with learning
// (engine/learning implements it; the engine cannot import it, since it
// pins the engine's agents to distil their runs).
type LearningTools interface {
	// SaveTool returns the tool that saves (or, in mode propose,
	// proposes) one insight of agent a's runs.
	SaveTool(a *spec.Agent) tool.Tool
}

// MemoryTools builds the memory tools of a runner (memory.Service).
type MemoryTools interface {
	// Tools returns the tools acting on the run's user's memories, kept
	// under sc.
	Tools(sc memory.Scope) []tool.Tool
}

var _ MemoryTools = (*memory.Service)(nil)

// memoryTools returns the memory tools of runner name (a team when team)
// with memory m, none unless m offers them.
func (rt *Runtime) memoryTools(m *spec.Memory, name string, team bool) []tool.Tool {
	if m == nil || !m.Tools() || rt.Memory == nil {
		return nil
	}
	sc := memory.Scope{}
	if m.AgentScoped() {
		sc.AgentID = name
	}
	if team {
		sc.TeamID = name
	}
	return rt.Memory.Tools(sc)
}

// guardClient returns the one egress-filtered client of http guardrails,
// shared by every snapshot so its connections are reused; each check bounds
// its own time.
func (rt *Runtime) guardClient() *http.Client {
	rt.guardHTTPOnce.Do(func() { rt.guardHTTP = rt.Egress.Client(0) })
	return rt.guardHTTP
}

// guardrails compiles a runner's guardrails; nil when it has none, so the
// runner's Guardrails stay a nil interface and cost nothing.
func (c *compiler) guardrails(g spec.Guardrails, who guard.Who) (agent.Guardrails, error) {
	if g.Empty() {
		return nil, nil
	}
	set, err := guard.New(g, who, guard.Options{
		Model: func(ref string) (model.Provider, error) {
			return c.rt.chain(c.model(ref, map[string]*ModelRef{}, true))
		},
		HTTP: c.rt.guardClient(),
		Now:  c.rt.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("guardrails: %w", err)
	}
	return set, nil
}

// registry returns the tool registry; it is safe on a nil Runtime (spec
// tooling), which knows the default builtins but runs nothing.
func (rt *Runtime) registry() *tool.Registry {
	if rt == nil {
		return DefaultTools(ToolOptions{})
	}
	if rt.Tools != nil {
		return rt.Tools
	}
	rt.defaultTools.Do(func() { rt.tools = DefaultTools(ToolOptions{}) })
	return rt.tools
}

// builtin returns the instance of a builtin tool an agent lists by name,
// without a Tool document: one instance shared by every agent and snapshot,
// except for per-agent modules (knowledge_search), built for each agent.
func (rt *Runtime) builtin(ctx context.Context, name string, d tool.Deps) (tool.Tool, error) {
	m, ok := rt.registry().Module(name)
	if !ok || !m.Builtin || m.New == nil {
		return nil, fmt.Errorf("unknown builtin tool %q", name)
	}
	s := &spec.Tool{Meta: spec.Meta{Kind: spec.KindTool, Name: name}, Type: name}
	if m.PerAgent {
		return m.New(ctx, s, d)
	}
	rt.builtinMu.Lock()
	defer rt.builtinMu.Unlock()
	if t, ok := rt.builtins[name]; ok {
		return t, nil
	}
	t, err := m.New(ctx, s, d)
	if err != nil {
		return nil, fmt.Errorf("tool %s: %w", name, err)
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

// MissingKeyError is why an object whose model's provider has no API key
// cannot be built; its diagnostic carries spec.CodeMissingAPIKey.
type MissingKeyError struct {
	Model string // the model reference, such as openai/gpt-4o-mini
	Var   string // the variable the key is read from
}

func (e *MissingKeyError) Error() string {
	return fmt.Sprintf("model %s needs an API key: set %s, or api_key in a Model document", e.Model, e.Var)
}

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
		if m.Pricing != nil {
			t.Price = &model.Price{Input: m.Pricing.Input, Output: m.Pricing.Output}
		}
	}
	if t.Price == nil {
		if p, ok := model.KnownPrice(ref.Model); ok {
			t.Price = &p
		}
	}
	if cfg.APIKey == "" && rt.Env != nil {
		if v, ok := apiKeyVars[cfg.Provider]; ok {
			cfg.APIKey, _ = rt.Env(v)
		}
	}
	if cfg.APIKey == "" && cfg.BaseURL == "" {
		if v, ok := apiKeyVars[cfg.Provider]; ok {
			return t, &MissingKeyError{Model: ref.Ref, Var: v}
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

// resources are the tool instances a snapshot built from Tool documents.
type resources struct {
	rt       *Runtime
	tools    map[*spec.Tool]instance // this snapshot's, by document
	released bool
}

// instance is what a module built for one Tool document.
type instance struct {
	mod     tool.Module
	tool    tool.Tool
	toolset tool.Toolset
}

// fromDocument returns the instance for a Tool document: the one this snapshot
// already built, the previous snapshot's while the document is unchanged (for
// modules without Cleanup, whose instances outlive a snapshot), or a new one.
// Per-agent modules are built for each agent and never cached.
func (r *resources) fromDocument(ctx context.Context, s *spec.Tool, d tool.Deps, prev *resources) (instance, error) {
	if in, ok := r.tools[s]; ok {
		return in, nil
	}
	m, err := r.rt.registry().Lookup(s)
	if err != nil {
		return instance{}, err
	}
	if prev != nil && m.Cleanup == nil && !m.PerAgent {
		if in, ok := prev.tools[s]; ok {
			r.tools[s] = in
			return in, nil
		}
	}
	if m.Validate != nil {
		if err := m.Validate(s); err != nil {
			return instance{}, &toolDocError{doc: s, err: fmt.Errorf("tool %s: %w", s.Name, err)}
		}
	}
	in := instance{mod: m}
	if m.NewToolset != nil {
		in.toolset, err = m.NewToolset(ctx, s, d)
	} else {
		in.tool, err = m.New(ctx, s, d)
	}
	if err != nil {
		return instance{}, fmt.Errorf("tool %s: %w", s.Name, err)
	}
	if m.Builtin && in.tool != nil {
		in.tool = tool.Rename(in.tool, tool.SafeName(s.Name), s.Description)
	}
	if !m.PerAgent {
		r.tools[s] = in
	}
	return in, nil
}

// toolDocError is a module's verdict on a Tool document, kept with the
// document so the diagnostic can point at it (and at the field, for a
// tool.FieldError).
type toolDocError struct {
	doc *spec.Tool
	err error
}

func (e *toolDocError) Error() string { return e.err.Error() }
func (e *toolDocError) Unwrap() error { return e.err }

// position returns where the diagnostic for the error belongs.
func (e *toolDocError) position() (spec.Pos, string) {
	path := e.doc.Path()
	if fe, ok := errors.AsType[*tool.FieldError](e.err); ok {
		path += "." + fe.Field
	}
	return e.doc.PosOf(path), path
}

// release runs the Cleanup hooks of the instances this snapshot built (MCP
// servers no snapshot uses stop); instances without one may live on in the
// next snapshot.
func (r *resources) release() {
	if r == nil || r.released {
		return
	}
	r.released = true
	for _, in := range r.tools {
		if in.mod.Cleanup != nil {
			if in.toolset != nil {
				in.mod.Cleanup(in.toolset)
			} else {
				in.mod.Cleanup(in.tool)
			}
		}
	}
}
