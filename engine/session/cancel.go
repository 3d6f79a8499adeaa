package session

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// CancelReason says why a run is cancelled from another replica; the replica
// executing the run cancels it with the matching cause, as a local cancel
// would (ErrCancelled, ErrSessionDeleted).
type CancelReason string

// Cancel reasons.
const (
	ReasonCancelled      CancelReason = "cancelled"
	ReasonSessionDeleted CancelReason = "session_deleted"
)

// cause is the cancellation cause of a reason.
func (r CancelReason) cause() error {
	if r == ReasonSessionDeleted {
		return ErrSessionDeleted
	}
	return ErrCancelled
}

// RunMatch selects the stored runs a cancel may stop. Zero fields match any
// run.
type RunMatch struct {
	Type        string // TypeAgent or TypeTeam
	ComponentID string
	UserID      string
}

// Cancels carries cancel requests between the replicas that share a
// database: the replica asked to stop a run it does not execute records a
// request, and the replica executing the run claims it and cancels the run.
// store.DB implements it. Its methods are called concurrently; none retains
// its arguments.
type Cancels interface {
	// RequestCancel records a request to stop run runID when it is a
	// RUNNING top-level run that m matches, and reports whether it is.
	RequestCancel(ctx context.Context, runID string, m RunMatch, reason CancelReason) (bool, error)
	// RequestSessionCancels records requests to stop the RUNNING top-level
	// runs of the sessions among ids whose user is userID (any user when
	// empty), and returns the ids of those runs.
	RequestSessionCancels(ctx context.Context, ids []string, userID string, reason CancelReason) ([]string, error)
	// ClaimCancels removes the requests recorded for the runs among ids and
	// returns them, run id → reason.
	ClaimCancels(ctx context.Context, ids []string) (map[string]CancelReason, error)
	// Running returns those of ids whose runs are still RUNNING.
	Running(ctx context.Context, ids []string) ([]string, error)
}

// watchCancels claims, every Options.CancelPoll, the cancel and stream
// requests other replicas recorded for the runs this one executes, and
// cancels those runs or logs their events. It asks only while runs are
// active, about those runs only: one query by primary key per kind. Run
// owns it; it stops when ctx ends.
func (s *Service) watchCancels(ctx context.Context) {
	tick := time.NewTicker(s.opts.CancelPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// One listing serves both kinds of request: the poll runs four
		// times a second on every replica.
		ids := s.activeIDs()
		if len(ids) == 0 {
			continue
		}
		if s.opts.Cancels != nil {
			if err := s.claimCancels(ctx, ids); err != nil && ctx.Err() == nil {
				s.log.Warn("reading the cancel requests of other replicas", "err", err)
			}
		}
		if s.opts.Events != nil {
			if err := s.claimStreams(ctx, ids); err != nil && ctx.Err() == nil {
				s.log.Warn("reading the stream requests of other replicas", "err", err)
			}
		}
	}
}

// activeIDs returns the ids of the runs executing here.
func (s *Service) activeIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.active))
	for id := range s.active {
		ids = append(ids, id)
	}
	return ids
}

// claimCancels cancels the active runs among ids for which a cancel was
// recorded.
func (s *Service) claimCancels(ctx context.Context, ids []string) error {
	claimed, err := s.opts.Cancels.ClaimCancels(ctx, ids)
	if err != nil {
		return fmt.Errorf("claiming cancel requests: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, reason := range claimed {
		if a, ok := s.active[id]; ok {
			a.cancel(reason.cause())
		}
	}
	return nil
}

// cancelElsewhere records a cancel of run runID for the replica executing it.
func (s *Service) cancelElsewhere(ctx context.Context, runID string, m Match) (bool, error) {
	if s.opts.Cancels == nil {
		return false, nil
	}
	rm := RunMatch{ComponentID: m.Name, UserID: m.UserID}
	if m.Kind != "" {
		rm.Type = TypeOf(m.Kind)
	}
	ok, err := s.opts.Cancels.RequestCancel(ctx, runID, rm, ReasonCancelled)
	if err != nil {
		return false, fmt.Errorf("recording the cancel of run %s: %w", runID, err)
	}
	return ok, nil
}

// stopElsewhere asks the replicas executing runs of the sessions among ids
// to stop them, and waits until they have saved their final state or ctx
// ends.
func (s *Service) stopElsewhere(ctx context.Context, ids []string, userID string) {
	if s.opts.Cancels == nil {
		return
	}
	runs, err := s.opts.Cancels.RequestSessionCancels(ctx, ids, userID, ReasonSessionDeleted)
	if err != nil {
		s.log.Warn("asking other replicas to stop the runs of deleted sessions", "err", err)
		return
	}
	for len(runs) > 0 {
		select {
		case <-ctx.Done():
			s.log.Warn("deleting a session whose run on another replica has not stopped yet", "runs", len(runs))
			return
		case <-time.After(s.opts.CancelPoll):
		}
		if runs, err = s.opts.Cancels.Running(ctx, runs); err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				s.log.Warn("waiting for the runs of deleted sessions to stop", "err", err)
			}
			return
		}
	}
}
