package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/troupehq/troupe/engine/event"
)

// Claimer is the store's ability background runs need: taking a PENDING run
// for execution. store.DB has it; a Store without it cannot run background
// runs.
type Claimer interface {
	// ClaimRun moves run id from PENDING to RUNNING and returns it. Only
	// one caller succeeds; the others get an error wrapping ErrNotFound.
	ClaimRun(ctx context.Context, id string) (*Run, error)
	// FailRunning ends run id ERROR with reason if it is RUNNING, and
	// reports whether it was.
	FailRunning(ctx context.Context, id, reason string) (bool, error)
}

// FailAbandoned ends a background run ERROR with reason when it is still
// RUNNING but no run of this process (its worker died elsewhere, or before
// a restart); it reports whether it did.
func (s *Service) FailAbandoned(ctx context.Context, runID, reason string) (bool, error) {
	s.mu.Lock()
	_, here := s.active[runID]
	s.mu.Unlock()
	if here {
		return false, nil
	}
	c, ok := s.opts.Store.(Claimer)
	if !ok {
		return false, errors.New("the run store cannot claim background runs")
	}
	failed, err := c.FailRunning(ctx, runID, reason)
	if err != nil {
		return false, fmt.Errorf("failing abandoned run %s: %w", runID, err)
	}
	if failed {
		s.log.Warn("background run abandoned by its worker", "run_id", runID)
	}
	return failed, nil
}

// FailPending ends background run runID ERROR with reason if it still waits
// to start (its job was lost), and reports whether it did. It claims the run
// first, as a worker would, so that a job that turns up afterwards finds it
// taken and never executes it: the run stays at most once.
func (s *Service) FailPending(ctx context.Context, runID, reason string) (bool, error) {
	c, ok := s.opts.Store.(Claimer)
	if !ok {
		return false, errors.New("the run store cannot claim background runs")
	}
	r, err := c.ClaimRun(ctx, runID)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("claiming waiting run %s: %w", runID, err)
	}
	r.Status, r.Error = event.StatusError, reason
	if err := s.opts.Store.FinishRun(context.WithoutCancel(ctx), r); err != nil {
		return false, fmt.Errorf("failing waiting run %s: %w", runID, err)
	}
	s.log.Warn("background run never started: its job was lost", "run_id", runID)
	return true, nil
}

// Submit validates a background turn and stores its run PENDING, to be
// executed by ExecuteQueued, on this process or another; the caller queues
// it. Refusals are those of Start. Nothing is pinned: the run executes on
// the snapshot current when it starts.
func (s *Service) Submit(ctx context.Context, p Params) (*Run, error) {
	tg, err := s.resolve(ctx, &p)
	if err != nil {
		return nil, err
	}
	defer tg.Release()
	sess, r := newRun(p, tg, event.StatusPending)
	if err := s.store(ctx, p, sess, r); err != nil {
		return nil, err
	}
	return r, nil
}

// Abandon ends a PENDING run that will never execute (its job could not be
// queued) as ERROR with reason.
func (s *Service) Abandon(ctx context.Context, r *Run, reason string) error {
	done := *r
	done.Status, done.Error = event.StatusError, reason
	if err := s.opts.Store.FinishRun(context.WithoutCancel(ctx), &done); err != nil {
		return fmt.Errorf("abandoning run %s: %w", r.ID, err)
	}
	return nil
}

// ExecuteQueued executes the background run runID, stored by Submit: it
// claims the run (so it executes at most once, whichever process asks),
// pins its target on the current snapshot and runs it like Start and
// Execute would, cancellable and drained like any run of this service. A
// run already claimed, or deleted with its session, is left alone (nil,
// nil). A target gone since the submission ends the run as ERROR.
func (s *Service) ExecuteQueued(ctx context.Context, runID string) (*Run, error) {
	c, ok := s.opts.Store.(Claimer)
	if !ok {
		return nil, errors.New("the run store cannot claim background runs")
	}
	r, err := c.ClaimRun(ctx, runID)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("claiming run %s: %w", runID, err)
	}
	kind := KindOf(r.Type)
	// KeepEvents: nobody streams a background run as it executes, so every
	// event is logged for clients that follow it with resume, on any replica.
	p := Params{Kind: kind, Name: r.ComponentID, Message: r.Input, SessionID: r.SessionID, UserID: r.UserID, BoundUser: true, KeepEvents: true}
	tg, err := s.opts.Targets.Pin(kind, r.ComponentID)
	if err != nil {
		r.Status, r.Error = event.StatusError, fmt.Sprintf("%s %q is not available any more: %v", kind.Lower(), r.ComponentID, err)
		if ferr := s.opts.Store.FinishRun(context.WithoutCancel(ctx), r); ferr != nil {
			return nil, fmt.Errorf("finishing run %s: %w", runID, ferr)
		}
		return r, nil
	}
	t := &Turn{s: s, p: p, runner: tg.Runner, release: tg.Release, run: r,
		session: &Session{ID: r.SessionID, Type: r.Type, ComponentID: r.ComponentID, UserID: r.UserID}}
	if r.Type == TypeWorkflow {
		// A workflow reads its session's state; the other runs never do.
		if sess, err := s.opts.Store.GetSession(ctx, r.SessionID, Filter{}); err == nil {
			t.session.State = sess.State
		} else {
			s.log.Warn("reading a workflow session's state; starting from an empty state", "session_id", r.SessionID, "err", err)
		}
	}
	r.SpecVersion = tg.Version
	// A paused agent or team run, continued: from its held state.
	if r.Type != TypeWorkflow {
		if t.resume, err = s.resumeOf(ctx, r.ID); err != nil {
			tg.Release()
			return nil, fmt.Errorf("reading the paused state of run %s: %w", r.ID, err)
		}
	}
	t.begin(ctx)
	return t.Execute(ctx, func(event.Event) {}), nil
}

// Reopener sets a paused run PENDING again (store.DB).
type Reopener interface {
	// ReopenRun records output as the output of the PAUSED step at path
	// of PAUSED run id, and sets the run PENDING, both or neither: of
	// concurrent callers exactly one succeeds, so the recorded decision is
	// the one whose run resumes. The others, and callers naming a run or a
	// step that is not paused, get an error wrapping ErrNotFound.
	ReopenRun(ctx context.Context, id, path string, output json.RawMessage) (*Run, error)
}

// Continue records the decision of a PAUSED workflow run's approval step
// (the step at path) and queues the run to execute again: any replica's
// worker claims it and the workflow resumes from its checkpoints. A run
// that is not paused, or that another caller continued first, is an error
// wrapping ErrNotFound.
func (s *Service) Continue(ctx context.Context, runID, path string, decision json.RawMessage) (*Run, error) {
	ro, ok := s.opts.Store.(Reopener)
	if !ok || s.opts.Requeue == nil {
		return nil, errors.New("this server cannot continue paused runs: it has no job engine")
	}
	r, err := ro.ReopenRun(ctx, runID, path, decision)
	if err != nil {
		return nil, err
	}
	if err := s.opts.Requeue.Requeue(ctx, r); err != nil {
		return nil, fmt.Errorf("queueing run %s: %w", runID, err)
	}
	return r, nil
}
