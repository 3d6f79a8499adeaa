package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/troupehq/troupe/engine/agent"
	"github.com/troupehq/troupe/engine/approval"
	"github.com/troupehq/troupe/engine/budget"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/guard"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/team"
	"github.com/troupehq/troupe/engine/tool"
	"github.com/troupehq/troupe/spec"
)

// Compile builds a snapshot from a loaded folder. prev, the snapshot serving now
// (nil at start-up), supplies the last good version of every object whose current
// definition has errors, and of every object in a file that no longer parses.
//
// Compile mutates nothing shared and opens no connections: expensive resources are
// created lazily by the runtime from the compiled definitions.
//
// rt supplies providers and tools; with a nil rt the snapshot only resolves
// references (agents and teams have no Runner), which is all spec tooling needs.
func Compile(set *spec.Set, prev *Snapshot, generation uint64, now time.Time, rt *Runtime) *Snapshot {
	c := &compiler{set: set, prev: prev, gen: generation, objects: map[spec.Key]*Object{}, rt: rt}
	if rt != nil {
		c.res = &resources{rt: rt, tools: map[*spec.Tool]instance{}}
		if prev != nil {
			c.prevRes = prev.res
		}
	}
	c.choose()
	for k := range c.objects {
		c.keys = append(c.keys, k)
	}
	slices.SortFunc(c.keys, compareKeys)
	c.checkDependencies()
	s := &Snapshot{
		generation: generation,
		version:    set.Version(),
		created:    now,
		objects:    c.objects,
		agents:     map[string]*Agent{},
		teams:      map[string]*Team{},
		workflows:  map[string]*Workflow{},
		files:      set.Files(),
		res:        c.res,
	}
	c.build(s)
	s.keys = c.keys
	s.diagnostics = slices.Concat(set.Diagnostics(), c.extra)
	s.diagnostics.Sort()
	return s
}

func compareKeys(a, b spec.Key) int {
	if d := slices.Index(spec.Kinds, a.Kind) - slices.Index(spec.Kinds, b.Kind); d != 0 {
		return d
	}
	switch {
	case a.Name < b.Name:
		return -1
	case a.Name > b.Name:
		return 1
	}
	return 0
}

type compiler struct {
	set     *spec.Set
	prev    *Snapshot
	gen     uint64
	objects map[spec.Key]*Object
	keys    []spec.Key       // sorted keys of objects
	extra   spec.Diagnostics // diagnostics added by compilation (broken dependencies)

	rt      *Runtime
	res     *resources // this snapshot's
	prevRes *resources // the previous snapshot's, for reuse

	secrets []string // see configuredSecrets; built on first use
	secOnce bool
}

// configuredSecrets returns the credentials the configuration holds: every
// value the specs take from the environment (${VAR}), the api_key of every
// Model document and the providers' usual key variables. Agents and teams
// keep them out of the conversations traces record.
func (c *compiler) configuredSecrets() []string {
	if c.secOnce {
		return c.secrets
	}
	c.secOnce = true
	for _, k := range c.set.Keys() {
		d := c.set.Lookup(k)
		if d == nil {
			continue
		}
		c.secrets = append(c.secrets, d.Header().AllEnvValues()...)
		if m, ok := d.(*spec.Model); ok && m.APIKey != "" {
			c.secrets = append(c.secrets, m.APIKey)
		}
	}
	if c.rt != nil && c.rt.Env != nil {
		for _, v := range apiKeyVars {
			if key, ok := c.rt.Env(v); ok && key != "" {
				c.secrets = append(c.secrets, key)
			}
		}
	}
	return c.secrets
}

// breakObject marks a serving object broken because it could not be built.
func (c *compiler) breakObject(k spec.Key, err error) {
	o := c.objects[k]
	m := o.Doc.Header()
	diag := spec.Diagnostic{Pos: m.Pos(), Path: m.Path(), Severity: spec.Error, Msg: err.Error()}
	if de, ok := errors.AsType[*toolDocError](err); ok {
		// A module rejected a Tool document the agent uses: point there.
		diag.Pos, diag.Path = de.position()
	}
	if _, ok := errors.AsType[*MissingKeyError](err); ok {
		diag.Code = spec.CodeMissingAPIKey
	}
	o.Diagnostics = append(slices.Clone(o.Diagnostics), diag)
	o.Doc, o.Status = nil, StatusBroken
	c.extra = append(c.extra, diag)
}

// choose picks, for every object, the definition to serve.
func (c *compiler) choose() {
	for _, k := range c.set.Keys() {
		doc := c.set.Lookup(k)
		o := &Object{Key: k, File: doc.Header().Pos().File, Diagnostics: c.set.ObjectDiagnostics(k)}
		if !o.Diagnostics.HasErrors() {
			o.Doc, o.Status, o.Generation = doc, StatusOK, c.gen
			if p := c.prevServed(k); p != nil && p.Doc.Header().Hash() == doc.Header().Hash() {
				o.Generation = p.Generation // unchanged definition
			}
		} else {
			c.fallBack(o)
		}
		c.objects[k] = o
	}
	// Objects of files that no longer parse are unknown in the new set: keep
	// serving what those files defined before.
	failed := map[string]spec.Diagnostics{}
	for _, f := range c.set.Files() {
		if f.Failed {
			failed[f.Path] = f.Diagnostics
		}
	}
	if c.prev == nil || len(failed) == 0 {
		return
	}
	for _, k := range c.prev.keys {
		p := c.prev.objects[k]
		diags, isFailed := failed[p.File]
		if _, redefined := c.objects[k]; !isFailed || redefined {
			continue
		}
		o := *p
		o.Diagnostics = diags
		if o.Doc != nil {
			o.Status = StatusStale
		}
		c.objects[k] = &o
	}
}

func (c *compiler) prevServed(k spec.Key) *Object {
	if c.prev == nil {
		return nil
	}
	if p, ok := c.prev.objects[k]; ok && p.Doc != nil {
		return p
	}
	return nil
}

// fallBack serves the previous good version of o, or marks it broken.
func (c *compiler) fallBack(o *Object) {
	if p := c.prevServed(o.Key); p != nil && o.Doc != p.Doc {
		o.Doc, o.Status, o.Generation = p.Doc, StatusStale, p.Generation
		return
	}
	o.Doc, o.Status = nil, StatusBroken
}

// dependencies lists the objects a definition refers to (builtins and inline
// model strings need no object).
func (c *compiler) dependencies(doc spec.Document) []spec.Key {
	var out []spec.Key
	model := func(ref string) {
		if _, _, inline := spec.SplitModelRef(ref); !inline && ref != "" {
			out = append(out, spec.Key{Kind: spec.KindModel, Name: ref})
		}
	}
	budgets := func(names []string) {
		for _, n := range names {
			out = append(out, spec.Key{Kind: spec.KindBudget, Name: n})
		}
	}
	switch d := doc.(type) {
	case *spec.Agent:
		model(d.Model)
		if d.Reasoning != nil {
			model(d.Reasoning.Model)
		}
		if d.Learning != nil {
			model(d.Learning.Model)
			out = append(out, spec.Key{Kind: spec.KindKnowledge, Name: d.Learning.Knowledge})
		}
		if d.Memory != nil {
			model(d.Memory.Model)
		}
		budgets(d.Budgets)
		for _, t := range d.Tools {
			if _, builtin := c.set.BuiltinTool(t); !builtin {
				out = append(out, spec.Key{Kind: spec.KindTool, Name: t})
			}
		}
		for _, k := range d.Knowledge {
			out = append(out, spec.Key{Kind: spec.KindKnowledge, Name: k})
		}
	case *spec.Team:
		model(d.Model)
		if d.Reasoning != nil {
			model(d.Reasoning.Model)
		}
		if d.Learning != nil {
			model(d.Learning.Model)
			out = append(out, spec.Key{Kind: spec.KindKnowledge, Name: d.Learning.Knowledge})
		}
		if d.Memory != nil {
			model(d.Memory.Model)
		}
		budgets(d.Budgets)
		// Members are resolved in build, where agent and team names are known.
	case *spec.Model:
		for _, f := range d.Fallbacks {
			model(f)
		}
	case *spec.Knowledge:
		if name := d.Embedder.ModelName(); name != "" {
			out = append(out, spec.Key{Kind: spec.KindModel, Name: name})
		}
	case *spec.Workflow:
		budgets(d.Budgets)
		d.Walk(func(_ string, st *spec.Step) {
			for _, dep := range []spec.Key{{Kind: spec.KindAgent, Name: st.Agent}, {Kind: spec.KindTeam, Name: st.Team}, {Kind: spec.KindWorkflow, Name: st.Workflow}} {
				if dep.Name != "" {
					out = append(out, dep)
				}
			}
			if st.Router != nil && st.Router.Agent != "" {
				out = append(out, spec.Key{Kind: spec.KindAgent, Name: st.Router.Agent})
			}
		})
	}
	return out
}

// checkDependencies marks objects whose dependencies are not serving: they fall
// back to their previous version or become broken, until nothing changes.
func (c *compiler) checkDependencies() {
	for changed := true; changed; {
		changed = false
		for _, k := range c.keys {
			o := c.objects[k]
			if o.Doc == nil {
				continue
			}
			deps := c.dependencies(o.Doc)
			if t, ok := o.Doc.(*spec.Team); ok {
				for _, m := range t.Members {
					deps = append(deps, c.memberKey(m))
				}
			}
			for _, dep := range deps {
				if d, ok := c.objects[dep]; ok && d.Doc != nil {
					continue
				}
				m := o.Doc.Header()
				diag := spec.Diagnostic{Pos: m.Pos(), Path: m.Path(), Severity: spec.Error,
					Msg: fmt.Sprintf("depends on %s %q, which is not serving", dep.Kind.Lower(), dep.Name)}
				o.Diagnostics = append(slices.Clone(o.Diagnostics), diag)
				c.extra = append(c.extra, diag)
				c.fallBack(o)
				changed = true
				break
			}
		}
	}
}

func (c *compiler) memberKey(name string) spec.Key {
	if tool, ok := strings.CutPrefix(name, spec.A2AMemberPrefix); ok {
		return spec.Key{Kind: spec.KindTool, Name: tool}
	}
	if o, ok := c.objects[spec.Key{Kind: spec.KindTeam, Name: name}]; ok && o.Doc != nil {
		return o.Key
	}
	return spec.Key{Kind: spec.KindAgent, Name: name}
}

// build creates the compiled agents, teams and workflows of the serving objects.
func (c *compiler) build(s *Snapshot) {
	models := map[string]*ModelRef{}
	for _, k := range c.keys {
		if a, ok := c.objects[k].Doc.(*spec.Agent); ok {
			compiled, err := c.agent(a, models)
			if err != nil {
				c.breakObject(k, err)
				continue
			}
			s.agents[a.Name] = compiled
		}
	}
	building := map[string]bool{}
	for _, k := range c.keys {
		if t, ok := c.objects[k].Doc.(*spec.Team); ok {
			c.team(s, t, models, building)
		}
	}
	building = map[string]bool{}
	for _, k := range c.keys {
		if w, ok := c.objects[k].Doc.(*spec.Workflow); ok {
			c.workflow(s, w, building)
		}
	}
}

func (c *compiler) agent(a *spec.Agent, models map[string]*ModelRef) (*Agent, error) {
	out := &Agent{Spec: a, Model: c.model(a.Model, models, true)}
	for _, t := range a.Tools {
		if _, builtin := c.set.BuiltinTool(t); builtin {
			out.Tools = append(out.Tools, ToolRef{Name: t, Builtin: true})
			continue
		}
		out.Tools = append(out.Tools, ToolRef{Name: t, Spec: c.objects[spec.Key{Kind: spec.KindTool, Name: t}].Doc.(*spec.Tool)})
	}
	// Listing knowledge gives the agent its search unless it opts out.
	if a.SearchesKnowledge() && !slices.Contains(a.Tools, "knowledge_search") {
		if _, builtin := c.set.BuiltinTool("knowledge_search"); builtin {
			out.Tools = append(out.Tools, ToolRef{Name: "knowledge_search", Builtin: true})
		}
	}
	for _, k := range a.Knowledge {
		out.Knowledge = append(out.Knowledge, c.objects[spec.Key{Kind: spec.KindKnowledge, Name: k}].Doc.(*spec.Knowledge))
	}
	if c.rt == nil {
		return out, nil
	}
	runner, err := c.runner(out)
	if err != nil {
		return nil, err
	}
	out.Runner = runner
	return out, nil
}

// budgets compiles the Budget documents names refers to (dependencies
// have made sure they serve).
func (c *compiler) budgets(names []string) []*budget.Budget {
	var out []*budget.Budget
	for _, n := range names {
		if o, ok := c.objects[spec.Key{Kind: spec.KindBudget, Name: n}]; ok && o.Doc != nil {
			out = append(out, budget.Compile(o.Doc.(*spec.Budget)))
		}
	}
	return out
}

// policy is the budget policy of a runner referencing names; the zero
// Policy (nothing enforced) without a budget store.
func (c *compiler) policy(names []string) budget.Policy {
	if len(names) == 0 || c.rt == nil || c.rt.Budgets == nil {
		return budget.Policy{}
	}
	return budget.Policy{Budgets: c.budgets(names), Store: c.rt.Budgets, Now: c.rt.Now}
}

// reasoner builds the planning model of reasoning.model, with its model id
// and provider; nil without one.
func (c *compiler) reasoner(r *spec.Reasoning) (model.Provider, string, string, error) {
	if r == nil || r.Model == "" {
		return nil, "", "", nil
	}
	ref := c.model(r.Model, map[string]*ModelRef{}, true)
	p, err := c.rt.chain(ref)
	if err != nil {
		return nil, "", "", fmt.Errorf("reasoning model: %w", err)
	}
	return p, ref.Model, ref.Provider, nil
}

// summarizer resolves the model of a summary: its own, or the agent's (the
// leader's) provider and ref when it names none.
func (c *compiler) summarizer(s *spec.Summary, own model.Provider, ownRef *ModelRef) (model.Provider, string, string, error) {
	if !s.On() {
		return nil, "", "", nil
	}
	if s.Model == "" {
		return own, ownRef.Model, ownRef.Provider, nil
	}
	ref := c.model(s.Model, map[string]*ModelRef{}, true)
	p, err := c.rt.chain(ref)
	if err != nil {
		return nil, "", "", fmt.Errorf("summary model: %w", err)
	}
	return p, ref.Model, ref.Provider, nil
}

// learningModel resolves the model that distils runs of a runner with
// learning l: l.model, or the runner's own (provider, id).
func (c *compiler) learningModel(l *spec.Learning, provider model.Provider, id string) (model.Provider, string, error) {
	if l.Model == "" {
		return provider, id, nil
	}
	ref := c.model(l.Model, map[string]*ModelRef{}, true)
	p, err := c.rt.chain(ref)
	if err != nil {
		return nil, "", fmt.Errorf("learning model: %w", err)
	}
	return p, ref.Model, nil
}

// memoryModel resolves the model that extracts the memories of a runner
// with memory m: m.model, or the runner's own (provider, id); nil when m
// does not extract.
func (c *compiler) memoryModel(m *spec.Memory, provider model.Provider, id string) (model.Provider, string, error) {
	if !m.Extracts() {
		return nil, "", nil
	}
	if m.Model == "" {
		return provider, id, nil
	}
	ref := c.model(m.Model, map[string]*ModelRef{}, true)
	p, err := c.rt.chain(ref)
	if err != nil {
		return nil, "", fmt.Errorf("memory model: %w", err)
	}
	return p, ref.Model, nil
}

// remoteRunner is a tool that can also be a team member: a remote A2A
// agent.
type remoteRunner interface {
	Member(name string) agent.Runner
}

// remoteMember builds team member name ("a2a:<tool>") from its Tool
// document, sharing the tool's instance (and its connection).
func (c *compiler) remoteMember(name string) (agent.Runner, error) {
	toolName := strings.TrimPrefix(name, spec.A2AMemberPrefix)
	o, ok := c.objects[spec.Key{Kind: spec.KindTool, Name: toolName}]
	if !ok || o.Doc == nil {
		return nil, fmt.Errorf("member %s: tool %s is not serving", name, toolName)
	}
	in, err := c.res.fromDocument(context.Background(), o.Doc.(*spec.Tool), tool.Deps{}, c.prevRes)
	if err != nil {
		return nil, err
	}
	r, ok := in.tool.(remoteRunner)
	if !ok {
		return nil, fmt.Errorf("member %s: tool %s cannot be a team member: only a Tool of type a2a can", name, toolName)
	}
	return r.Member(name), nil
}

// remoteName is a member that only has a name, for spec tooling that
// compiles without a runtime.
type remoteName string

func (n remoteName) Name() string                          { return string(n) }
func (n remoteName) Description() string                   { return "" }
func (n remoteName) ModelInfo() (modelID, provider string) { return "", spec.ToolA2A }
func (n remoteName) HistoryRuns() int                      { return 0 }
func (n remoteName) Execute(_ context.Context, in agent.Input, _ func(event.Event)) *agent.Result {
	return &agent.Result{RunID: in.RunID, Status: event.StatusError, Err: errors.New("remote members do not run without a runtime")}
}

// runner builds the run-ready form of a compiled agent.
func (c *compiler) runner(a *Agent) (*agent.Agent, error) {
	provider, err := c.rt.chain(a.Model)
	if err != nil {
		return nil, err
	}
	cfg := agent.Config{Spec: a.Spec, Provider: provider, Model: a.Model.Model, Vendor: a.Model.Provider, Now: c.rt.Now, Budgets: c.policy(a.Spec.Budgets),
		Secrets: c.configuredSecrets()}
	if cfg.Reasoner, cfg.ReasonerModel, cfg.ReasonerVendor, err = c.reasoner(a.Spec.Reasoning); err != nil {
		return nil, err
	}
	if cfg.Summarizer, cfg.SummarizerModel, cfg.SummarizerVendor, err = c.summarizer(a.Spec.Summary, provider, a.Model); err != nil {
		return nil, err
	}
	// Factories open no connections (tools connect lazily on first call), so
	// compiling needs no context of its own.
	ctx := context.Background()
	deps := tool.Deps{Knowledge: a.Knowledge}
	for _, ref := range a.Tools {
		if ref.Builtin {
			t, err := c.rt.builtin(ctx, ref.Name, deps)
			if err != nil {
				return nil, err
			}
			cfg.Tools = append(cfg.Tools, t)
			continue
		}
		in, err := c.res.fromDocument(ctx, ref.Spec, deps, c.prevRes)
		if err != nil {
			return nil, err
		}
		// The tool's control points (approval, external, user_input).
		gate := approval.NewGate(ref.Spec)
		if in.toolset != nil {
			cfg.Toolsets = append(cfg.Toolsets, in.toolset)
			cfg.ToolsetGates = append(cfg.ToolsetGates, gate)
		} else {
			cfg.Tools = append(cfg.Tools, in.tool)
			if gate != nil {
				if cfg.Gates == nil {
					cfg.Gates = map[string]*approval.Gate{}
				}
				cfg.Gates[in.tool.Def().Name] = gate
			}
		}
	}
	if len(a.Knowledge) > 0 && a.Spec.SearchesKnowledge() {
		names := make([]string, len(a.Knowledge))
		for i, k := range a.Knowledge {
			names[i] = k.Name
		}
		cfg.KnowledgeHint = fmt.Sprintf("You have access to the knowledge base(s) %s. Search them with knowledge_search before answering questions they may cover, answer from what you find, and cite the documents you used.", strings.Join(names, ", "))
	}
	if l := a.Spec.Learning; l != nil {
		if cfg.LearningModel, cfg.LearningModelID, err = c.learningModel(l, provider, a.Model.Model); err != nil {
			return nil, err
		}
		if l.Tool() && c.rt.Learning != nil {
			cfg.Tools = append(cfg.Tools, c.rt.Learning.SaveTool(a.Spec))
		}
	}
	if m := a.Spec.Memory; m != nil {
		if cfg.MemoryModel, cfg.MemoryModelID, err = c.memoryModel(m, provider, a.Model.Model); err != nil {
			return nil, err
		}
		cfg.Tools = append(cfg.Tools, c.rt.memoryTools(m, a.Spec.Name, false)...)
	}
	g, err := c.guardrails(a.Spec.Guardrails, guard.Who{Kind: spec.KindAgent, Name: a.Spec.Name, Model: cfg.Model, Provider: cfg.Vendor})
	if err != nil {
		return nil, err
	}
	cfg.Guardrails = g
	return agent.New(cfg)
}

// team compiles a team and, first, the teams it contains. A team reached again
// while it is being built is part of a cycle (possible only between an old
// serving version and a new one) and is marked broken.
func (c *compiler) team(s *Snapshot, t *spec.Team, models map[string]*ModelRef, building map[string]bool) *Team {
	if done, ok := s.teams[t.Name]; ok {
		return done
	}
	if building[t.Name] {
		return nil
	}
	building[t.Name] = true
	defer delete(building, t.Name)
	out := &Team{Spec: t, Model: c.model(t.Model, models, true)}
	tk := spec.Key{Kind: spec.KindTeam, Name: t.Name}
	for _, name := range t.Members {
		if _, ok := strings.CutPrefix(name, spec.A2AMemberPrefix); ok {
			if c.rt == nil {
				// Spec tooling: the member is checked, not run.
				out.Members = append(out.Members, Member{Remote: remoteName(name)})
				continue
			}
			r, err := c.remoteMember(name)
			if err != nil {
				c.breakObject(tk, err)
				return nil
			}
			out.Members = append(out.Members, Member{Remote: r})
			continue
		}
		if a, ok := s.agents[name]; ok {
			out.Members = append(out.Members, Member{Agent: a})
			continue
		}
		var sub *Team
		if o, ok := c.objects[spec.Key{Kind: spec.KindTeam, Name: name}]; ok && o.Doc != nil {
			sub = c.team(s, o.Doc.(*spec.Team), models, building)
		}
		if sub == nil {
			to := c.objects[spec.Key{Kind: spec.KindTeam, Name: t.Name}]
			// Only a member being built is a cycle; any other member that is
			// not serving has errors of its own, reported on it.
			msg := fmt.Sprintf("member %q is not serving: fix its errors first", name)
			if building[name] {
				msg = fmt.Sprintf("member %q is not serving (a cycle between old and new team definitions)", name)
			}
			diag := spec.Diagnostic{Pos: t.Pos(), Path: t.Path(), Severity: spec.Error, Msg: msg}
			to.Diagnostics = append(slices.Clone(to.Diagnostics), diag)
			to.Doc, to.Status = nil, StatusBroken
			c.extra = append(c.extra, diag)
			return nil
		}
		out.Members = append(out.Members, Member{Team: sub})
	}
	if c.rt != nil {
		runner, err := c.teamRunner(out)
		if err != nil {
			c.breakObject(tk, err)
			return nil
		}
		out.Runner = runner
	}
	s.teams[t.Name] = out
	return out
}

func (c *compiler) teamRunner(t *Team) (*team.Team, error) {
	provider, err := c.rt.chain(t.Model)
	if err != nil {
		return nil, err
	}
	cfg := team.Config{Spec: t.Spec, Provider: provider, Model: t.Model.Model, Vendor: t.Model.Provider, Now: c.rt.Now, Budgets: c.policy(t.Spec.Budgets),
		Secrets: c.configuredSecrets()}
	if cfg.Reasoner, cfg.ReasonerModel, cfg.ReasonerVendor, err = c.reasoner(t.Spec.Reasoning); err != nil {
		return nil, err
	}
	if cfg.Summarizer, cfg.SummarizerModel, cfg.SummarizerVendor, err = c.summarizer(t.Spec.Summary, provider, t.Model); err != nil {
		return nil, err
	}
	if l := t.Spec.Learning; l != nil {
		if cfg.LearningModel, cfg.LearningModelID, err = c.learningModel(l, provider, t.Model.Model); err != nil {
			return nil, err
		}
	}
	if m := t.Spec.Memory; m != nil {
		if cfg.MemoryModel, cfg.MemoryModelID, err = c.memoryModel(m, provider, t.Model.Model); err != nil {
			return nil, err
		}
		cfg.LeaderTools = c.rt.memoryTools(m, t.Spec.Name, true)
	}
	for _, m := range t.Members {
		switch {
		case m.Agent != nil:
			cfg.Members = append(cfg.Members, m.Agent.Runner)
		case m.Remote != nil:
			cfg.Members = append(cfg.Members, m.Remote)
		default:
			cfg.Members = append(cfg.Members, m.Team.Runner)
		}
	}
	g, err := c.guardrails(t.Spec.Guardrails, guard.Who{Kind: spec.KindTeam, Name: t.Spec.Name, Model: cfg.Model, Provider: cfg.Vendor})
	if err != nil {
		return nil, err
	}
	cfg.Guardrails = g
	return team.New(cfg)
}

// model resolves a model reference. Fallbacks are followed one level only, so a
// fallback's own fallbacks never chain into loops.
func (c *compiler) model(ref string, memo map[string]*ModelRef, withFallbacks bool) *ModelRef {
	if withFallbacks {
		if m, ok := memo[ref]; ok {
			return m
		}
	}
	out := &ModelRef{Ref: ref}
	if provider, model, inline := spec.SplitModelRef(ref); inline {
		out.Provider, out.Model = provider, model
	} else if o, ok := c.objects[spec.Key{Kind: spec.KindModel, Name: ref}]; ok && o.Doc != nil {
		m := o.Doc.(*spec.Model)
		out.Provider, out.Model, out.Spec = m.Provider, m.Model, m
		if out.Model == "" {
			out.Model = m.Provider
		}
		if withFallbacks {
			for _, f := range m.Fallbacks {
				out.Fallbacks = append(out.Fallbacks, c.model(f, memo, false))
			}
		}
	}
	if withFallbacks {
		memo[ref] = out
	}
	return out
}
