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

// TestActiveRuns counts a subject's held runs while they are pending or
// running, and forgets them when they end.
func TestActiveRuns(t *testing.T) {
	t.Parallel()
	rateStores(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		runs := make([]*store.Run, 3)
		for i := range runs {
			s := &store.Session{ID: fmt.Sprint("s", i), Type: store.SessionAgent, ComponentID: "echo", UserID: "u"}
			runs[i] = &store.Run{ID: fmt.Sprint("r", i), Input: "hi"}
			require.NoError(t, db.StartRun(ctx, s, runs[i]))
			require.NoError(t, db.HoldRun(ctx, "key:a", runs[i].ID))
		}
		require.NoError(t, db.HoldRun(ctx, "key:a", "r0"), "holding twice is harmless")
		require.NoError(t, db.HoldRun(ctx, "user:u", "r0"))
		count := func(subject string) int {
			n, err := db.ActiveRuns(ctx, subject)
			require.NoError(t, err)
			return n
		}
		require.Equal(t, 3, count("key:a"))
		require.Equal(t, 1, count("user:u"))
		require.Equal(t, 0, count("key:other"))
		runs[0].Status = event.StatusCompleted
		require.NoError(t, db.FinishRun(ctx, runs[0]))
		require.Equal(t, 2, count("key:a"))
		require.Equal(t, 0, count("user:u"))
		require.NoError(t, db.HoldRun(ctx, "key:a", "no-such-run"))
		require.Equal(t, 2, count("key:a"), "a run that is not stored does not count")
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
