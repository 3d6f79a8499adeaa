package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivertype"
)

// What operators see of the job engine: counts per queue, kind and state
// (Stats), the jobs themselves with their errors (Jobs), a way to run a
// failed job again (Requeue), and counters of what went wrong in this
// process (Counters).

// Job states, as River names them.
const (
	StateAvailable = string(rivertype.JobStateAvailable)
	StateScheduled = string(rivertype.JobStateScheduled)
	StateRunning   = string(rivertype.JobStateRunning)
	StateRetryable = string(rivertype.JobStateRetryable)
	StateCompleted = string(rivertype.JobStateCompleted)
	StateCancelled = string(rivertype.JobStateCancelled)
	StateDiscarded = string(rivertype.JobStateDiscarded)
	StatePending   = string(rivertype.JobStatePending)
)

// States lists every job state, waiting ones first.
var States = []string{StateAvailable, StateScheduled, StatePending, StateRunning, StateRetryable, StateCompleted, StateCancelled, StateDiscarded}

// Errors of Jobs and Requeue.
var (
	// ErrNotFound: no job has the id (it never existed, or River's cleaner
	// deleted it after its retention).
	ErrNotFound = errors.New("jobs: no such job")
	// ErrRunning: the job is running; River leaves running jobs alone.
	ErrRunning = errors.New("jobs: the job is running")
	// ErrInvalid: a query the engine cannot answer (unknown state, bad
	// cursor).
	ErrInvalid = errors.New("jobs: invalid query")
)

// Counts are jobs by state.
type Counts struct {
	Available int `json:"available"`
	Scheduled int `json:"scheduled"`
	Pending   int `json:"pending"`
	Running   int `json:"running"`
	Retryable int `json:"retryable"`
	Completed int `json:"completed"`
	Cancelled int `json:"cancelled"`
	Discarded int `json:"discarded"`
}

// Waiting is the jobs not started yet or waiting to be tried again: the
// queue's depth.
func (c Counts) Waiting() int { return c.Available + c.Scheduled + c.Pending + c.Retryable }

func (c *Counts) add(state string, n int) {
	switch state {
	case StateAvailable:
		c.Available += n
	case StateScheduled:
		c.Scheduled += n
	case StatePending:
		c.Pending += n
	case StateRunning:
		c.Running += n
	case StateRetryable:
		c.Retryable += n
	case StateCompleted:
		c.Completed += n
	case StateCancelled:
		c.Cancelled += n
	case StateDiscarded:
		c.Discarded += n
	}
}

// KindStats are one kind's jobs in a queue.
type KindStats struct {
	Kind   string
	Counts Counts
	// OldestAvailable is how long the oldest available job has waited to
	// be started (0 when none is available).
	OldestAvailable time.Duration
}

// QueueStats are a queue's jobs, over every replica on the database.
type QueueStats struct {
	Queue string
	// Concurrency is how many of the queue's jobs this replica runs at
	// once (0: this replica does not work the queue).
	Concurrency     int
	Counts          Counts
	OldestAvailable time.Duration
	Kinds           []KindStats
}

// Stats counts the jobs on the database by queue, kind and state, with one
// grouped query over River's job table (River has no aggregate API). Every
// queue this replica works is listed, with or without jobs; queues sorted
// by name, kinds too.
func (c *Client) Stats(ctx context.Context) ([]QueueStats, error) {
	rows, err := c.counts(ctx)
	if err != nil {
		return nil, err
	}
	byQueue := map[string]*QueueStats{}
	queue := func(name string) *QueueStats {
		q := byQueue[name]
		if q == nil {
			q = &QueueStats{Queue: name, Concurrency: c.concurrency[name]}
			byQueue[name] = q
		}
		return q
	}
	for name := range c.concurrency {
		queue(name)
	}
	for _, r := range rows {
		q := queue(r.Queue)
		i := slices.IndexFunc(q.Kinds, func(k KindStats) bool { return k.Kind == r.Kind })
		if i < 0 {
			q.Kinds = append(q.Kinds, KindStats{Kind: r.Kind})
			i = len(q.Kinds) - 1
		}
		q.Kinds[i].Counts.add(r.State, r.N)
		q.Counts.add(r.State, r.N)
		if r.State == StateAvailable {
			age := max(time.Duration(r.Age*float64(time.Second)), 0)
			q.Kinds[i].OldestAvailable = max(q.Kinds[i].OldestAvailable, age)
			q.OldestAvailable = max(q.OldestAvailable, age)
		}
	}
	out := make([]QueueStats, 0, len(byQueue))
	for _, q := range byQueue {
		slices.SortFunc(q.Kinds, func(a, b KindStats) int { return strings.Compare(a.Kind, b.Kind) })
		out = append(out, *q)
	}
	slices.SortFunc(out, func(a, b QueueStats) int { return strings.Compare(a.Queue, b.Queue) })
	return out, nil
}

// countRow is one group of the stats query. Age is the seconds since the
// group's earliest scheduled_at, by the database's clock (replicas' clocks
// may differ; the database's is the one River schedules by).
type countRow struct {
	Queue string  `json:"queue"`
	Kind  string  `json:"kind"`
	State string  `json:"state"`
	N     int     `json:"n"`
	Age   float64 `json:"age"`
}

// The stats query per dialect. The driver's executor reads one row, so the
// groups come back as one JSON array.
const (
	countsPostgres = `SELECT coalesce(json_agg(json_build_object('queue', queue, 'kind', kind, 'state', state, 'n', n, 'age', age)), '[]')::text
FROM (SELECT queue, kind, state::text AS state, count(*) AS n, extract(epoch FROM now() - min(scheduled_at))::float8 AS age
      FROM river_job GROUP BY queue, kind, state) AS g`
	countsSQLite = `SELECT coalesce(json_group_array(json_object('queue', queue, 'kind', kind, 'state', state, 'n', n, 'age', age)), '[]')
FROM (SELECT queue, kind, state, count(*) AS n, (julianday('now') - julianday(min(scheduled_at))) * 86400.0 AS age
      FROM river_job GROUP BY queue, kind, state)`
)

func countsQuery[TTx any](driver riverdriver.Driver[TTx]) func(ctx context.Context) ([]countRow, error) {
	q := countsSQLite
	if driver.DatabaseName() == riverdriver.DatabaseNamePostgres {
		q = countsPostgres
	}
	exec := driver.GetExecutor()
	return func(ctx context.Context) ([]countRow, error) {
		var raw string
		if err := exec.QueryRow(ctx, q).Scan(&raw); err != nil {
			return nil, fmt.Errorf("jobs: counting jobs: %w", err)
		}
		var rows []countRow
		if err := json.Unmarshal([]byte(raw), &rows); err != nil {
			return nil, fmt.Errorf("jobs: reading job counts: %w", err)
		}
		return rows, nil
	}
}

// Query selects jobs for Jobs.
type Query struct {
	// States keeps jobs in any of these states (all when empty).
	States []string
	Kind   string
	Queue  string
	// Limit bounds the page (DefaultLimit when 0, at most MaxLimit).
	Limit int
	// Cursor continues after the last job of a previous page (its Next).
	Cursor string
}

// Page sizes of Jobs: the default, and the largest.
const (
	DefaultLimit = 50
	MaxLimit     = 200
)

// AttemptError is the error of one failed attempt.
type AttemptError struct {
	At      time.Time `json:"at"`
	Attempt int       `json:"attempt"`
	Error   string    `json:"error"`
}

// Job is what operators see of a job. Its arguments are not shown: only
// the summary its kind gives (ids, never a user's text or a secret).
type Job struct {
	ID          int64
	Kind        string
	Queue       string
	State       string
	Attempt     int
	MaxAttempts int
	CreatedAt   time.Time
	ScheduledAt time.Time
	AttemptedAt *time.Time
	FinalizedAt *time.Time
	// AttemptedBy are the River clients (one per replica process) that
	// tried the job, latest last.
	AttemptedBy []string
	Errors      []AttemptError
	Summary     map[string]string
}

// Page is one page of Jobs: Next continues it, empty on the last page.
type Page struct {
	Jobs []Job
	Next string
}

// Jobs lists jobs, newest first, through River's cursor paging.
func (c *Client) Jobs(ctx context.Context, q Query) (*Page, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	p := river.NewJobListParams().OrderBy(river.JobListOrderByID, river.SortOrderDesc).First(limit)
	if len(q.States) > 0 {
		states := make([]rivertype.JobState, 0, len(q.States))
		for _, s := range q.States {
			if !slices.Contains(States, s) {
				return nil, fmt.Errorf("%w: unknown state %q; use one of %s", ErrInvalid, s, strings.Join(States, ", "))
			}
			states = append(states, rivertype.JobState(s))
		}
		p = p.States(states...)
	}
	if q.Kind != "" {
		p = p.Kinds(q.Kind)
	}
	if q.Queue != "" {
		p = p.Queues(q.Queue)
	}
	if q.Cursor != "" {
		cur := &river.JobListCursor{}
		if err := cur.UnmarshalText([]byte(q.Cursor)); err != nil {
			return nil, fmt.Errorf("%w: the cursor is not one a previous page returned; start again without it", ErrInvalid)
		}
		p = p.After(cur)
	}
	res, err := c.river.JobList(ctx, p)
	if err != nil {
		if strings.Contains(err.Error(), "cursor") {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return nil, fmt.Errorf("jobs: listing jobs: %w", err)
	}
	page := &Page{Jobs: make([]Job, 0, len(res.Jobs))}
	for _, j := range res.Jobs {
		page.Jobs = append(page.Jobs, c.view(ctx, j))
	}
	if len(res.Jobs) == limit && res.LastCursor != nil {
		b, err := res.LastCursor.MarshalText()
		if err != nil {
			return nil, fmt.Errorf("jobs: encoding the next page's cursor: %w", err)
		}
		page.Next = string(b)
	}
	return page, nil
}

// Job returns one job.
func (c *Client) Job(ctx context.Context, id int64) (*Job, error) {
	j, err := c.river.JobGet(ctx, id)
	if err != nil {
		if errors.Is(err, rivertype.ErrNotFound) {
			return nil, fmt.Errorf("%w: %d", ErrNotFound, id)
		}
		return nil, fmt.Errorf("jobs: reading job %d: %w", id, err)
	}
	v := c.view(ctx, j)
	return &v, nil
}

// Requeue makes a finished or waiting job available to run at once
// (River's JobRetry): a discarded, cancelled or completed job runs again,
// with one more attempt when it had used them all. A running job is left
// alone (ErrRunning). What running it again does is its kind's business:
// a background run is executed at most once, so requeueing the job of a
// run that already started or ended never executes the run again.
func (c *Client) Requeue(ctx context.Context, id int64) (*Job, error) {
	before, err := c.river.JobGet(ctx, id)
	if err != nil {
		if errors.Is(err, rivertype.ErrNotFound) {
			return nil, fmt.Errorf("%w: %d", ErrNotFound, id)
		}
		return nil, fmt.Errorf("jobs: reading job %d: %w", id, err)
	}
	if before.State == rivertype.JobStateRunning {
		return nil, fmt.Errorf("%w: job %d is being worked on; wait for it to finish", ErrRunning, id)
	}
	j, err := c.river.JobRetry(ctx, id)
	if err != nil {
		if errors.Is(err, rivertype.ErrNotFound) {
			return nil, fmt.Errorf("%w: %d", ErrNotFound, id)
		}
		return nil, fmt.Errorf("jobs: requeueing job %d: %w", id, err)
	}
	if j.State == rivertype.JobStateRunning {
		// Started between the read and the retry: River left it alone.
		return nil, fmt.Errorf("%w: job %d is being worked on; wait for it to finish", ErrRunning, id)
	}
	v := c.view(ctx, j)
	return &v, nil
}

func (c *Client) view(ctx context.Context, j *rivertype.JobRow) Job {
	v := Job{ID: j.ID, Kind: j.Kind, Queue: j.Queue, State: string(j.State), Attempt: j.Attempt, MaxAttempts: j.MaxAttempts,
		CreatedAt: j.CreatedAt, ScheduledAt: j.ScheduledAt, AttemptedAt: j.AttemptedAt, FinalizedAt: j.FinalizedAt,
		AttemptedBy: j.AttemptedBy, Errors: make([]AttemptError, 0, len(j.Errors))}
	for _, e := range j.Errors {
		// The panic trace stays in River's row: it is for the server log.
		v.Errors = append(v.Errors, AttemptError{At: e.At, Attempt: e.Attempt, Error: e.Error})
	}
	if s := c.opts.Registry.summaries[j.Kind]; s != nil {
		v.Summary = s(ctx, j.EncodedArgs)
	}
	return v
}

// Summarizer is implemented by job arguments that can say which job they
// are without revealing what a user wrote or a secret: ids and names.
type Summarizer interface {
	Summary() map[string]string
}

// summarize decodes a kind's encoded arguments and summarizes them, when the
// kind's arguments are a Summarizer.
func summarize[A Args](_ context.Context, raw []byte) map[string]string {
	var a A
	if json.Unmarshal(raw, &a) != nil {
		return nil
	}
	if s, ok := any(a).(Summarizer); ok {
		return s.Summary()
	}
	return nil
}

// Counters are what went wrong with jobs in this process since it started
// (each replica counts its own).
type Counters struct {
	// FailedAttempts are the attempts whose work returned an error, by kind.
	FailedAttempts map[string]uint64
	// LeaseExpired are background runs ended ERROR because the process
	// executing them died and their job's lease expired.
	LeaseExpired uint64
	// Rescued are jobs found running at start and given back (SQLite:
	// Options.Exclusive).
	Rescued uint64
	// Orphaned are background runs ended ERROR, never started, because no
	// job was left to start them (RegisterOrphanSweep).
	Orphaned uint64
}

// counters are a Registry's Counters, written by its workers.
type counters struct {
	mu           sync.Mutex
	failed       map[string]uint64
	leaseExpired atomic.Uint64
	rescued      atomic.Uint64
	orphans      atomic.Uint64
}

func (c *counters) orphaned() { c.orphans.Add(1) }

func (c *counters) attemptFailed(kind string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failed == nil {
		c.failed = map[string]uint64{}
	}
	c.failed[kind]++
}

// Counters returns this process's job counters.
func (c *Client) Counters() Counters {
	r := c.opts.Registry.counters
	r.mu.Lock()
	failed := make(map[string]uint64, len(r.failed))
	for k, n := range r.failed {
		failed[k] = n
	}
	r.mu.Unlock()
	return Counters{FailedAttempts: failed, LeaseExpired: r.leaseExpired.Load(), Rescued: r.rescued.Load(), Orphaned: r.orphans.Load()}
}
