package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync/atomic"
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

// storeExecutor executes background runs against the real store the way
// the run service does (claim, then run), counting executions.
type storeExecutor struct {
	db       *store.DB
	executed atomic.Int32
}

var _ jobs.Executor = (*storeExecutor)(nil)

func (e *storeExecutor) ExecuteQueued(ctx context.Context, id string) (*session.Run, error) {
	r, err := e.db.ClaimRun(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	e.executed.Add(1)
	r.Status, r.Content = event.StatusCompleted, "done"
	return r, e.db.FinishRun(ctx, r)
}

func (e *storeExecutor) FailAbandoned(ctx context.Context, id, reason string) (bool, error) {
	return e.db.FailRunning(ctx, id, reason)
}

// TestBackgroundRunAtMostOnce checks a background run's job when the
// process working it was killed: a run it had claimed is never executed
// again and ends ERROR with the reason; a run it had not claimed yet is
// executed, once.
func TestBackgroundRunAtMostOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		claimed      bool // the dead process had claimed (started) the run
		wantStatus   event.Status
		wantExecuted int32
		// wantExpired is the lease expiries counted (the run ended ERROR
		// because its worker died).
		wantExpired uint64
	}{
		{name: "claimed: ends ERROR, not run again", claimed: true, wantStatus: event.StatusError, wantExecuted: 0, wantExpired: 1},
		{name: "not claimed yet: executed once", claimed: false, wantStatus: event.StatusCompleted, wantExecuted: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := openDB(t, filepath.Join(t.TempDir(), "troupe.db"))
			require.NoError(t, db.StartRun(t.Context(), &store.Session{ID: "s1", Type: store.SessionAgent, ComponentID: "helper"},
				&store.Run{ID: "r1", Input: "hi", Status: event.StatusPending}))
			if tt.claimed {
				_, err := db.ClaimRun(t.Context(), "r1")
				require.NoError(t, err)
			}
			reg := jobs.NewRegistry()
			ex := &storeExecutor{db: db}
			jobs.RegisterRuns(reg, ex)
			c, err := db.OpenJobs(t.Context(), jobs.Options{Registry: reg, Queues: map[string]int{jobs.RunQueueName: 2}})
			require.NoError(t, err)
			// The job row the killed process left: running, first attempt.
			d, err := db.SQLiteJobDriver()
			require.NoError(t, err)
			args, err := json.Marshal(jobs.RunArgs{RunID: "r1"})
			require.NoError(t, err)
			at := time.Now().Add(-time.Minute).UTC()
			_, err = d.GetExecutor().JobInsertFull(t.Context(), &riverdriver.JobInsertFullParams{
				Attempt: 1, AttemptedAt: &at, CreatedAt: &at, ScheduledAt: &at, EncodedArgs: args, Kind: jobs.RunArgs{}.Kind(),
				MaxAttempts: jobs.BackgroundRun.MaxAttempts, Metadata: []byte("{}"), Priority: 1, Queue: jobs.RunQueueName, State: rivertype.JobStateRunning,
			})
			require.NoError(t, err)

			stop := run(c)
			var r *store.Run
			require.Eventually(t, func() bool {
				r, err = db.GetRun(t.Context(), "r1", store.Filter{})
				return err == nil && r.Status.Terminal()
			}, 10*time.Second, 5*time.Millisecond)
			time.Sleep(50 * time.Millisecond) // nothing more happens
			require.NoError(t, stop())
			require.Equal(t, tt.wantStatus, r.Status)
			require.Equal(t, tt.wantExecuted, ex.executed.Load())
			require.Equal(t, jobs.Counters{FailedAttempts: map[string]uint64{"background_run": 0}, LeaseExpired: tt.wantExpired, Rescued: 1}, c.Counters(),
				"the abandoned job was given back at start")
			if tt.claimed {
				require.Contains(t, r.Error, "stopped before it finished")
			}
		})
	}
}
