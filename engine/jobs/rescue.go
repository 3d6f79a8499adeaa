package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivertype"
)

// abandonedError is recorded on a job found running by a client starting on
// a database no other process uses.
const abandonedError = "abandoned: the process working this job stopped before finishing it"

// rescueAbandoned gives back every job left running on the database: it is
// called only when no other process shares it (SQLite), so a running job
// belongs to a process that died (kill -9, power loss) and would otherwise
// wait for River's rescuer (RescueAfter, an hour by default). A job with
// attempts left is made available at once; one without (a kind with
// MaxAttempts 1: at most once) is discarded, with the reason, like River's
// rescuer does. It returns how many jobs it gave back.
func rescueAbandoned[TTx any](ctx context.Context, driver riverdriver.Driver[TTx], now time.Time) (int, error) {
	exec := driver.GetExecutor()
	var afterID int64
	n := 0
	for {
		stuck, err := exec.JobGetStuck(ctx, &riverdriver.JobGetStuckParams{AfterID: afterID, Max: 1000, StuckHorizon: now.Add(time.Second)})
		if err != nil {
			return n, fmt.Errorf("jobs: listing abandoned jobs: %w", err)
		}
		if len(stuck) == 0 {
			return n, nil
		}
		p := &riverdriver.JobRescueManyParams{StuckHorizon: now.Add(time.Second)}
		for _, j := range stuck {
			data, err := json.Marshal(rivertype.AttemptError{At: now, Attempt: max(j.Attempt, 0), Error: abandonedError})
			if err != nil {
				return n, fmt.Errorf("jobs: recording an abandoned job: %w", err)
			}
			p.ID, p.Error = append(p.ID, j.ID), append(p.Error, data)
			if j.Attempt >= j.MaxAttempts {
				fin := now
				p.State, p.FinalizedAt, p.ScheduledAt = append(p.State, string(rivertype.JobStateDiscarded)), append(p.FinalizedAt, &fin), append(p.ScheduledAt, j.ScheduledAt)
			} else {
				p.State, p.FinalizedAt, p.ScheduledAt = append(p.State, string(rivertype.JobStateAvailable)), append(p.FinalizedAt, nil), append(p.ScheduledAt, now)
			}
		}
		if _, err := exec.JobRescueMany(ctx, p); err != nil {
			return n, fmt.Errorf("jobs: giving back abandoned jobs: %w", err)
		}
		n += len(stuck)
		afterID = stuck[len(stuck)-1].ID
	}
}
