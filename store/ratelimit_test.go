package store_test

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/store"
)

// rateStores runs fn on SQLite and, with TROUPE_TEST_POSTGRES_DSN, on
// PostgreSQL.
func rateStores(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, openSQLite(t, filepath.Join(t.TempDir(), "troupe.db")))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		fn(t, openPostgres(t, newSchema(t, postgresDSN(t)), store.Options{}))
	})
}

// TestTakeRate checks the SQL GCRA: a burst of three at 2/s passes, the
// fourth waits one emission, and time spent refills the allowance.
func TestTakeRate(t *testing.T) {
	t.Parallel()
	rateStores(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		now := time.Unix(1_700_000_000, 0)
		em, tol := 500*time.Millisecond, time.Second
		take := func(subject string, at time.Duration) time.Duration {
			wait, err := db.TakeRate(ctx, subject, now.Add(at), em, tol)
			require.NoError(t, err)
			return wait
		}
		for range 3 {
			require.Zero(t, take("key:a", 0))
		}
		require.Equal(t, 500*time.Millisecond, take("key:a", 0))
		require.Equal(t, 300*time.Millisecond, take("key:a", 200*time.Millisecond), "a refusal spends nothing")
		require.Zero(t, take("key:b", 0), "subjects are apart")
		require.Zero(t, take("key:a", 500*time.Millisecond))
		require.Equal(t, 500*time.Millisecond, take("key:a", 500*time.Millisecond))
		require.Zero(t, take("key:a", time.Minute))
	})
}

// TestTakeRateConcurrent sends 40 requests at once through separate
// connections: exactly the burst passes, whatever the interleaving.
func TestTakeRateConcurrent(t *testing.T) {
	t.Parallel()
	rateStores(t, func(t *testing.T, db *store.DB) {
		now := time.Now()
		var allowed atomic.Int32
		var g errgroup.Group
		for range 40 {
			g.Go(func() error {
				wait, err := db.TakeRate(t.Context(), "user:x", now, time.Second, 9*time.Second)
				if wait == 0 && err == nil {
					allowed.Add(1)
				}
				return err
			})
		}
		require.NoError(t, g.Wait())
		require.Equal(t, int32(10), allowed.Load())
	})
}

// TestReserveRun: reservations take a subject's concurrent runs until they
// are released, expire, or are bound to a run, which then counts while it
// is PENDING or RUNNING.
func TestReserveRun(t *testing.T) {
	t.Parallel()
	rateStores(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		now := time.Unix(1_700_000_000, 0)
		const ttl = time.Minute
		reserve := func(subject, token string, limit int, at time.Time) (int, bool) {
			n, ok, err := db.ReserveRun(ctx, subject, token, limit, at, ttl)
			require.NoError(t, err)
			return n, ok
		}
		n, ok := reserve("key:a", "t1", 2, now)
		require.True(t, ok)
		require.Zero(t, n)
		n, ok = reserve("key:a", "t2", 2, now)
		require.True(t, ok)
		require.Equal(t, 1, n)
		n, ok = reserve("key:a", "t3", 2, now)
		require.False(t, ok, "two reservations fill a limit of two")
		require.Equal(t, 2, n)
		_, ok = reserve("key:b", "t3", 2, now)
		require.True(t, ok, "another subject has its own slots")

		// t1 becomes a running run, counted for the user too.
		run := &store.Run{ID: "r0", Input: "hi"}
		require.NoError(t, db.StartRun(ctx, &store.Session{ID: "s0", Type: store.SessionAgent, ComponentID: "echo", UserID: "u"}, run))
		_, ok = reserve("user:u", "t1", 5, now)
		require.True(t, ok)
		require.NoError(t, db.BindRun(ctx, []string{"key:a", "user:u"}, "t1", run.ID))
		n, ok = reserve("user:u", "t4", 1, now)
		require.False(t, ok, "the bound run counts")
		require.Equal(t, 1, n, "the reservation it replaced does not count twice")

		// Releasing t2 frees its slot.
		require.NoError(t, db.ReleaseRun(ctx, []string{"key:a"}, "t2"))
		n, ok = reserve("key:a", "t5", 2, now)
		require.True(t, ok)
		require.Equal(t, 1, n)

		// An expired reservation (its request died) frees its slot; the
		// bound run still counts.
		_, ok = reserve("key:a", "t6", 2, now.Add(ttl-time.Second))
		require.False(t, ok)
		n, ok = reserve("key:a", "t6", 2, now.Add(ttl+time.Second))
		require.True(t, ok)
		require.Equal(t, 1, n)

		// A finished run frees its slot.
		run.Status = event.StatusCompleted
		require.NoError(t, db.FinishRun(ctx, run))
		n, ok = reserve("user:u", "t7", 1, now)
		require.True(t, ok)
		require.Zero(t, n)

		// A reservation bound after it expired (and was pruned) is recorded
		// anew: its run counts.
		later := now.Add(2 * ttl)
		n, ok = reserve("user:u", "t8", 1, later)
		require.True(t, ok, "t7 expired")
		require.Zero(t, n)
		require.NoError(t, db.ReleaseRun(ctx, []string{"user:u"}, "t8"))
		again := &store.Run{ID: "r1", Input: "hi"}
		require.NoError(t, db.StartRun(ctx, &store.Session{ID: "s1", Type: store.SessionAgent, ComponentID: "echo", UserID: "u"}, again))
		require.NoError(t, db.BindRun(ctx, []string{"user:u"}, "t7", again.ID))
		n, ok = reserve("user:u", "t9", 1, later)
		require.False(t, ok, "the run bound late counts")
		require.Equal(t, 1, n)
		// A run that is not stored does not count.
		again.Status = event.StatusCompleted
		require.NoError(t, db.FinishRun(ctx, again))
		require.NoError(t, db.BindRun(ctx, []string{"user:u"}, "t9", "no-such-run"))
		n, ok = reserve("user:u", "t10", 1, later)
		require.True(t, ok)
		require.Zero(t, n)
	})
}

// TestReserveRunConcurrently: requests at once, through three replicas
// sharing the database, never take more slots than the limit.
func TestReserveRunConcurrently(t *testing.T) {
	t.Parallel()
	check := func(t *testing.T, replicas []*store.DB) {
		now := time.Now()
		for round := range 5 {
			subject := fmt.Sprint("key:x", round)
			var taken atomic.Int32
			var g errgroup.Group
			for i := range 30 {
				g.Go(func() error {
					_, ok, err := replicas[i%len(replicas)].ReserveRun(t.Context(), subject, fmt.Sprint("t", i), 3, now, time.Minute)
					if ok {
						taken.Add(1)
					}
					return err
				})
			}
			require.NoError(t, g.Wait())
			require.Equal(t, int32(3), taken.Load(), "round %d", round)
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "troupe.db")
		check(t, []*store.DB{openSQLite(t, path), openSQLite(t, path), openSQLite(t, path)})
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		dsn := newSchema(t, postgresDSN(t))
		check(t, []*store.DB{openPostgres(t, dsn, store.Options{}), openPostgres(t, dsn, store.Options{}), openPostgres(t, dsn, store.Options{})})
	})
}

// BenchmarkTakeRate is the database's share of a rate-limited request.
func BenchmarkTakeRate(b *testing.B) {
	benchStores(b, func(b *testing.B, db *store.DB) {
		start := time.Now()
		i := 0
		for b.Loop() {
			i++
			if _, err := db.TakeRate(b.Context(), "key:bench", start.Add(time.Duration(i)*time.Millisecond), time.Millisecond, time.Second); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkReserveRun is the database's share of starting a run under a
// concurrent-runs limit: the reservation, then binding it to the run.
func BenchmarkReserveRun(b *testing.B) {
	benchStores(b, func(b *testing.B, db *store.DB) {
		now := time.Now()
		subjects := []string{"key:bench"}
		i := 0
		for b.Loop() {
			i++
			token := fmt.Sprint("reservation:", i)
			if _, ok, err := db.ReserveRun(b.Context(), "key:bench", token, 3, now, time.Minute); err != nil || !ok {
				b.Fatal(ok, err)
			}
			// Bound to a run that is not stored, so it never fills the limit.
			if err := db.BindRun(b.Context(), subjects, token, fmt.Sprint("run-", i)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
