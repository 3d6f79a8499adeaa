package jobs

import (
	"fmt"
	"time"

	"github.com/riverqueue/river"
)

// Schedule gives the tick after a time (a cron schedule, an interval).
type Schedule interface {
	Next(after time.Time) time.Time
}

// AddPeriodic makes c insert a job of kind k with args at every tick of
// schedule from now on, under id (a job already under id is replaced).
// Unlike Periodic it may be called while c runs: triggers come and go with
// reloads. As with Periodic, only the leader elected among the clients on
// one database inserts the jobs; every client should add the same ones, so
// that whichever leads inserts them. The job's ScheduledAt is the tick.
func AddPeriodic[A Args](c *Client, id string, schedule Schedule, k Kind[A], args A) error {
	c.RemovePeriodic(id)
	_, err := c.river.PeriodicJobs().AddSafely(river.NewPeriodicJob(schedule,
		func() (river.JobArgs, *river.InsertOpts) { return args, k.insertOpts() },
		&river.PeriodicJobOpts{ID: id}))
	if err != nil {
		return fmt.Errorf("jobs: adding periodic job %s: %w", id, err)
	}
	return nil
}

// RemovePeriodic stops the periodic job id (added with AddPeriodic); it
// reports whether there was one.
func (c *Client) RemovePeriodic(id string) bool {
	return c.river.PeriodicJobs().RemoveByID(id)
}
