package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/tool"
)

// Bounds of a session's key-value state, for agents' set_state tool and
// workflows' set_state steps alike: the state is stored with the session and
// given to the model whole, so it stays small.
const (
	MaxStateKeys  = 100
	MaxStateBytes = 64 << 10
)

// Names of the session-state tools an agent with session_state gets.
const (
	GetStateTool = "get_state"
	SetStateTool = "set_state"
)

// CheckState reports whether state fits the bounds, with an error saying
// what to do when it does not.
func CheckState(state map[string]any) error {
	if len(state) > MaxStateKeys {
		return fmt.Errorf("the session state would hold %d keys, more than %d: write fewer keys or reuse them", len(state), MaxStateKeys)
	}
	b, err := json.Marshal(state)
	if err != nil {
		return fmt.Errorf("the session state is not JSON: %w", err)
	}
	if len(b) > MaxStateBytes {
		return fmt.Errorf("the session state would take %d bytes as JSON, more than %d: keep smaller values in it", len(b), MaxStateBytes)
	}
	return nil
}

// MergeState returns state with update applied: a null value deletes its
// key. Neither argument is modified.
func MergeState(state, update map[string]any) map[string]any {
	next := make(map[string]any, len(state)+len(update))
	maps.Copy(next, state)
	for k, v := range update {
		if v == nil {
			delete(next, k)
			continue
		}
		next[k] = v
	}
	return next
}

type sharedStateKey struct{}

// ShareState returns ctx carrying the session state for the agent runs
// started under it (a team's members), so that every member with
// session_state reads and writes one state, safely when they run in
// parallel. changed reports the state to save with the team's run: nil
// unless a member changed it, and always nil under a ctx already sharing.
func ShareState(ctx context.Context, state map[string]any) (_ context.Context, changed func() map[string]any) {
	if _, ok := ctx.Value(sharedStateKey{}).(*runState); ok {
		// A team inside a team: its members share the outer team's state,
		// which the outer team saves.
		return ctx, func() map[string]any { return nil }
	}
	s := &runState{state: maps.Clone(state)}
	return context.WithValue(ctx, sharedStateKey{}, s), func() map[string]any {
		st, ok := s.snapshot()
		if !ok {
			return nil
		}
		if st == nil {
			st = map[string]any{}
		}
		return st
	}
}

// runState is one run's view of the session state; its tools may be called
// concurrently within a model turn.
type runState struct {
	mu      sync.Mutex
	state   map[string]any
	changed bool
}

func (s *runState) snapshot() (map[string]any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.state), s.changed
}

// stateJSON is the state as the model reads it.
func (s *runState) stateJSON() string {
	st, _ := s.snapshot()
	if st == nil {
		st = map[string]any{}
	}
	b, err := json.Marshal(st)
	if err != nil {
		return "{}" // the state was checked when written
	}
	return string(b)
}

type getState struct{ s *runState }

var _ tool.Tool = (*getState)(nil)

func (g *getState) Def() model.ToolDef {
	return model.ToolDef{Name: GetStateTool, Description: "Read the session state: a JSON object of keys and values kept across the session's turns.",
		Parameters: map[string]any{"type": "object", "properties": map[string]any{}}}
}

func (g *getState) Call(context.Context, json.RawMessage) (string, error) {
	return g.s.stateJSON(), nil
}

type setState struct{ s *runState }

var _ tool.Tool = (*setState)(nil)

func (t *setState) Def() model.ToolDef {
	return model.ToolDef{Name: SetStateTool,
		Description: fmt.Sprintf("Write keys of the session state, kept across the session's turns: values are any JSON; null deletes a key. At most %d keys and %d bytes in all.", MaxStateKeys, MaxStateBytes),
		Parameters: map[string]any{"type": "object", "properties": map[string]any{
			"values": map[string]any{"type": "object", "description": "The keys to write and their new values."},
		}, "required": []any{"values"}}}
}

func (t *setState) Call(_ context.Context, args json.RawMessage) (string, error) {
	var in struct {
		Values map[string]any `json:"values"`
	}
	if err := json.Unmarshal(args, &in); err != nil || in.Values == nil {
		return "", fmt.Errorf(`set_state needs {"values": {"key": value, ...}}`)
	}
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	next := MergeState(t.s.state, in.Values)
	if err := CheckState(next); err != nil {
		return "", fmt.Errorf("set_state: %w", err)
	}
	t.s.state, t.s.changed = next, true
	b, _ := json.Marshal(next) // checked above
	return string(b), nil
}

// withStateTools adds the session-state tools to a run's tools, when the
// agent asked for them.
func (r *run) withStateTools(defs []model.ToolDef, byName map[string]tool.Tool) ([]model.ToolDef, map[string]tool.Tool) {
	if r.state == nil {
		return defs, byName
	}
	defs = slices.Clone(defs)
	next := make(map[string]tool.Tool, len(byName)+2)
	maps.Copy(next, byName)
	for _, t := range []tool.Tool{&getState{r.state}, &setState{r.state}} {
		if _, dup := next[t.Def().Name]; dup {
			continue // a tool of the agent's own takes the name
		}
		defs = append(defs, t.Def())
		next[t.Def().Name] = t
	}
	return defs, next
}
