package store_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/budget"
	"github.com/troupehq/troupe/engine/model"
)

// TestBudgetUsageIncrementsAtomically adds to shared counters from many
// goroutines through two handles on one database (two replicas' pools) and
// checks no increment is lost and that every increment saw a distinct total.
func TestBudgetUsageIncrementsAtomically(t *testing.T) {
	t.Parallel()
	for name, open := range dbOpeners(t) {
		t.Run(name, func(t *testing.T) {
			a, b := open(t), open(t)
			keys := []budget.Key{{Budget: "pot", Window: ""}, {Budget: "daily-user", Scope: "user:alice", Window: "2026-12-07"}}
			before, err := a.BudgetUsage(t.Context(), keys)
			require.NoError(t, err)
			require.Equal(t, []budget.Usage{{}, {}}, before)

			const workers, each = 8, 10
			d := budget.Usage{Cost: model.Cost(1_500), Tokens: 30, ToolCalls: 1, WallTime: time.Millisecond}
			var (
				mu   sync.Mutex
				seen = map[int64]bool{}
				wg   sync.WaitGroup
			)
			for w := range workers {
				db := a
				if w%2 == 1 {
					db = b
				}
				wg.Go(func() {
					for range each {
						totals, err := db.AddBudgetUsage(t.Context(), keys, d)
						if !assertNoError(t, err) {
							return
						}
						mu.Lock()
						seen[totals[0].Tokens] = true
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			require.Len(t, seen, workers*each, "each increment returns its own total")
			n := int64(workers * each)
			want := budget.Usage{Cost: model.Cost(1_500 * n), Tokens: 30 * n, ToolCalls: n, WallTime: time.Duration(n) * time.Millisecond}
			got, err := b.BudgetUsage(t.Context(), keys)
			require.NoError(t, err)
			require.Equal(t, []budget.Usage{want, want}, got)

			other, err := a.BudgetUsage(t.Context(), []budget.Key{{Budget: "daily-user", Scope: "user:bob", Window: "2026-12-07"}, {Budget: "daily-user", Scope: "user:alice", Window: "2026-12-08"}})
			require.NoError(t, err)
			require.Equal(t, []budget.Usage{{}, {}}, other, "other users and windows are separate counters")

			list, err := a.BudgetCounters(t.Context(), "daily-user", "2026-12-07", "", 10)
			require.NoError(t, err)
			require.Len(t, list, 1)
			require.Equal(t, "user:alice", list[0].Key.Scope)
			require.Equal(t, want, list[0].Usage)
		})
	}
}

func assertNoError(t *testing.T, err error) bool {
	t.Helper()
	if err != nil {
		t.Errorf("unexpected error: %v", err)
		return false
	}
	return true
}
