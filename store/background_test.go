package store_test

import (
	"sync"
	"testing"

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
