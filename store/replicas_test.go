package store_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/store"
)

// replicaOpeners open one database as several replicas would, each call a
// store of its own with the given options: a SQLite file always, and a
// PostgreSQL schema when it is configured.
func replicaOpeners(t *testing.T) map[string]func(t *testing.T, opts store.Options) *store.DB {
	path := filepath.Join(t.TempDir(), "troupe.db")
	out := map[string]func(t *testing.T, opts store.Options) *store.DB{
		"sqlite": func(t *testing.T, opts store.Options) *store.DB {
			opts.Logger = quiet
			db, err := store.Open(context.Background(), path, opts)
			require.NoError(t, err)
			t.Cleanup(func() { _ = db.Close() })
			return db
		},
	}
	if dsn := os.Getenv(postgresEnv); dsn != "" {
		d := newSchema(t, dsn)
		out["postgres"] = func(t *testing.T, opts store.Options) *store.DB {
			opts.MaxOpenConns = 4
			return openPostgres(t, d, opts)
		}
	}
	return out
}

// startRunning stores a foreground run, RUNNING on db's replica.
func startRunning(t *testing.T, db *store.DB, session, run string) {
	t.Helper()
	s := &store.Session{ID: session, Type: store.SessionAgent, ComponentID: "a", UserID: "u"}
	require.NoError(t, db.StartRun(t.Context(), s, &store.Run{ID: run, Input: "hi"}))
}

func runStatus(t *testing.T, db *store.DB, id string) (event.Status, string) {
	t.Helper()
	r, err := db.GetRun(t.Context(), id, store.Filter{})
	require.NoError(t, err)
	return r.Status, r.Error
}

func recoveredIDs(runs []store.Run) []string {
	ids := []string{}
	for _, r := range runs {
		ids = append(ids, r.ID)
	}
	return ids
}

// A run executing on a replica with a fresh heartbeat survives another
// replica's opening and recovery; once that heartbeat is older than the
// lease, one recovery fails it, and reports it, once.
func TestRecoveryLeavesLiveReplicasRuns(t *testing.T) {
	const lease = 300 * time.Millisecond
	for name, open := range replicaOpeners(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			a := open(t, store.Options{ReplicaID: "a", ReplicaLease: lease})
			require.Equal(t, "a", a.ReplicaID())
			startRunning(t, a, "s", "on-a")

			b := open(t, store.Options{ReplicaID: "b", ReplicaLease: lease})
			require.Empty(t, b.Interrupted(), "a's heartbeat is fresh")
			got, err := b.RecoverRuns(ctx)
			require.NoError(t, err)
			require.Empty(t, got)
			status, _ := runStatus(t, b, "on-a")
			require.Equal(t, event.StatusRunning, status)

			// Heartbeats keep a alive past the lease.
			for range 3 {
				time.Sleep(lease / 2)
				require.NoError(t, a.Heartbeat(ctx))
				got, err = b.RecoverRuns(ctx)
				require.NoError(t, err)
				require.Empty(t, got, "a heartbeat within the lease")
			}

			time.Sleep(lease + 100*time.Millisecond) // a stops beating: it died
			got, err = b.RecoverRuns(ctx)
			require.NoError(t, err)
			require.Equal(t, []string{"on-a"}, recoveredIDs(got))
			require.Equal(t, store.InterruptedRunError, got[0].Error)
			status, msg := runStatus(t, b, "on-a")
			require.Equal(t, event.StatusError, status)
			require.Equal(t, store.InterruptedRunError, msg)

			got, err = b.RecoverRuns(ctx)
			require.NoError(t, err)
			require.Empty(t, got, "recovered once")
			c := open(t, store.Options{ReplicaID: "c", ReplicaLease: lease})
			require.Empty(t, c.Interrupted(), "recovered by one replica only")
		})
	}
}

// A process that opens the database under the id of a previous process
// fails that one's runs at once, fresh heartbeat or not: that process is
// gone. Other replicas' runs are untouched.
func TestRecoverySameReplicaRestart(t *testing.T) {
	for name, open := range replicaOpeners(t) {
		t.Run(name, func(t *testing.T) {
			a := open(t, store.Options{ReplicaID: "a"})
			b := open(t, store.Options{ReplicaID: "b"})
			startRunning(t, a, "s", "on-a")
			startRunning(t, b, "s2", "on-b")

			a2 := open(t, store.Options{ReplicaID: "a"}) // a restarted, e.g. after kill -9
			require.Equal(t, []string{"on-a"}, recoveredIDs(a2.Interrupted()))
			status, _ := runStatus(t, a2, "on-a")
			require.Equal(t, event.StatusError, status)
			status, _ = runStatus(t, a2, "on-b")
			require.Equal(t, event.StatusRunning, status, "b is alive")

			// a2's own runs are its own from now on.
			startRunning(t, a2, "s3", "on-a2")
			got, err := a2.RecoverRuns(t.Context())
			require.NoError(t, err)
			require.Empty(t, got)
		})
	}
}

// A background run records the replica that claims it, and a replica that
// leaves gracefully (its runs drained) no longer protects a run it left.
func TestRecoveryClaimedRunAndLeave(t *testing.T) {
	for name, open := range replicaOpeners(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			a := open(t, store.Options{ReplicaID: "a"})
			b := open(t, store.Options{ReplicaID: "b"})
			s := &store.Session{ID: "s", Type: store.SessionAgent, ComponentID: "a", UserID: "u"}
			require.NoError(t, a.StartRun(ctx, s, &store.Run{ID: "bg", Input: "hi", Status: event.StatusPending}))

			got, err := a.RecoverRuns(ctx)
			require.NoError(t, err)
			require.Empty(t, got, "a pending run is no one's yet")
			_, err = b.ClaimRun(ctx, "bg")
			require.NoError(t, err)

			a2 := open(t, store.Options{ReplicaID: "a"})
			require.Empty(t, a2.Interrupted(), "b claimed it, and b is alive")

			require.NoError(t, b.Leave(ctx))
			got, err = a2.RecoverRuns(ctx)
			require.NoError(t, err)
			require.Equal(t, []string{"bg"}, recoveredIDs(got))
		})
	}
}

// Runs stored before runs recorded their replica are failed as they always
// were, but only when no other replica is alive to be executing them.
func TestRecoveryLegacyRuns(t *testing.T) {
	for name, open := range replicaOpeners(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			a := open(t, store.Options{ReplicaID: "a"})
			startRunning(t, a, "s", "old")
			_, err := a.Bun().ExecContext(ctx, `UPDATE runs SET replica_id = '' WHERE id = 'old'`)
			require.NoError(t, err)

			b := open(t, store.Options{ReplicaID: "b"})
			require.Empty(t, b.Interrupted(), "a is alive and may be executing it")

			require.NoError(t, a.Leave(ctx))
			got, err := b.RecoverRuns(ctx)
			require.NoError(t, err)
			require.Equal(t, []string{"old"}, recoveredIDs(got))
		})
	}
}
