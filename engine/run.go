package engine

import (
	"context"
	"fmt"

	"github.com/troupehq/troupe/engine/agent"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/spec"
)

// Acquire returns the current snapshot pinned for a run: its resources stay
// open until release is called, even if a reload replaces it meanwhile.
func (e *Engine) Acquire() (s *Snapshot, release func()) {
	for {
		s = e.current.Load()
		if s.acquire() {
			return s, s.releaseRun
		}
		// Retired and released between Load and acquire: a newer one is current.
	}
}

// Runner returns the agent or team named name. Agents win over teams of the
// same name only because names are unique per kind; callers that know the
// kind should ask for it.
func (s *Snapshot) Runner(kind spec.Kind, name string) (agent.Runner, error) {
	switch kind {
	case spec.KindAgent:
		if a, ok := s.agents[name]; ok && a.Runner != nil {
			return a.Runner, nil
		}
	case spec.KindTeam:
		if t, ok := s.teams[name]; ok && t.Runner != nil {
			return t.Runner, nil
		}
	case spec.KindWorkflow:
		if w, ok := s.workflows[name]; ok && w.Runner != nil {
			return w.Runner, nil
		}
	}
	if o, ok := s.objects[spec.Key{Kind: kind, Name: name}]; ok && o.Doc == nil {
		return nil, fmt.Errorf("%s %q is broken: %w", kind.Lower(), name, &BrokenError{Diagnostics: o.Diagnostics})
	}
	return nil, fmt.Errorf("%s %q: %w", kind.Lower(), name, ErrNotFound)
}

// BrokenError reports a target whose definition has errors and no good version.
type BrokenError struct{ Diagnostics spec.Diagnostics }

// Unwrap makes a BrokenError a session.ErrBroken, the run service's class of
// it.
func (e *BrokenError) Unwrap() error { return session.ErrBroken }

func (e *BrokenError) Error() string {
	if errs := e.Diagnostics.Errors(); len(errs) > 0 {
		return errs[0].Error()
	}
	return "broken definition"
}

// Pin resolves kind/name on the current snapshot for one run and pins the
// snapshot until the target's Release is called (see session.Targets).
func (e *Engine) Pin(kind spec.Kind, name string) (session.Target, error) {
	snap, release := e.Acquire()
	r, err := snap.Runner(kind, name)
	if err != nil {
		release()
		return session.Target{}, err
	}
	return session.Target{Runner: r, Version: snap.Version(), Release: release}, nil
}

var _ session.Targets = (*Engine)(nil)

// Execute runs one turn of an agent or team on the current snapshot, which it
// pins for the whole run: a reload during the run does not affect it.
func (e *Engine) Execute(ctx context.Context, kind spec.Kind, name string, in agent.Input, emit func(event.Event)) (*agent.Result, *Snapshot, error) {
	snap, release := e.Acquire()
	defer release()
	r, err := snap.Runner(kind, name)
	if err != nil {
		return nil, snap, err
	}
	return r.Execute(ctx, in, emit), snap, nil
}
