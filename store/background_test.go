package store_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/store"
)

// TestClaimRunOnce checks what makes a background run execute at most
// once: a PENDING run is claimed (made RUNNING) by exactly one of many
// concurrent callers, and never again; a run that is not PENDING cannot be
// claimed. PENDING survives reopening the database (no crash recovery
// touches it: it has not started).
func TestClaimRunOnce(t *testing.T) {
	for name, open := range dbOpeners(t) {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			s := &store.Session{ID: "s-bg", Type: store.SessionAgent, ComponentID: "helper", UserID: "u1"}
			r := &store.Run{ID: "r-bg", Input: "hello", Status: event.StatusPending}
			require.NoError(t, db.StartRun(t.Context(), s, r))
			require.Equal(t, event.StatusPending, r.Status)
			require.NoError(t, db.Close())

			db = open(t)
			got, err := db.GetRun(t.Context(), "r-bg", store.Filter{})
			require.NoError(t, err)
			require.Equal(t, event.StatusPending, got.Status, "a pending run is not an interrupted one")

			var wg sync.WaitGroup
			var mu sync.Mutex
			var won []*store.Run
			for range 8 {
				wg.Go(func() {
					c, err := db.ClaimRun(t.Context(), "r-bg")
					if err != nil {
						require.ErrorIs(t, err, store.ErrNotFound)
						return
					}
					mu.Lock()
					won = append(won, c)
					mu.Unlock()
				})
			}
			wg.Wait()
			require.Len(t, won, 1, "exactly one claim wins")
			require.Equal(t, event.StatusRunning, won[0].Status)
			require.Equal(t, "hello", won[0].Input)
			require.Equal(t, "helper", won[0].ComponentID)
			_, err = db.ClaimRun(t.Context(), "r-bg")
			require.ErrorIs(t, err, store.ErrNotFound)
			_, err = db.ClaimRun(t.Context(), "no-such-run")
			require.ErrorIs(t, err, store.ErrNotFound)
		})
	}
}

// TestIdempotencyKeyRetention checks keys on both databases: a key replays
// within its retention (the cutoff passed in), is taken over past it, is
// looked up only within it, and the purge deletes exactly the keys created
// before its cutoff.
func TestIdempotencyKeyRetention(t *testing.T) {
	for name, open := range dbOpeners(t) {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			ctx := t.Context()
			past := time.Now().Add(-time.Hour) // nothing stored is older
			future := time.Now().Add(time.Hour)

			run, hash, reserved, err := db.ReserveKey(ctx, "u1", "k", "h1", "run1", past)
			require.NoError(t, err)
			require.True(t, reserved)
			require.Empty(t, run+hash)
			run, hash, reserved, err = db.ReserveKey(ctx, "u1", "k", "h2", "run2", past)
			require.NoError(t, err)
			require.Equal(t, []any{"run1", "h1", false}, []any{run, hash, reserved}, "within its retention the key is the first run's")
			_, _, reserved, err = db.ReserveKey(ctx, "u2", "k", "h2", "run3", past)
			require.NoError(t, err)
			require.True(t, reserved, "keys are per user")

			run, hash, found, err := db.LookupKey(ctx, "u1", "k", past)
			require.NoError(t, err)
			require.Equal(t, []any{"run1", "h1", true}, []any{run, hash, found})
			_, _, found, err = db.LookupKey(ctx, "u1", "k", future)
			require.NoError(t, err)
			require.False(t, found, "past its retention the key is not found")
			_, _, found, err = db.LookupKey(ctx, "u1", "missing", past)
			require.NoError(t, err)
			require.False(t, found)

			// Past its retention, the next request takes the key over.
			run, hash, reserved, err = db.ReserveKey(ctx, "u1", "k", "h4", "run4", future)
			require.NoError(t, err)
			require.True(t, reserved)
			require.Empty(t, run+hash)
			run, hash, found, err = db.LookupKey(ctx, "u1", "k", past)
			require.NoError(t, err)
			require.Equal(t, []any{"run4", "h4", true}, []any{run, hash, found})

			n, err := db.PurgeKeys(ctx, past)
			require.NoError(t, err)
			require.Zero(t, n, "no key is that old")
			n, err = db.PurgeKeys(ctx, future)
			require.NoError(t, err)
			require.Equal(t, 2, n)
			for _, user := range []string{"u1", "u2"} {
				_, _, found, err = db.LookupKey(ctx, user, "k", time.Time{})
				require.NoError(t, err)
				require.False(t, found)
			}
		})
	}
}
