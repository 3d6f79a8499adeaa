package session

import (
	"context"
	"time"

	"github.com/troupehq/troupe/engine/event"
)

// Liveness is how replicas sharing one database tell which runs are still
// executing somewhere. The Store records, on each run it starts or claims,
// the replica executing it; Run keeps this replica's heartbeat fresh and
// periodically fails the runs of replicas whose heartbeat went stale.
// store.DB implements it. Its methods are called from Run's goroutine only.
type Liveness interface {
	// Heartbeat records that this replica is alive.
	Heartbeat(ctx context.Context) error
	// RecoverRuns marks failed the RUNNING runs no live replica will finish
	// and returns them; each is returned by one call on one replica only.
	RecoverRuns(ctx context.Context) ([]Run, error)
	// Leave removes this replica's heartbeat at a graceful stop, once its
	// runs are drained.
	Leave(ctx context.Context) error
}

// keepAlive refreshes this replica's heartbeat every HeartbeatInterval and
// recovers the runs of dead replicas every RecoverInterval, telling the
// observers of each, until ctx ends; then it removes the heartbeat. Run owns
// it and ends ctx only after the drain, so that runs still finishing keep
// their replica alive.
func (s *Service) keepAlive(ctx context.Context) {
	l := s.opts.Liveness
	beat := time.NewTicker(s.opts.HeartbeatInterval)
	defer beat.Stop()
	sweep := time.NewTicker(s.opts.RecoverInterval)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			// The drain is over: no run of ours is left to keep alive.
			leave, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := l.Leave(leave); err != nil {
				s.log.Warn("removing this replica's heartbeat; other replicas will see it stale", "err", err)
			}
			return
		case <-beat.C:
			if err := l.Heartbeat(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("replica heartbeat failed; other replicas may fail this replica's runs if it keeps failing", "err", err)
			}
		case <-sweep.C:
			runs, err := l.RecoverRuns(ctx)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("recovering the runs of stopped replicas", "err", err)
				}
				continue
			}
			s.requeue(ctx, s.interrupted(runs))
		}
	}
}

// Requeuer queues the job of a run set back to PENDING to resume (a
// workflow run interrupted by a crash). engine/jobs implements it.
type Requeuer interface {
	Requeue(ctx context.Context, r *Run) error
}

// requeue queues the jobs of workflow runs the store set back to PENDING.
// A run whose job cannot be queued is left PENDING: the orphan sweep ends
// it with the reason.
func (s *Service) requeue(ctx context.Context, runs []Run) {
	for i := range runs {
		if s.opts.Requeue == nil {
			s.log.Warn("a workflow run interrupted by a crash waits to resume, but this server queues no jobs", "run_id", runs[i].ID)
			continue
		}
		if err := s.opts.Requeue.Requeue(ctx, &runs[i]); err != nil {
			s.log.Warn("queueing an interrupted workflow run to resume", "run_id", runs[i].ID, "err", err)
			continue
		}
		s.log.Info("workflow run interrupted by a crash queued to resume from its checkpoints", "run_id", runs[i].ID)
	}
}

// interrupted tells the observers of runs a dead process left unfinished and
// the store marked failed: that process could not trace them. It returns
// the workflow runs the store set back to PENDING instead, to requeue.
func (s *Service) interrupted(runs []Run) []Run {
	var pending []Run
	for _, r := range runs {
		if r.Status == event.StatusPending {
			pending = append(pending, r)
			continue
		}
		if r.ParentRunID != "" {
			continue // members belong to their team's run
		}
		for _, o := range s.opts.Observers {
			o.RunInterrupted(&r)
		}
	}
	return pending
}
