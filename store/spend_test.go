package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/store"
)

type spendSeedRun struct {
	id, parent, typ, component, user string
	at                               time.Time
	tokens                           int
	cost                             model.Cost
	unknown                          bool
}

func seedSpendRuns(t testing.TB, db *store.DB, runs []spendSeedRun) {
	t.Helper()
	for _, sr := range runs {
		s := &store.Session{ID: "s-" + sr.id, Type: sr.typ, ComponentID: sr.component, UserID: sr.user}
		r := &store.Run{ID: sr.id, ParentRunID: sr.parent, Input: "q", CreatedAt: sr.at}
		if sr.parent != "" {
			s.ID = "s-" + sr.parent
			r.ComponentID, r.Type = sr.component, store.SessionAgent
			s.ComponentID, s.Type = "research", store.SessionTeam
		}
		require.NoError(t, db.StartRun(t.Context(), s, r))
		r.Status, r.UpdatedAt = event.StatusCompleted, sr.at.Add(time.Second)
		r.Metrics = event.Metrics{TotalTokens: sr.tokens, Cost: sr.cost, CostUnknown: sr.unknown}
		require.NoError(t, db.FinishRun(t.Context(), r))
	}
}

func TestSpend(t *testing.T) {
	for name, open := range metricsOpeners(t) {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			A, T := store.SessionAgent, store.SessionTeam
			seedSpendRuns(t, db, []spendSeedRun{
				{id: "before", typ: A, component: "support", user: "alice", at: marchDay(1, 23, 59, 59), tokens: 1000, cost: 9_000_000},
				{id: "a1", typ: A, component: "support", user: "alice", at: marchDay(2), tokens: 100, cost: 1_000_000},
				{id: "a2", typ: A, component: "support", user: "bob", at: marchDay(2, 12, 0, 0), tokens: 200, cost: 2_000_000},
				{id: "a3", typ: A, component: "writer", user: "alice", at: marchDay(3, 8, 0, 0), tokens: 50, unknown: true},
				{id: "t1", typ: T, component: "research", user: "bob", at: marchDay(3, 9, 0, 0), tokens: 300, cost: 5_000_000},
				// A member's run is part of its team's: not counted again.
				{id: "m1", parent: "t1", component: "writer", user: "bob", at: marchDay(3, 9, 0, 1), tokens: 300, cost: 5_000_000},
				{id: "after", typ: A, component: "support", user: "alice", at: marchDay(4), tokens: 1000, cost: 9_000_000},
			})
			got, err := db.Spend(t.Context(), marchDay(2), marchDay(4), store.Filter{})
			require.NoError(t, err)
			require.Equal(t, store.SpendLine{Runs: 4, Tokens: 650, Cost: 8_000_000, CostUnknown: true}, got.Total)
			require.Equal(t, []store.SpendLine{
				{Type: T, Name: "research", Runs: 1, Tokens: 300, Cost: 5_000_000},
				{Type: A, Name: "support", Runs: 2, Tokens: 300, Cost: 3_000_000},
				{Type: A, Name: "writer", Runs: 1, Tokens: 50, CostUnknown: true},
			}, got.Components)
			require.Equal(t, []store.SpendLine{
				{Name: "bob", Runs: 2, Tokens: 500, Cost: 7_000_000},
				{Name: "alice", Runs: 2, Tokens: 150, Cost: 1_000_000, CostUnknown: true},
			}, got.Users)
			require.Equal(t, []store.SpendDay{{Date: "2026-03-02", Runs: 2, Cost: 3_000_000}, {Date: "2026-03-03", Runs: 2, Cost: 5_000_000}}, got.Days)

			total, err := db.SpendTotal(t.Context(), marchDay(2), marchDay(4), store.Filter{})
			require.NoError(t, err)
			require.Equal(t, got.Total, total, "SpendTotal is Spend's Total")
			total, err = db.SpendTotal(t.Context(), marchDay(2), marchDay(4), store.Filter{UserID: "bob"})
			require.NoError(t, err)
			require.Equal(t, store.SpendLine{Runs: 2, Tokens: 500, Cost: 7_000_000}, total)

			mine, err := db.Spend(t.Context(), marchDay(2), marchDay(4), store.Filter{UserID: "alice"})
			require.NoError(t, err)
			require.Equal(t, store.SpendLine{Runs: 2, Tokens: 150, Cost: 1_000_000, CostUnknown: true}, mine.Total)
			require.Len(t, mine.Users, 1)
			require.Equal(t, "alice", mine.Users[0].Name)

			none, err := db.Spend(t.Context(), marchDay(4), marchDay(2), store.Filter{})
			require.NoError(t, err)
			require.Zero(t, none.Total.Runs)
			require.Empty(t, none.Components)
		})
	}
}

// BenchmarkSpend is the console's Spend page over 100,000 top-level runs
// spread over 30 days, 10 agents and 100 users: a 30-day window (every run),
// a 7-day one, and one user's 30 days; and SpendTotal over the same.
func BenchmarkSpend(b *testing.B) {
	benchStores(b, func(b *testing.B, db *store.DB) {
		const runs = 100_000
		to := time.Now().UTC().Truncate(time.Hour)
		from := to.AddDate(0, 0, -30)
		step := to.Sub(from) / runs
		g, ctx := errgroup.WithContext(b.Context())
		g.SetLimit(64)
		for i := range runs {
			g.Go(func() error {
				id := fmt.Sprint(i)
				s := &store.Session{ID: "s" + id, Type: store.SessionAgent, ComponentID: fmt.Sprint("agent", i%10), UserID: fmt.Sprint("u", i%100)}
				r := &store.Run{ID: "r" + id, Input: "What is the capital of France?", CreatedAt: from.Add(time.Duration(i) * step)}
				if err := db.StartRun(ctx, s, r); err != nil {
					return err
				}
				finishedRun(r)
				r.Metrics.Cost = model.Cost(1000 + i%500)
				r.UpdatedAt = r.CreatedAt.Add(time.Second)
				return db.FinishRun(ctx, r)
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		if db.Dialect() == store.DialectPostgres {
			if _, err := db.Bun().ExecContext(b.Context(), "VACUUM ANALYZE runs"); err != nil {
				b.Fatal(err)
			}
		}
		for _, tc := range []struct {
			name string
			from time.Time
			f    store.Filter
			want int
		}{
			{"days=30", from, store.Filter{}, runs},
			{"days=7", to.AddDate(0, 0, -7), store.Filter{}, 0},
			{"days=30/user", from, store.Filter{UserID: "u42"}, runs / 100},
		} {
			b.Run(tc.name, func(b *testing.B) {
				for b.Loop() {
					got, err := db.Spend(b.Context(), tc.from, to, tc.f)
					if err != nil {
						b.Fatal(err)
					}
					if tc.want > 0 && got.Total.Runs != tc.want {
						b.Fatalf("%d runs, want %d", got.Total.Runs, tc.want)
					}
				}
			})
			b.Run("total/"+tc.name, func(b *testing.B) {
				for b.Loop() {
					got, err := db.SpendTotal(b.Context(), tc.from, to, tc.f)
					if err != nil {
						b.Fatal(err)
					}
					if tc.want > 0 && got.Runs != tc.want {
						b.Fatalf("%d runs, want %d", got.Runs, tc.want)
					}
				}
			})
		}
	})
}

// TestAddRunUsage: background work's usage (a summary, memories, a
// learning) adds to the spend of the run it followed, on both dialects.
func TestAddRunUsage(t *testing.T) {
	for name, open := range metricsOpeners(t) {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			seedSpendRuns(t, db, []spendSeedRun{
				{id: "r1", typ: store.SessionAgent, component: "support", user: "alice", at: marchDay(2), tokens: 100, cost: 1_000_000},
			})
			require.NoError(t, db.AddRunUsage(t.Context(), "r1", 50, 500_000, false))
			total, err := db.SpendTotal(t.Context(), marchDay(2), marchDay(3), store.Filter{})
			require.NoError(t, err)
			require.Equal(t, store.SpendLine{Runs: 1, Tokens: 150, Cost: 1_500_000}, total)
			require.NoError(t, db.AddRunUsage(t.Context(), "r1", 10, 0, true))
			total, err = db.SpendTotal(t.Context(), marchDay(2), marchDay(3), store.Filter{})
			require.NoError(t, err)
			require.Equal(t, store.SpendLine{Runs: 1, Tokens: 160, Cost: 1_500_000, CostUnknown: true}, total, "an unpriced model makes the cost a floor")
		})
	}
}
