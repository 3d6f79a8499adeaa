package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
)

// NoTimeout is a Kind's Timeout for jobs that run as long as they need, up
// to the lease (Options.RescueAfter): River's rescuer gives back only a job
// whose attempt has timed out, so a job with no bound at all would never be
// given back when the process working it dies.
const NoTimeout = -1 * time.Nanosecond

// Args are a job's arguments: JSON-encoded into the job row; Kind names the
// job kind and must never change once jobs of it exist.
type Args interface {
	Kind() string
}

// Kind declares a job kind: how its jobs are inserted and run. Declare one
// package-level value per kind, next to its Args type.
type Kind[A Args] struct {
	// MaxAttempts bounds how often a job is tried (River's default, 25,
	// when 0). 1 means at most once.
	MaxAttempts int
	// Timeout bounds one attempt (River's default, one minute, or the
	// lease if shorter, when 0; NoTimeout for the lease, Options.RescueAfter).
	// An attempt that outlives its bound is cancelled.
	Timeout time.Duration
	// Unique makes a job with the same arguments a no-op while one is
	// pending, scheduled, available, running or retryable (not once it has
	// completed, been discarded or cancelled).
	Unique bool
	// UniqueDone extends Unique to completed jobs, for as long as River
	// keeps them (a day by default): a job with the same arguments is then
	// done at most once (a trigger's tick).
	UniqueDone bool
	// Queue is the queue the kind's jobs go to (DefaultQueue when empty).
	Queue string
}

func (k Kind[A]) insertOpts() *river.InsertOpts {
	o := &river.InsertOpts{MaxAttempts: k.MaxAttempts, Queue: k.Queue}
	if k.Unique || k.UniqueDone {
		// River's default states include completed, which would make a
		// finished job block its arguments for good (a retried document).
		states := []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
			rivertype.JobStateRunning, rivertype.JobStateScheduled,
		}
		if k.UniqueDone {
			states = append(states, rivertype.JobStateCompleted)
		}
		o.UniqueOpts = river.UniqueOpts{ByArgs: true, ByState: states}
	}
	return o
}

// DefaultQueue is the queue of kinds that name none.
const DefaultQueue = river.QueueDefault

// Registry holds the workers of the job kinds a client runs. Build it in the
// composition root; a kind registered twice panics (a wiring mistake).
type Registry struct {
	workers *river.Workers
	queues  map[string]bool
	// summaries summarize each kind's encoded arguments for operators.
	summaries map[string]func(ctx context.Context, raw []byte) map[string]string
	counters  *counters
	periodic  []*river.PeriodicJob
	// lease bounds the attempts of NoTimeout kinds: the rescue delay of
	// the client built on the registry (set by New).
	lease time.Duration
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{workers: river.NewWorkers(), queues: map[string]bool{DefaultQueue: true},
		summaries: map[string]func(context.Context, []byte) map[string]string{}, counters: &counters{failed: map[string]uint64{}}}
}

// Register makes the clients built on r run jobs of kind k with work.
// Register before the client's Run: workers added later are not run.
func Register[A Args](r *Registry, k Kind[A], work func(ctx context.Context, args A) error) {
	river.AddWorker(r.workers, &worker[A]{kind: k, work: work, reg: r})
	var a A
	r.summaries[a.Kind()] = summarize[A]
	// Every kind's failure counter exists from the start, so that rates of
	// failures have both sides.
	r.counters.mu.Lock()
	r.counters.failed[a.Kind()] += 0
	r.counters.mu.Unlock()
	if k.Queue != "" {
		r.queues[k.Queue] = true
	}
}

// Periodic makes the clients built on r (and run after this call) insert a job of kind k with args
// every interval, and once as they start. These are River's periodic jobs:
// only the leader elected among the clients on one database inserts them,
// so each period's job runs once however many replicas run. Register the
// kind's worker too.
func Periodic[A Args](r *Registry, every time.Duration, k Kind[A], args A) {
	r.periodic = append(r.periodic, river.NewPeriodicJob(river.PeriodicInterval(every),
		func() (river.JobArgs, *river.InsertOpts) { return args, k.insertOpts() },
		&river.PeriodicJobOpts{ID: args.Kind(), RunOnStart: true}))
}

// worker adapts a work function to River.
type worker[A Args] struct {
	river.WorkerDefaults[A]
	kind Kind[A]
	work func(ctx context.Context, args A) error
	reg  *Registry // its failure counters, and the lease of NoTimeout kinds
}

var _ river.Worker[Args] = (*worker[Args])(nil)

func (w *worker[A]) Work(ctx context.Context, j *river.Job[A]) error {
	ctx = context.WithValue(ctx, attemptKey{}, j.Attempt)
	err := w.work(context.WithValue(ctx, scheduledKey{}, j.ScheduledAt), j.Args)
	if err != nil {
		w.reg.counters.attemptFailed(j.Kind)
	}
	return err
}

// attemptKey carries a job's attempt number in its work's context.
type attemptKey struct{}

// Attempt returns the attempt number (from 1) of the job whose work ctx
// belongs to; 0 outside a job.
func Attempt(ctx context.Context) int {
	n, _ := ctx.Value(attemptKey{}).(int)
	return n
}

// scheduledKey carries a job's scheduled time in its work's context.
type scheduledKey struct{}

// ScheduledAt returns when the job whose work ctx belongs to was scheduled
// to run: for a periodic job, the tick it was inserted for.
func ScheduledAt(ctx context.Context) time.Time {
	t, _ := ctx.Value(scheduledKey{}).(time.Time)
	return t
}

// Timeout is the kind's; for NoTimeout, the client's lease (JobTimeout set
// by New when the kind's Timeout is NoTimeout), so that River's rescuer gives
// the job back once its lease expires instead of ignoring it for ever.
func (w *worker[A]) Timeout(*river.Job[A]) time.Duration {
	if w.kind.Timeout == NoTimeout {
		return w.reg.lease
	}
	return w.kind.Timeout
}

// defaultRescueAfter is River's rescue delay, used when Options.RescueAfter
// is 0.
const defaultRescueAfter = time.Hour

// fetchCooldown is the least time between two fetches of a queue's jobs,
// and between two insert notifications of a queue. River's default, 100ms,
// bounds a fetch's rate for the sake of throughput, but it was the time a
// background run waited to start (p50 100ms from enqueue to start on
// PostgreSQL and SQLite); at 2ms it is about 5ms on PostgreSQL, and a
// replica still fetches at most 500 times a second per queue under load.
const fetchCooldown = 2 * time.Millisecond

// Options configure a Client.
type Options struct {
	Registry *Registry
	// Workers is how many jobs of each queue run at once in this process
	// (default 2), unless Queues names the queue.
	Workers int
	// Queues sets how many jobs of a queue run at once in this process
	// (RunQueueName: the replica's concurrent background runs).
	Queues map[string]int
	// StopTimeout is how long Run waits at shutdown for running jobs to
	// finish before cancelling them (default 10s); cancelled jobs are
	// retried by the next client to start.
	StopTimeout time.Duration
	// RescueAfter is how long a job may stay running before it counts as
	// abandoned by a dead process and is retried, or discarded once out of
	// attempts (River's default, one hour, when 0).
	RescueAfter time.Duration
	// PollInterval is how often the client looks for new jobs besides
	// notifications; default 100ms on PostgreSQL, 1s on drivers without
	// notifications.
	PollInterval time.Duration
	// Exclusive says no other process uses the database (SQLite): jobs
	// found running when Run starts were abandoned by a process that died,
	// and are given back at once instead of after RescueAfter.
	Exclusive bool
	Logger    *slog.Logger
}

// riverClient is the part of river.Client[TTx] the Client uses, free of the
// transaction type parameter so Client need not be generic.
type riverClient interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	StopAndCancel(ctx context.Context) error
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	InsertMany(ctx context.Context, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
	JobList(ctx context.Context, params *river.JobListParams) (*river.JobListResult, error)
	JobGet(ctx context.Context, id int64) (*rivertype.JobRow, error)
	JobRetry(ctx context.Context, id int64) (*rivertype.JobRow, error)
	PeriodicJobs() *river.PeriodicJobBundle
}

var _ riverClient = (*river.Client[any])(nil)

// Client inserts jobs and, while Run runs, works them. It is safe for
// concurrent use.
type Client struct {
	river riverClient
	opts  Options
	log   *slog.Logger
	// rescue gives back abandoned jobs (Options.Exclusive).
	rescue func(ctx context.Context) (int, error)
	// counts runs the stats query on the driver's database.
	counts func(ctx context.Context) ([]countRow, error)
	// exec runs the few queries River has no API for (waiting).
	exec riverdriver.Executor
	// concurrency is how many jobs of each queue this client runs at once.
	concurrency map[string]int
	// periodic hands the registry's periodic jobs to River once, however
	// often Run is called.
	periodic sync.Once
	// starting keeps inserts out while River starts: River's wake-up of
	// local workers on insert races with its producers' start (a data race
	// in River 0.51 on drivers without a listener).
	starting sync.RWMutex
	// argEquals is the SQL condition, in the database's dialect, that a
	// job's argument @field equals @value.
	argEquals string

	// The deferred inserts (deferred.go): deferOn while Run's flusher
	// runs, the jobs waiting, how many are being inserted, and the
	// flusher's wake-up.
	deferMu       sync.Mutex
	deferOn       bool
	deferred      []river.InsertManyParams
	deferInFlight int
	deferWake     chan struct{}
	// holdDeferred keeps the flusher from inserting (tests only: it leaves
	// the insert at shutdown as the jobs' only way into the database).
	holdDeferred bool
}

// New migrates River's tables on driver's database up to date and returns a
// client on it. TTx is the driver's transaction type; store.DB provides the
// driver for its database.
func New[TTx any](ctx context.Context, driver riverdriver.Driver[TTx], opts Options) (*Client, error) {
	if opts.Registry == nil {
		opts.Registry = NewRegistry()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Workers <= 0 {
		opts.Workers = 2
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 10 * time.Second
	}
	migrator, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("jobs: preparing migrations: %w", err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return nil, fmt.Errorf("jobs: migrating the job tables: %w", err)
	}
	poll := opts.PollInterval
	if poll <= 0 {
		// With notifications (PostgreSQL), River sends at most one insert
		// notification per queue per fetch cooldown and drops the rest, so
		// a job inserted just after another waits for the poll: at River's
		// 1s default the p99 from enqueue to start was about a second. A
		// fetch there is one cheap query per queue on the job pool.
		poll = 100 * time.Millisecond
		if !driver.SupportsListenNotify() {
			// Without them (SQLite), the inserting process wakes its own
			// workers at once (see store.SQLiteJobDriver), and the poll
			// only finds retries and other processes' jobs. Each fetch
			// takes SQLite's one writer connection from the runs: at 50ms,
			// foreground runs were 3-4% slower (BenchmarkHTTPRuns c=1).
			poll = time.Second
		}
	}
	queues := map[string]river.QueueConfig{}
	concurrency := map[string]int{}
	for q := range opts.Queues {
		opts.Registry.queues[q] = true
	}
	for q := range opts.Registry.queues {
		n := opts.Workers
		if m := opts.Queues[q]; m > 0 {
			n = m
		}
		queues[q] = river.QueueConfig{MaxWorkers: n}
		concurrency[q] = n
	}
	// A kind without a Timeout gets River's default (a minute), which River
	// requires to be no longer than the rescue delay: a job must time out
	// before it can count as abandoned. A shorter lease shortens it too.
	lease := opts.RescueAfter
	if lease <= 0 {
		lease = defaultRescueAfter
	}
	timeout := min(river.JobTimeoutDefault, lease)
	opts.Registry.lease = lease
	c, err := river.NewClient(driver, &river.Config{
		Queues: queues, Workers: opts.Registry.workers, FetchPollInterval: poll, FetchCooldown: fetchCooldown,
		RescueStuckJobsAfter: lease, Logger: opts.Logger, JobTimeout: timeout,
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: creating the client: %w", err)
	}
	argEquals := "json_extract(args, '$.' || @field) = @value"
	if driver.DatabaseName() == riverdriver.DatabaseNamePostgres {
		argEquals = "args->>@field::text = @value::text"
	}
	return &Client{river: c, opts: opts, log: opts.Logger, counts: countsQuery(driver), exec: driver.GetExecutor(), concurrency: concurrency, argEquals: argEquals, deferWake: make(chan struct{}, 1),
		rescue: func(ctx context.Context) (int, error) { return rescueAbandoned(ctx, driver, time.Now().UTC()) }}, nil
}

// Run works jobs until ctx ends, then stops gracefully: running jobs get
// StopTimeout to finish before their contexts are cancelled (a cancelled
// job is retried by the next client). The caller (serve's errgroup) owns it.
func (c *Client) Run(ctx context.Context) error {
	if c.opts.Exclusive {
		n, err := c.rescue(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil // stopped while giving jobs back: the next start finishes it
			}
			return err
		}
		if n > 0 {
			c.opts.Registry.counters.rescued.Add(uint64(n))
			c.log.Info("gave back jobs abandoned by a stopped process", "jobs", n)
		}
	}
	// Periodic jobs are handed over here rather than at New, so that, as
	// workers, they may be registered until Run.
	var perr error
	c.periodic.Do(func() { _, perr = c.river.PeriodicJobs().AddManySafely(c.opts.Registry.periodic) })
	if perr != nil {
		return fmt.Errorf("jobs: adding periodic jobs: %w", perr)
	}
	c.starting.Lock()
	err := c.river.Start(ctx)
	c.starting.Unlock()
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped before it started: nothing to drain
		}
		return fmt.Errorf("jobs: starting: %w", err)
	}
	flushed := make(chan struct{})
	c.deferMu.Lock()
	c.deferOn = true
	c.deferMu.Unlock()
	go func() {
		defer close(flushed)
		c.flushDeferred(ctx)
	}()
	<-ctx.Done()
	<-flushed
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.StopTimeout)
	defer cancel()
	// From here jobs are inserted at once; the ones still queued go in
	// before River stops.
	c.deferMu.Lock()
	c.deferOn = false
	c.deferMu.Unlock()
	c.insertDeferred(stopCtx)
	err = c.river.Stop(stopCtx)
	if errors.Is(err, context.DeadlineExceeded) {
		c.log.Warn("jobs still running at the stop timeout: cancelling them; they are retried on the next start", "timeout", c.opts.StopTimeout)
		// The cancelled jobs return, and River records how they ended:
		// cutting that short would leave them running in the database,
		// and River's goroutines writing to a database about to close.
		cancelCtx, cancel2 := context.WithTimeout(context.WithoutCancel(ctx), max(c.opts.StopTimeout, cancelGrace))
		defer cancel2()
		err = c.river.StopAndCancel(cancelCtx)
	}
	if err != nil {
		return fmt.Errorf("jobs: stopping: %w", err)
	}
	return nil
}

// cancelGrace is the least time Run gives cancelled jobs to return and
// River to record them, after the stop timeout.
const cancelGrace = 5 * time.Second

// Enqueue inserts a job of kind k. inserted is false when a unique kind
// already has a job with these arguments.
func Enqueue[A Args](ctx context.Context, c *Client, k Kind[A], args A) (inserted bool, err error) {
	res, err := c.insert(ctx, k, args)
	if err != nil {
		return false, err
	}
	return !res.UniqueSkippedAsDuplicate, nil
}

// EnqueueAfterRunning is Enqueue for a unique kind whose caller knows any
// job with these arguments has done its work and is only being recorded as
// finished (a retry right after a failure): while that job is still
// running it waits, up to wait, and inserts once it has ended. A job
// queued but not yet running makes it a no-op, as with Enqueue.
func EnqueueAfterRunning[A Args](ctx context.Context, c *Client, k Kind[A], args A, wait time.Duration) (inserted bool, err error) {
	deadline := time.Now().Add(wait)
	for {
		res, err := c.insert(ctx, k, args)
		if err != nil {
			return false, err
		}
		if !res.UniqueSkippedAsDuplicate {
			return true, nil
		}
		if res.Job.State != rivertype.JobStateRunning || time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("jobs: waiting to insert a %s job: %w", args.Kind(), ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (c *Client) insert(ctx context.Context, k interface{ insertOpts() *river.InsertOpts }, args Args) (*rivertype.JobInsertResult, error) {
	// Without a listener (SQLite) River wakes this process's workers from
	// Insert, reading state that Start writes: never both at once.
	c.starting.RLock()
	res, err := c.river.Insert(ctx, args, k.insertOpts())
	c.starting.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("jobs: inserting a %s job: %w", args.Kind(), err)
	}
	return res, nil
}
