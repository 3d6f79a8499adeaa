package tool

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/spec"
)

// Module is one kind of tool: what a Tool document's type, or a builtin's name,
// builds. It follows Caddy's module lifecycle: New provisions, Validate and
// Cleanup are optional hooks.
type Module struct {
	// Type is the YAML type (http, mcp) or the builtin's name (http_fetch).
	Type string
	// Builtin modules may be listed by agents by name without a Tool document
	// (they then get their defaults), and configured by a Tool document whose
	// type is their name, with the fields in Options.
	Builtin bool
	// Options are the Tool document fields a builtin reads; the spec rejects
	// any other field, with its position.
	Options []string
	// PerAgent modules are built for each agent that lists them, because the
	// tool binds the agent's own resources (knowledge_search its knowledge
	// bases); the others are built once and shared.
	PerAgent bool

	// New builds a tool; exactly one of New and NewToolset is set.
	New func(ctx context.Context, s *spec.Tool, d Deps) (Tool, error)
	// NewToolset builds a toolset whose tools are found at run time (MCP).
	NewToolset func(ctx context.Context, s *spec.Tool, d Deps) (Toolset, error)
	// Validate, when set, checks a document before New, for what only the
	// module knows. A FieldError names the field, so the diagnostic points at
	// it.
	Validate func(s *spec.Tool) error
	// Cleanup, when set, releases what New or NewToolset acquired, when the
	// snapshot that built the instance retires. Instances of modules without
	// Cleanup are reused by the next snapshot while their document is
	// unchanged.
	Cleanup func(instance any)
}

// Deps are what a factory may use besides its document: the agent the tool is
// built for.
type Deps struct {
	// Knowledge are the knowledge bases of the agent the tool is built for,
	// in the order the agent lists them.
	Knowledge []*spec.Knowledge
}

// FieldError is a problem with one field of a Tool document; Field is its YAML
// key, such as allowed_hosts or allowed_hosts[1].
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Registry maps Tool document types and builtin names to modules. It is built
// explicitly (engine.DefaultTools in production, by hand in tests), never from
// init, and is read-only once built: safe for concurrent use.
type Registry struct {
	modules map[string]Module
	order   []string
}

// NewRegistry returns a registry of mods.
//
// It panics on a duplicate type or a module without exactly one factory: both
// are programming errors at wiring time, like Caddy's RegisterModule.
func NewRegistry(mods ...Module) *Registry {
	r := &Registry{modules: map[string]Module{}}
	for _, m := range mods {
		if _, dup := r.modules[m.Type]; dup || m.Type == "" {
			panic(fmt.Sprintf("tool: module type %q registered twice or empty", m.Type))
		}
		if (m.New == nil) == (m.NewToolset == nil) {
			panic(fmt.Sprintf("tool: module %q must set exactly one of New and NewToolset", m.Type))
		}
		r.modules[m.Type] = m
		r.order = append(r.order, m.Type)
	}
	return r
}

// Module returns the module for a Tool document's type or a builtin's name.
func (r *Registry) Module(typ string) (Module, bool) {
	if r == nil {
		return Module{}, false
	}
	m, ok := r.modules[typ]
	return m, ok
}

// Types lists the registered types in registration order.
func (r *Registry) Types() []string {
	if r == nil {
		return nil
	}
	return slices.Clone(r.order)
}

// Builtins describes the builtin modules for the spec loader, in registration
// order: the spec's list of builtin tools is derived from here.
func (r *Registry) Builtins() []spec.BuiltinTool {
	var out []spec.BuiltinTool
	for _, t := range r.Types() {
		if m := r.modules[t]; m.Builtin {
			out = append(out, spec.BuiltinTool{Name: t, Options: slices.Clone(m.Options)})
		}
	}
	return out
}

// Lookup returns the module for s, or an error naming the known types.
func (r *Registry) Lookup(s *spec.Tool) (Module, error) {
	m, ok := r.Module(s.Type)
	if !ok {
		return Module{}, fmt.Errorf("tool %s: no tool type %q in this process (types: %s)", s.Name, s.Type, strings.Join(r.Types(), ", "))
	}
	return m, nil
}

// Rename returns t offered to models under name, and description when it is
// not empty. A builtin configured by a Tool document is called by the
// document's name, so two configurations of one builtin never collide.
func Rename(t Tool, name, description string) Tool {
	def := t.Def()
	def.Name = name
	if description != "" {
		def.Description = description
	}
	return renamed{Tool: t, def: def}
}

type renamed struct {
	Tool
	def model.ToolDef
}

var (
	_ Tool   = renamed{}
	_ Closer = renamed{}
)

func (r renamed) Def() model.ToolDef { return r.def }

// Close closes the renamed tool if it holds resources.
func (r renamed) Close() error {
	if c, ok := r.Tool.(Closer); ok {
		return c.Close()
	}
	return nil
}
