package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// A background run is stored PENDING, then its job is inserted: two writes,
// not one transaction, because the run lives in the store's tables and the
// job in River's, reached through different connections on PostgreSQL. A
// process that dies between the two leaves a run no job will ever start;
// so does a job discarded before it claimed its run (both its attempts
// failed on a database error). The orphan sweep ends such runs ERROR, so
// that no run waits for ever and a client polling it learns why.

// SweepOrphansArgs are the arguments of the periodic orphan sweep.
type SweepOrphansArgs struct{}

// Kind names the sweep kind.
func (SweepOrphansArgs) Kind() string { return "sweep_orphaned_runs" }

// SweepOrphans is the periodic sweep (RegisterOrphanSweep); unique, so a
// slow sweep is never doubled.
var SweepOrphans = Kind[SweepOrphansArgs]{MaxAttempts: 3, Unique: true}

// PendingRuns lists the background runs still waiting to start that were
// stored before a time (the store).
type PendingRuns interface {
	StalePendingRuns(ctx context.Context, before time.Time, limit int) ([]string, error)
}

// OrphanFailer ends a waiting run ERROR with a reason, unless a worker
// claimed it meanwhile (the run service); false when it did not end it.
type OrphanFailer interface {
	FailPending(ctx context.Context, runID, reason string) (bool, error)
}

// orphanedRun is the error of a run whose job was lost.
const orphanedRun = "this background run was never started: its job was lost (the server stopped while queueing it, or the job failed before it began); it was not executed"

// orphanBatch bounds the runs one sweep looks at; the next takes the rest.
const orphanBatch = 500

// RegisterOrphanSweep makes the clients built on r look, every interval,
// for background runs stored PENDING more than grace ago that have no job
// left to start them, and end them ERROR. grace covers the moment between
// a run's write and its job's insert; a run whose job waits in a long queue
// keeps its job and is never touched.
func RegisterOrphanSweep(r *Registry, c *Client, pending PendingRuns, runs OrphanFailer, every, grace time.Duration) {
	Register(r, SweepOrphans, func(ctx context.Context, _ SweepOrphansArgs) error {
		ids, err := pending.StalePendingRuns(ctx, time.Now().Add(-grace), orphanBatch)
		if err != nil {
			return fmt.Errorf("listing waiting runs: %w", err)
		}
		for _, id := range ids {
			queued, err := c.runQueued(ctx, id)
			if err != nil {
				return err
			}
			if queued {
				continue
			}
			if _, err := runs.FailPending(ctx, id, orphanedRun); err != nil {
				return err
			}
			r.counters.orphaned()
		}
		return nil
	})
	Periodic(r, every, SweepOrphans, SweepOrphansArgs{})
}

// openStates are the states of a job that may still execute.
var openStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
	rivertype.JobStateRunning, rivertype.JobStateScheduled,
}

// runQueued reports whether background run runID has a job that may still
// execute it.
func (c *Client) runQueued(ctx context.Context, runID string) (bool, error) {
	res, err := c.river.JobList(ctx, river.NewJobListParams().Kinds(RunArgs{}.Kind()).States(openStates...).
		Where(c.argEquals, river.NamedArgs{"field": "run_id", "value": runID}).First(1))
	if err != nil {
		return false, fmt.Errorf("jobs: looking for run %s's job: %w", runID, err)
	}
	return len(res.Jobs) > 0, nil
}
