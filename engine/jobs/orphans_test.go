package jobs_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/jobs"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/store"
)

// insertJobRow writes a job row as River would have left it, in any state.
func insertJobRow(t *testing.T, db *store.DB, p *riverdriver.JobInsertFullParams) {
	t.Helper()
	var exec riverdriver.Executor
	if db.Dialect() == store.DialectPostgres {
		d, err := db.PostgresJobDriver(t.Context())
		require.NoError(t, err)
		exec = d.GetExecutor()
	} else {
		d, err := db.SQLiteJobDriver()
		require.NoError(t, err)
		exec = d.GetExecutor()
	}
	_, err := exec.JobInsertFull(t.Context(), p)
	require.NoError(t, err)
}

// TestOrphanSweep: background runs that waited past the grace period with
// no job left to start them (none was inserted, or it was discarded) end
// ERROR, once, and a job that turns up later never executes them; a run
// whose job still waits, and a run younger than the grace period, are left
// alone.
func TestOrphanSweep(t *testing.T) {
	t.Parallel()
	for name, open := range databases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			db := open(t)
			old := time.Now().Add(-10 * time.Minute).UTC()
			pending := func(id string, created time.Time) {
				require.NoError(t, db.StartRun(t.Context(), &store.Session{ID: "s-" + id, Type: store.SessionAgent, ComponentID: "helper"},
					&store.Run{ID: id, Input: "hi", Status: event.StatusPending, CreatedAt: created}))
			}
			job := func(runID string, state rivertype.JobState, at time.Time) {
				args, err := json.Marshal(jobs.RunArgs{RunID: runID})
				require.NoError(t, err)
				var finalized *time.Time
				if state == rivertype.JobStateDiscarded {
					finalized = &at
				}
				insertJobRow(t, db, &riverdriver.JobInsertFullParams{
					CreatedAt: &old, ScheduledAt: &at, FinalizedAt: finalized, EncodedArgs: args, Kind: jobs.RunArgs{}.Kind(), MaxAttempts: jobs.BackgroundRun.MaxAttempts,
					Metadata: []byte("{}"), Priority: 1, Queue: jobs.RunQueueName, State: state,
				})
			}
			// Only the sweep is worked: the waiting run's job stays queued.
			// Opening the client migrates River's tables.
			reg := jobs.NewRegistry()
			c, err := db.OpenJobs(t.Context(), jobs.Options{Registry: reg})
			require.NoError(t, err)
			jobs.RegisterOrphanSweep(reg, c, db, session.New(session.Options{Store: db}), time.Hour, time.Minute)

			pending("lost", old)      // its process died before the job was inserted
			pending("discarded", old) // its job failed twice before claiming it
			job("discarded", rivertype.JobStateDiscarded, old)
			pending("waiting", old) // its job is still to come: a long queue
			job("waiting", rivertype.JobStateScheduled, time.Now().Add(time.Hour).UTC())
			pending("young", time.Now().UTC()) // its job may be being inserted right now

			stop := run(c)
			status := func(id string) *store.Run {
				r, err := db.GetRun(t.Context(), id, store.Filter{})
				require.NoError(t, err)
				return r
			}
			require.Eventually(t, func() bool {
				return status("lost").Status.Terminal() && status("discarded").Status.Terminal()
			}, 10*time.Second, 10*time.Millisecond, "the sweep runs when the client starts")
			require.NoError(t, stop())

			for _, id := range []string{"lost", "discarded"} {
				r := status(id)
				require.Equal(t, event.StatusError, r.Status, id)
				require.Contains(t, r.Error, "never started: its job was lost", id)
				_, err := db.ClaimRun(t.Context(), id)
				require.ErrorIs(t, err, store.ErrNotFound, "a job that comes later cannot execute %s", id)
			}
			for _, id := range []string{"waiting", "young"} {
				require.Equal(t, event.StatusPending, status(id).Status, id)
			}
			require.Equal(t, uint64(2), c.Counters().Orphaned)
		})
	}
}
