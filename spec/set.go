package spec

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
)

// Set is the loaded content of a spec folder: every file, the objects they define
// and every diagnostic. A Set is immutable once built; it shares File and Document
// values with other Sets from the same Loader.
type Set struct {
	files    []*File
	version  string
	objects  map[Key]Document // first definition of each key
	objDiags map[Key]Diagnostics
	diags    Diagnostics
	keys     []Key
	builtins []BuiltinTool
	scopes   []string // known approver scopes; empty: any resource:verb
}

// NewSet validates files as one folder: references, duplicates and cycles.
// builtins are the tools the engine provides by name (from its tool registry);
// an agent may list them without a Tool document, and a Tool document may use
// their names as its type.
func NewSet(files []*File, builtins ...BuiltinTool) *Set {
	return NewSetWith(files, SetOptions{Builtins: builtins})
}

// SetOptions are what a Set is validated against besides its files.
type SetOptions struct {
	// Builtins are the tools the engine provides by name.
	Builtins []BuiltinTool
	// ApproverScopes are the API key scopes the server knows: approval
	// policies may name only these (spec checks their shape alone when it
	// is empty).
	ApproverScopes []string
}

// NewSetWith is NewSet with every option.
func NewSetWith(files []*File, o SetOptions) *Set {
	s := &Set{objects: map[Key]Document{}, objDiags: map[Key]Diagnostics{}, builtins: slices.Clone(o.Builtins), scopes: slices.Clone(o.ApproverScopes)}
	s.files = slices.SortedFunc(slices.Values(files), func(a, b *File) int { return cmp.Compare(a.Path, b.Path) })
	h := sha256.New()
	for _, f := range s.files {
		fmt.Fprintf(h, "%s\x00%s\x00", f.Path, f.Hash)
		s.diags = append(s.diags, f.Diagnostics...)
	}
	s.version = hex.EncodeToString(h.Sum(nil))[:16]

	first := map[Key]*Meta{}
	for _, f := range s.files {
		for _, doc := range f.Docs {
			m := doc.Header()
			if !validName(m.Name) {
				continue
			}
			k := m.Key()
			s.objDiags[k] = append(s.objDiags[k], m.diags...)
			if prev, dup := first[k]; dup {
				s.addObj(k, Diagnostic{Pos: m.PosOf(m.Path() + ".name"), Path: m.Path() + ".name", Severity: Error,
					Msg: fmt.Sprintf("duplicate %s name %q: also defined at %s", k.Kind.Lower(), k.Name, prev.PosOf(prev.Path()+".name"))})
				s.addObj(k, Diagnostic{Pos: prev.PosOf(prev.Path() + ".name"), Path: prev.Path() + ".name", Severity: Error,
					Msg: fmt.Sprintf("duplicate %s name %q: also defined at %s", k.Kind.Lower(), k.Name, m.PosOf(m.Path()+".name"))})
				continue
			}
			first[k] = m
			s.objects[k] = doc
			s.keys = append(s.keys, k)
		}
	}
	slices.SortFunc(s.keys, func(a, b Key) int {
		return cmp.Or(cmp.Compare(slices.Index(Kinds, a.Kind), slices.Index(Kinds, b.Kind)), cmp.Compare(a.Name, b.Name))
	})

	for _, f := range s.files {
		for _, doc := range f.Docs {
			m := doc.Header()
			v := &validator{set: s, meta: m}
			doc.validate(v)
			s.addObj(m.Key(), v.diags...)
		}
	}
	s.checkCycles()
	s.checkWorkflowCycles()
	s.checkUsage()
	s.diags = s.diags.sorted()
	for k, ds := range s.objDiags {
		s.objDiags[k] = ds.sorted()
	}
	return s
}

func (s *Set) addObj(k Key, ds ...Diagnostic) {
	s.diags = append(s.diags, ds...)
	if validName(k.Name) {
		s.objDiags[k] = append(s.objDiags[k], ds...)
	}
}

// checkCycles reports teams that contain themselves through other teams.
func (s *Set) checkCycles() {
	for _, k := range s.keys {
		if k.Kind != KindTeam {
			continue
		}
		t := s.objects[k].(*Team)
		for i, m := range t.Members {
			if m == t.Name {
				continue // reported by validate
			}
			if chain := s.teamPath(m, t.Name, map[string]bool{}); chain != nil {
				p := indexPath(t.Path()+".members", i)
				s.addObj(k, Diagnostic{Pos: t.PosOf(p), Path: p, Severity: Error,
					Msg: "team cycle: " + strings.Join(append([]string{t.Name}, chain...), " → ")})
			}
		}
	}
}

// teamPath returns the member chain from team from to team to, or nil.
func (s *Set) teamPath(from, to string, seen map[string]bool) []string {
	if seen[from] {
		return nil
	}
	seen[from] = true
	t, ok := s.objects[Key{KindTeam, from}].(*Team)
	if !ok {
		return nil
	}
	for _, m := range t.Members {
		if m == to {
			return []string{from, to}
		}
		if rest := s.teamPath(m, to, seen); rest != nil {
			return append([]string{from}, rest...)
		}
	}
	return nil
}

// checkWorkflowCycles reports workflows that run themselves through nested
// workflows (a → b → a); a workflow naming itself is reported by validate.
func (s *Set) checkWorkflowCycles() {
	for _, k := range s.keys {
		if k.Kind != KindWorkflow {
			continue
		}
		w := s.objects[k].(*Workflow)
		names, paths := w.workflowRefs()
		for i, n := range names {
			if n == w.Name {
				continue
			}
			if chain := s.workflowPath(n, w.Name, map[string]bool{}); chain != nil {
				s.addObj(k, Diagnostic{Pos: w.PosOf(paths[i]), Path: paths[i], Severity: Error,
					Msg: "workflow cycle: " + strings.Join(append([]string{w.Name}, chain...), " → ") + ": a workflow cannot run itself, even through others"})
			}
		}
	}
}

// workflowPath returns the nesting chain from workflow from to workflow to, or nil.
func (s *Set) workflowPath(from, to string, seen map[string]bool) []string {
	if seen[from] {
		return nil
	}
	seen[from] = true
	w, ok := s.objects[Key{KindWorkflow, from}].(*Workflow)
	if !ok {
		return nil
	}
	names, _ := w.workflowRefs()
	for _, n := range names {
		if n == to {
			return []string{from, to}
		}
		if rest := s.workflowPath(n, to, seen); rest != nil {
			return append([]string{from}, rest...)
		}
	}
	return nil
}

// checkUsage warns about things that are probably mistakes but harm nothing.
func (s *Set) checkUsage() {
	used := map[string]bool{}
	for _, k := range s.keys {
		if a, ok := s.objects[k].(*Agent); ok {
			for _, t := range a.Tools {
				used[t] = true
			}
			if slices.Contains(a.Tools, "knowledge_search") && len(a.Knowledge) == 0 {
				i := slices.Index(a.Tools, "knowledge_search")
				p := indexPath(a.Path()+".tools", i)
				s.addObj(k, Diagnostic{Pos: a.PosOf(p), Path: p, Severity: Warning, Msg: "knowledge_search has nothing to search: list knowledge for this agent"})
			}
		}
		if t, ok := s.objects[k].(*Team); ok {
			// A remote A2A member uses its tool.
			for _, m := range t.Members {
				if name, ok := strings.CutPrefix(m, A2AMemberPrefix); ok {
					used[name] = true
				}
			}
		}
	}
	for _, k := range s.keys {
		if t, ok := s.objects[k].(*Tool); ok && !used[t.Name] {
			s.addObj(k, Diagnostic{Pos: t.PosOf(t.Path() + ".name"), Path: t.Path(), Severity: Warning, Msg: fmt.Sprintf("tool %q is not used by any agent", t.Name)})
		}
	}
}

// Files returns the files of the set, sorted by path. The slice must not be modified.
func (s *Set) Files() []*File { return s.files }

// Version is a hash of every file's path and content.
func (s *Set) Version() string { return s.version }

// Diagnostics returns every problem in the folder, sorted.
func (s *Set) Diagnostics() Diagnostics { return s.diags }

// ObjectDiagnostics returns the problems concerning one object.
func (s *Set) ObjectDiagnostics(k Key) Diagnostics { return s.objDiags[k] }

// Broken reports whether an object has errors and so must not be served.
func (s *Set) Broken(k Key) bool { return s.objDiags[k].HasErrors() }

// Keys returns the keys of all defined objects, sorted by kind then name.
func (s *Set) Keys() []Key { return s.keys }

// Lookup returns the document defining k, or nil.
func (s *Set) Lookup(k Key) Document { return s.objects[k] }

func (s *Set) lookup(k Kind, name string) Document { return s.objects[Key{k, name}] }

// BuiltinTool reports whether name is a builtin tool of this Set, and its
// description.
func (s *Set) BuiltinTool(name string) (BuiltinTool, bool) { return s.builtin(name) }

func (s *Set) builtin(name string) (BuiltinTool, bool) {
	for _, b := range s.builtins {
		if b.Name == name {
			return b, true
		}
	}
	return BuiltinTool{}, false
}

func (s *Set) builtinNames() []string {
	out := make([]string, len(s.builtins))
	for i, b := range s.builtins {
		out[i] = b.Name
	}
	return out
}

func (s *Set) names(k Kind) []string {
	var out []string
	for _, key := range s.keys {
		if key.Kind == k {
			out = append(out, key.Name)
		}
	}
	return out
}

// Agent returns the agent named name, or nil.
func (s *Set) Agent(name string) *Agent { a, _ := s.objects[Key{KindAgent, name}].(*Agent); return a }

// Team returns the team named name, or nil.
func (s *Set) Team(name string) *Team { t, _ := s.objects[Key{KindTeam, name}].(*Team); return t }

// Tool returns the tool named name, or nil.
func (s *Set) Tool(name string) *Tool { t, _ := s.objects[Key{KindTool, name}].(*Tool); return t }

// Knowledge returns the knowledge base named name, or nil.
func (s *Set) Knowledge(name string) *Knowledge {
	k, _ := s.objects[Key{KindKnowledge, name}].(*Knowledge)
	return k
}

// Workflow returns the workflow named name, or nil.
func (s *Set) Workflow(name string) *Workflow {
	w, _ := s.objects[Key{KindWorkflow, name}].(*Workflow)
	return w
}

// Model returns the model configuration named name, or nil.
func (s *Set) Model(name string) *Model { m, _ := s.objects[Key{KindModel, name}].(*Model); return m }
