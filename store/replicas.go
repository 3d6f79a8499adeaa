package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/session"
)

var _ session.Liveness = (*DB)(nil)

// DefaultReplicaID is the replica id of a store opened without
// Options.ReplicaID. Every such process shares it, so each recovers what the
// previous one left RUNNING as soon as it opens the database, as a single
// process serving its database should.
const DefaultReplicaID = "local"

// DefaultReplicaLease is how long a replica's heartbeat stays fresh by
// default: three of the run service's default heartbeat intervals (5 s).
const DefaultReplicaLease = 15 * time.Second

// ReplicaID returns the id under which this store records its runs and its
// heartbeat.
func (db *DB) ReplicaID() string { return db.replica }

// register records this process's heartbeat row, replacing the row of a
// previous process under the same id (whose runs Open has just recovered).
func (db *DB) register(ctx context.Context) error {
	db.started = now()
	err := db.exec(ctx, `INSERT INTO replicas (id, started_at, seen_at) VALUES ($1, $2, $2)
		ON CONFLICT (id) DO UPDATE SET started_at = excluded.started_at, seen_at = excluded.seen_at`,
		db.replica, db.timeArg(db.started))
	if err != nil {
		return fmt.Errorf("store: registering replica %s: %w", db.replica, err)
	}
	return nil
}

// Heartbeat records that this replica is alive, so that no other replica's
// recovery fails its runs. It recreates the row when another replica's
// recovery removed it after a heartbeat came too late.
func (db *DB) Heartbeat(ctx context.Context) error {
	err := db.exec(ctx, `INSERT INTO replicas (id, started_at, seen_at) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at`,
		db.replica, db.timeArg(db.started), db.timeArg(now()))
	if err != nil {
		return fmt.Errorf("store: heartbeat of replica %s: %w", db.replica, err)
	}
	return nil
}

// Leave removes this replica's heartbeat row at a graceful stop, once its
// runs are drained. A later process under the same id keeps its own row.
func (db *DB) Leave(ctx context.Context) error {
	err := db.exec(ctx, `DELETE FROM replicas WHERE id = $1 AND started_at = $2`,
		db.replica, db.timeArg(db.started))
	if err != nil {
		return fmt.Errorf("store: removing replica %s: %w", db.replica, err)
	}
	return nil
}

// RecoverRuns marks as ERROR with InterruptedRunError the RUNNING runs that
// no live replica will finish, and returns them (a run's Content and Tools
// are not included), so that the caller can trace them. It is idempotent and
// safe to run on every replica at once: a run is marked, and returned, by
// exactly one of them. A run is recovered when
//
//   - its replica's heartbeat is older than the lease, or the replica has no
//     heartbeat row (it stopped, or a recovery removed its stale row);
//   - it was stored before runs recorded their replica (an empty replica_id) and no
//     other replica has a fresh heartbeat, as every RUNNING run was before.
//
// Open also recovers the runs of this replica id's previous process, which
// cannot be alive any more under the same id.
//
// Top-level workflow runs are the exception: they are set back to PENDING
// (returned with that status and no error), for the caller to queue their
// jobs; they resume after their last checkpointed step.
func (db *DB) RecoverRuns(ctx context.Context) ([]session.Run, error) {
	return db.recoverRuns(ctx, false)
}

// recoverRuns is RecoverRuns; own also recovers the runs recorded under this
// replica's id, which only Open may do: later they are this process's own.
func (db *DB) recoverRuns(ctx context.Context, own bool) ([]Run, error) {
	// The literal 'RUNNING' (not a parameter) lets PostgreSQL use the partial
	// index on running runs. The latencies are computed in SQL, as migration
	// 0004 backfills them: this runs over the few runs in flight.
	latency := sqliteLatencyUS("$3", "created_at")
	if db.dialect == DialectPostgres {
		latency = postgresLatencyUS("$3::timestamptz", "created_at")
	}
	ownRuns := ""
	if own {
		ownRuns = ` OR replica_id = $4`
	}
	// Top-level workflow runs are not failed but requeued PENDING: they
	// resume from their checkpoints (the caller queues their jobs).
	const requeued = `(type = 'workflow' AND parent_run_id = '')`
	t := now()
	cutoff := t.Add(-db.lease)
	var recovered []Run
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		recovered = recovered[:0] // a group commit may retry fn
		rows, err := tx.QueryContext(ctx,
			`UPDATE runs SET status = CASE WHEN `+requeued+` THEN 'PENDING' ELSE $1 END,
				error = CASE WHEN `+requeued+` THEN '' ELSE $2 END, updated_at = $3,
				replica_id = CASE WHEN `+requeued+` THEN '' ELSE replica_id END,
				latency_us = CASE WHEN `+requeued+` THEN NULL ELSE `+latency+` END WHERE status = 'RUNNING' AND (
				(replica_id <> '' AND replica_id <> $4 AND NOT EXISTS (SELECT 1 FROM replicas p WHERE p.id = runs.replica_id AND p.seen_at >= $5))
				OR (replica_id = '' AND NOT EXISTS (SELECT 1 FROM replicas p WHERE p.id <> $4 AND p.seen_at >= $5))`+ownRuns+`)
			RETURNING id, session_id, parent_run_id, component_id, type, user_id, input, model, provider, spec_version, created_at, updated_at, status`,
			string(event.StatusError), InterruptedRunError, db.timeArg(t), db.replica, db.timeArg(cutoff))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r := Run{Error: InterruptedRunError}
			var status string
			if err := rows.Scan(&r.ID, &r.SessionID, &r.ParentRunID, &r.ComponentID, &r.Type, &r.UserID, &r.Input,
				&r.Model, &r.Provider, &r.SpecVersion, timeDest{&r.CreatedAt}, timeDest{&r.UpdatedAt}, &status); err != nil {
				return err
			}
			if r.Status = event.Status(status); r.Status == event.StatusPending {
				r.Error = ""
			}
			recovered = append(recovered, r)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		// The stale rows have served: their runs are failed now. A replica
		// that was only slow recreates its row at its next heartbeat.
		_, err = tx.ExecContext(ctx, `DELETE FROM replicas WHERE id <> $1 AND seen_at < $2`, db.replica, db.timeArg(cutoff))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: recovering interrupted runs: %w", err)
	}
	if len(recovered) > 0 {
		db.log.Warn("recovered runs interrupted by a stopped replica (failed, or requeued for workflows)", "runs", len(recovered))
	}
	return recovered, nil
}

// exec runs one statement through the store's writes.
func (db *DB) exec(ctx context.Context, query string, args ...any) error {
	return db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, query, args...)
		return err
	})
}
