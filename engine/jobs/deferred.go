package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/riverqueue/river"
)

// Deferred inserts: the jobs a run leaves behind (its memories' extraction,
// its learnings, its session's summary) are inserted off the run's path, so
// that the client waiting for the run's answer never waits for them. While
// Run runs, a goroutine it owns inserts what is queued, many jobs in one
// transaction when several wait; at shutdown Run inserts what is left
// before it stops. A job queued while Run is not running is inserted at
// once, as Enqueue does. A process that dies loses the few jobs queued in
// the last moments, as it would lose a job whose insert had not started.

// maxDeferred bounds the jobs waiting to be inserted; past it EnqueueDeferred
// inserts at once, so a database that cannot keep up slows runs down rather
// than growing memory.
const maxDeferred = 4096

// deferBatch bounds the jobs of one insert.
const deferBatch = 200

// deferLinger is how long the flusher waits after a job is queued before it
// inserts. A run's answer has just been sent when its jobs are queued, and
// the caller's next request starts at that moment: inserting at once (and
// the job's fetch that follows) competed with that request's start for the
// CPU and SQLite's writer, where a few milliseconds later both are idle
// while the request waits for its model. It also gathers the jobs of runs
// that end together into one transaction.
const deferLinger = 10 * time.Millisecond

// EnqueueDeferred queues a job of kind k to be inserted off the caller's
// path (see above). Unique kinds stay unique: the insert is River's.
func EnqueueDeferred[A Args](ctx context.Context, c *Client, k Kind[A], args A) error {
	p := river.InsertManyParams{Args: args, InsertOpts: k.insertOpts()}
	c.deferMu.Lock()
	if !c.deferOn || len(c.deferred) >= maxDeferred {
		c.deferMu.Unlock()
		_, err := c.insert(ctx, k, args)
		return err
	}
	c.deferred = append(c.deferred, p)
	c.deferMu.Unlock()
	select {
	case c.deferWake <- struct{}{}:
	default: // a wake-up is pending: the flusher takes this job too
	}
	return nil
}

// Deferred returns how many jobs wait to be inserted (tests wait for it to
// be 0 before they look at the queues).
func (c *Client) Deferred() int {
	c.deferMu.Lock()
	defer c.deferMu.Unlock()
	return len(c.deferred) + c.deferInFlight
}

// flushDeferred inserts queued jobs as they come, until ctx ends.
func (c *Client) flushDeferred(ctx context.Context) {
	if c.holdDeferred {
		// A test holds the jobs back, so that only the insert at shutdown
		// can write them (export_test.go).
		<-ctx.Done()
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.deferWake:
		}
		select {
		case <-ctx.Done(): // Run inserts what is left
			return
		case <-time.After(deferLinger):
		}
		c.insertDeferred(context.WithoutCancel(ctx))
	}
}

// insertDeferred inserts every queued job, a batch per transaction.
func (c *Client) insertDeferred(ctx context.Context) {
	for {
		c.deferMu.Lock()
		n := min(len(c.deferred), deferBatch)
		if n == 0 {
			c.deferMu.Unlock()
			return
		}
		batch := c.deferred[:n:n]
		c.deferred = c.deferred[n:]
		c.deferInFlight += n
		c.deferMu.Unlock()
		if err := c.insertMany(ctx, unique(batch)); err != nil {
			// One job at a time, so that one bad job loses only itself.
			for _, p := range batch {
				if err := c.insertOne(ctx, p); err != nil {
					c.log.Error("inserting a job a run left behind: it is lost", "kind", p.Args.Kind(), "err", err)
				}
			}
		}
		c.deferMu.Lock()
		c.deferInFlight -= n
		c.deferMu.Unlock()
	}
}

// unique drops the repeats of a unique job from a batch: River refuses a
// batch holding one unique key twice, where two inserts would have made the
// second a no-op.
func unique(batch []river.InsertManyParams) []river.InsertManyParams {
	seen := map[string]bool{}
	out := batch[:0:0]
	for _, p := range batch {
		if p.InsertOpts != nil && p.InsertOpts.UniqueOpts.ByArgs {
			b, err := json.Marshal(p.Args)
			key := p.Args.Kind() + "\x00" + string(b)
			if err == nil && seen[key] {
				continue
			}
			seen[key] = true
		}
		out = append(out, p)
	}
	return out
}

func (c *Client) insertOne(ctx context.Context, p river.InsertManyParams) error {
	c.starting.RLock()
	defer c.starting.RUnlock()
	if _, err := c.river.Insert(ctx, p.Args, p.InsertOpts); err != nil {
		return fmt.Errorf("jobs: inserting a %s job: %w", p.Args.Kind(), err)
	}
	return nil
}

func (c *Client) insertMany(ctx context.Context, params []river.InsertManyParams) error {
	c.starting.RLock()
	defer c.starting.RUnlock()
	if _, err := c.river.InsertMany(ctx, params); err != nil {
		return fmt.Errorf("jobs: inserting %d jobs: %w", len(params), err)
	}
	return nil
}
