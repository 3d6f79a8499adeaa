package engine

import (
	"slices"
	"sync"
	"time"

	"github.com/troupehq/troupe/engine/agent"
	"github.com/troupehq/troupe/engine/team"
	"github.com/troupehq/troupe/spec"
)

// Status is the state of one object in a snapshot.
type Status string

const (
	// StatusOK: the object's current definition is valid and serving.
	StatusOK Status = "ok"
	// StatusStale: the current definition has errors; the last good one is serving.
	StatusStale Status = "stale"
	// StatusBroken: the definition has errors and there is no good one to serve.
	StatusBroken Status = "broken"
)

// Object is one named spec object in a snapshot and the state it is in.
type Object struct {
	Key spec.Key
	// Doc is the definition being served; nil when Status is broken.
	Doc spec.Document
	// File is the file of the current definition (of the served one if the
	// current one is unknown because its file does not parse).
	File   string
	Status Status
	// Diagnostics of the current definition, including those that made it stale
	// or broken.
	Diagnostics spec.Diagnostics
	// Generation is the snapshot generation that first served Doc.
	Generation uint64
}

// Serving reports whether the object can be used.
func (o *Object) Serving() bool { return o.Doc != nil }

// Agent is a compiled agent: its spec with references resolved within the same
// snapshot.
type Agent struct {
	Spec      *spec.Agent
	Model     *ModelRef
	Tools     []ToolRef
	Knowledge []*spec.Knowledge
	// Runner runs the agent; nil when the snapshot was compiled without a
	// runtime (spec tooling).
	Runner *agent.Agent
}

// Name returns the agent's name.
func (a *Agent) Name() string { return a.Spec.Name }

// Team is a compiled team: members are agents or teams of the same snapshot.
type Team struct {
	Spec    *spec.Team
	Model   *ModelRef
	Members []Member
	// Runner runs the team; nil without a runtime.
	Runner *team.Team
}

// Name returns the team's name.
func (t *Team) Name() string { return t.Spec.Name }

// Member is one team member: exactly one of Agent and Team is set.
type Member struct {
	Agent *Agent
	Team  *Team
	// Remote is a remote A2A agent ("a2a:<tool name>"), run through its
	// Tool of type a2a.
	Remote agent.Runner
}

// Name returns the member's name.
func (m Member) Name() string {
	switch {
	case m.Agent != nil:
		return m.Agent.Name()
	case m.Remote != nil:
		return m.Remote.Name()
	}
	return m.Team.Name()
}

// Kind names what the member is: agent, team or a2a.
func (m Member) Kind() string {
	switch {
	case m.Agent != nil:
		return "agent"
	case m.Remote != nil:
		return spec.ToolA2A
	}
	return "team"
}

// ModelRef is a resolved model reference: either an inline provider/model string
// or a Model document, with its fallbacks resolved in order.
type ModelRef struct {
	Ref       string      // as written in the spec
	Provider  string      // openai, anthropic, ollama, echo
	Model     string      // vendor model id
	Spec      *spec.Model // nil for inline references
	Fallbacks []*ModelRef
}

// ToolRef is a resolved tool reference: a builtin name or a Tool document.
type ToolRef struct {
	Name    string
	Builtin bool
	Spec    *spec.Tool // nil for builtins
}

// Snapshot is one compiled, immutable version of the spec folder.
//
// A Snapshot is shared by every run that started while it was current: never
// modify it or anything reachable from it, and never copy it shallowly. Runs pin
// the snapshot they start with, so a reload never changes a run in flight.
type Snapshot struct {
	generation  uint64
	version     string
	created     time.Time
	objects     map[spec.Key]*Object
	keys        []spec.Key
	agents      map[string]*Agent
	teams       map[string]*Team
	workflows   map[string]*Workflow
	files       []*spec.File
	diagnostics spec.Diagnostics

	res *resources // pooled resources, released when the snapshot retires

	mu      sync.Mutex // guards the lifecycle below
	runs    int        // runs holding the snapshot
	retired bool       // a newer snapshot is current
	closed  bool       // resources released; no new run may start
}

// acquire pins the snapshot for a run. It fails once the snapshot has been
// retired and released.
func (s *Snapshot) acquire() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.runs++
	return true
}

// releaseRun unpins the snapshot; the last run of a retired snapshot releases
// its resources.
func (s *Snapshot) releaseRun() {
	s.mu.Lock()
	s.runs--
	last := s.retired && s.runs == 0 && !s.closed
	if last {
		s.closed = true
	}
	s.mu.Unlock()
	if last {
		s.res.release()
	}
}

// retire marks the snapshot replaced; it releases its resources now if no run
// holds it, or when the last run ends.
func (s *Snapshot) retire() {
	s.mu.Lock()
	s.retired = true
	now := s.runs == 0 && !s.closed
	if now {
		s.closed = true
	}
	s.mu.Unlock()
	if now {
		s.res.release()
	}
}

// Generation counts snapshots: each successful reload that changed something
// increments it.
func (s *Snapshot) Generation() uint64 { return s.generation }

// Version is the content hash of the folder this snapshot was compiled from.
func (s *Snapshot) Version() string { return s.version }

// Created is when the snapshot was compiled.
func (s *Snapshot) Created() time.Time { return s.created }

// Agent returns a serving agent by name.
func (s *Snapshot) Agent(name string) (*Agent, bool) { a, ok := s.agents[name]; return a, ok }

// Team returns a serving team by name.
func (s *Snapshot) Team(name string) (*Team, bool) { t, ok := s.teams[name]; return t, ok }

// Agents returns the serving agents sorted by name.
func (s *Snapshot) Agents() []*Agent {
	out := make([]*Agent, 0, len(s.agents))
	for _, k := range s.keys {
		if a, ok := s.agents[k.Name]; ok && k.Kind == spec.KindAgent {
			out = append(out, a)
		}
	}
	return out
}

// Teams returns the serving teams sorted by name.
func (s *Snapshot) Teams() []*Team {
	out := make([]*Team, 0, len(s.teams))
	for _, k := range s.keys {
		if t, ok := s.teams[k.Name]; ok && k.Kind == spec.KindTeam {
			out = append(out, t)
		}
	}
	return out
}

// Workflow returns a serving workflow by name.
func (s *Snapshot) Workflow(name string) (*Workflow, bool) { w, ok := s.workflows[name]; return w, ok }

// Workflows returns the serving workflows sorted by name.
func (s *Snapshot) Workflows() []*Workflow {
	out := make([]*Workflow, 0, len(s.workflows))
	for _, k := range s.keys {
		if w, ok := s.workflows[k.Name]; ok && k.Kind == spec.KindWorkflow {
			out = append(out, w)
		}
	}
	return out
}

// Object returns one object by key, whatever its status.
func (s *Snapshot) Object(k spec.Key) (*Object, bool) { o, ok := s.objects[k]; return o, ok }

// Objects returns every object, serving or not, sorted by kind and name.
func (s *Snapshot) Objects() []*Object {
	out := make([]*Object, len(s.keys))
	for i, k := range s.keys {
		out[i] = s.objects[k]
	}
	return out
}

// Files returns the spec files the snapshot was compiled from, sorted by path.
func (s *Snapshot) Files() []*spec.File { return slices.Clone(s.files) }

// Diagnostics returns every problem in the folder, sorted.
func (s *Snapshot) Diagnostics() spec.Diagnostics { return s.diagnostics }

// Counts returns how many objects of each kind are in each status.
func (s *Snapshot) Counts() map[spec.Kind]map[Status]int {
	out := map[spec.Kind]map[Status]int{}
	for _, o := range s.objects {
		if out[o.Key.Kind] == nil {
			out[o.Key.Kind] = map[Status]int{}
		}
		out[o.Key.Kind][o.Status]++
	}
	return out
}

// Knowledge returns the serving knowledge bases, sorted by name. A base
// whose embedder or reranker names a Model document is returned as a copy
// with the Model resolved (spec.Knowledge.WithModels), so the knowledge
// service needs no other document and sees a change to the Model; the
// loaded document, shared with other sets, is never written.
func (s *Snapshot) Knowledge() []*spec.Knowledge {
	model := func(name string) *spec.Model {
		if o := s.objects[spec.Key{Kind: spec.KindModel, Name: name}]; o != nil {
			m, _ := o.Doc.(*spec.Model)
			return m
		}
		return nil
	}
	var out []*spec.Knowledge
	for _, k := range s.keys {
		if k.Kind != spec.KindKnowledge {
			continue
		}
		kn, ok := s.objects[k].Doc.(*spec.Knowledge)
		if !ok {
			continue
		}
		out = append(out, kn.WithModels(model))
	}
	return out
}
