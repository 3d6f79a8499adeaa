package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// TraceRetention is how long the SQL trace sink keeps traces, as the
// ClickHouse sink's TTLDays does with a table TTL. SQL databases have no TTL,
// so Traces.Retain deletes expired traces itself.
type TraceRetention struct {
	// TTL is how long a trace is kept, counted from its root's start; zero
	// keeps traces forever.
	TTL time.Duration
	// Interval is how often expired traces are looked for (default 10m).
	Interval time.Duration
	// Batch is how many traces one delete transaction removes at most
	// (default 256): on SQLite every write of the database, runs included,
	// waits while one runs, so a backlog of a million traces goes in many
	// short transactions rather than one long one.
	Batch int
}

// DefaultTraceBatch is TraceRetention's default Batch.
const DefaultTraceBatch = 256

// DeleteTracesBefore deletes the traces whose root started before cutoff, in
// transactions of at most batch traces (DefaultTraceBatch when batch <= 0),
// and returns how many it deleted. It stops between transactions when ctx
// is cancelled.
func (t *Traces) DeleteTracesBefore(ctx context.Context, cutoff time.Time, batch int) (int, error) {
	if batch <= 0 {
		batch = DefaultTraceBatch
	}
	// The oldest first, through the traces_start index: a batch reads only
	// the rows it deletes.
	const q = `DELETE FROM traces WHERE trace_id IN (SELECT trace_id FROM traces WHERE start_ns < $1 ORDER BY start_ns LIMIT $2)`
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var n int64
		err := t.db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, q, nsOf(cutoff), batch)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return total, fmt.Errorf("store: deleting traces older than %s: %w", cutoff.UTC().Format(time.RFC3339), err)
		}
		total += int(n)
		if n < int64(batch) {
			return total, nil
		}
	}
}

// Retain deletes expired traces now and then every r.Interval, until ctx is
// cancelled; it returns nil then. With a zero TTL it returns at once. A
// failed round is logged and retried at the next interval: an unreachable
// database must not stop the server.
func (t *Traces) Retain(ctx context.Context, r TraceRetention) error {
	if r.TTL <= 0 {
		return nil
	}
	if r.Interval <= 0 {
		r.Interval = 10 * time.Minute
	}
	tick := time.NewTicker(r.Interval)
	defer tick.Stop()
	for {
		start := time.Now()
		n, err := t.DeleteTracesBefore(ctx, start.Add(-r.TTL), r.Batch)
		switch {
		case errors.Is(err, context.Canceled) && ctx.Err() != nil:
			return nil
		case err != nil:
			t.db.log.Warn("deleting expired traces; retrying at the next interval", "err", err, "deleted", n, "retry_in", r.Interval)
		case n > 0:
			t.db.log.Info("deleted expired traces", "traces", n, "older_than", r.TTL, "duration", time.Since(start).Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
