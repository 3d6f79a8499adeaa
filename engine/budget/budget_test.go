package budget_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/budget"
	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/spec"
)

func compile(name, per, period, tz string, l spec.BudgetLimits) *budget.Budget {
	return budget.Compile(&spec.Budget{Meta: spec.Meta{Name: name}, Per: per, Period: period, TimeZone: tz, Limits: l})
}

func TestBudgetKeys(t *testing.T) {
	t.Parallel()
	// 23:30 UTC on Dec 31 is already Jan 1 in Berlin.
	now := time.Date(2026, 12, 31, 23, 30, 0, 0, time.UTC)
	s := budget.Subject{RunID: "r1", SessionID: "s1", UserID: "alice", Runner: "support"}
	for _, tc := range []struct {
		per, period, tz string
		want            budget.Key
	}{
		{"user", "day", "UTC", budget.Key{Budget: "b", Scope: "user:alice", Window: "2026-12-31"}},
		{"user", "day", "Europe/Berlin", budget.Key{Budget: "b", Scope: "user:alice", Window: "2027-01-01"}},
		{"agent", "month", "UTC", budget.Key{Budget: "b", Scope: "agent:support", Window: "2026-12"}},
		{"team", "none", "UTC", budget.Key{Budget: "b", Scope: "team:support"}},
		{"all", "day", "UTC", budget.Key{Budget: "b", Window: "2026-12-31"}},
		{"run", "day", "UTC", budget.Key{Budget: "b", Scope: "run:r1"}},
		{"session", "month", "UTC", budget.Key{Budget: "b", Scope: "session:s1"}},
	} {
		t.Run(tc.per+"/"+tc.period+"/"+tc.tz, func(t *testing.T) {
			require.Equal(t, tc.want, compile("b", tc.per, tc.period, tc.tz, spec.BudgetLimits{Tokens: 1}).Key(s, now))
		})
	}
}

func TestCheckRefusesAtOrOverAnyLimit(t *testing.T) {
	t.Parallel()
	cost := 0.01
	for _, tc := range []struct {
		name  string
		used  budget.Usage
		limit string // "" = allowed
	}{
		{"nothing used", budget.Usage{}, ""},
		{"just under", budget.Usage{Cost: model.CostFromDollars(0.01) - 1, Tokens: 99, ToolCalls: 4, WallTime: time.Second - 1}, ""},
		{"cost reached", budget.Usage{Cost: model.CostFromDollars(0.01)}, "cost"},
		{"tokens over", budget.Usage{Tokens: 150}, "tokens"},
		{"tool calls reached", budget.Usage{ToolCalls: 5}, "tool_calls"},
		{"wall time reached", budget.Usage{WallTime: time.Second}, "wall_time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := budget.NewMemory()
			b := compile("cap", "all", "none", "UTC", spec.BudgetLimits{Cost: &cost, Tokens: 100, ToolCalls: 5, WallTime: spec.Duration(time.Second)})
			_, err := st.AddBudgetUsage(t.Context(), []budget.Key{{Budget: "cap"}}, tc.used)
			require.NoError(t, err)
			ctx, tr, err := budget.Open(t.Context(), budget.Policy{Budgets: []*budget.Budget{b}, Store: st}, budget.Subject{})
			require.NoError(t, err)
			require.NotNil(t, tr)
			err = budget.Check(ctx)
			if tc.limit == "" {
				require.NoError(t, err)
				return
			}
			var be *budget.ExceededError
			require.True(t, errors.As(err, &be), "%v", err)
			require.Equal(t, tc.limit, be.Limit)
			require.Equal(t, "cap", be.Budget)
		})
	}
}

// TestRecordRefreshesTheCachedTotals: the check sees what the run's own
// increments and other runs' (returned by the database) added, without a
// read of its own; a tracker nested in another counts a key they share once.
func TestRecordRefreshesTheCachedTotals(t *testing.T) {
	t.Parallel()
	st := budget.NewMemory()
	pot := compile("pot", "all", "none", "UTC", spec.BudgetLimits{Tokens: 100})
	user := compile("user", "user", "none", "UTC", spec.BudgetLimits{ToolCalls: 2})
	team := budget.Policy{Budgets: []*budget.Budget{pot}, Store: st}
	member := budget.Policy{Budgets: []*budget.Budget{pot, user}, Store: st}

	ctx, _, err := budget.Open(t.Context(), team, budget.Subject{UserID: "alice", Runner: "crew"})
	require.NoError(t, err)
	ctx, tr, err := budget.Open(ctx, member, budget.Subject{UserID: "alice", Runner: "writer"})
	require.NoError(t, err)
	keys, _ := tr.Totals()
	require.Equal(t, []budget.Key{{Budget: "user", Scope: "user:alice"}}, keys, "the pot is counted by the team's tracker only")

	require.NoError(t, budget.Record(ctx, budget.Usage{Tokens: 60, ToolCalls: 1}))
	require.NoError(t, budget.Check(ctx))
	got, err := st.BudgetUsage(t.Context(), []budget.Key{{Budget: "pot"}})
	require.NoError(t, err)
	require.Equal(t, int64(60), got[0].Tokens, "counted once")

	// Another run spends from the pot meanwhile; this run learns of it from
	// its next increment's totals.
	_, err = st.AddBudgetUsage(t.Context(), []budget.Key{{Budget: "pot"}}, budget.Usage{Tokens: 30})
	require.NoError(t, err)
	require.NoError(t, budget.Check(ctx), "no read: the cache still says 60")
	require.NoError(t, budget.Record(ctx, budget.Usage{Tokens: 10}))
	var be *budget.ExceededError
	require.ErrorAs(t, budget.Check(ctx), &be)
	require.Equal(t, "pot", be.Budget)
	require.Equal(t, "tokens", be.Limit)
}

func TestNoBudgetsOpenNothing(t *testing.T) {
	t.Parallel()
	ctx, tr, err := budget.Open(t.Context(), budget.Policy{}, budget.Subject{})
	require.NoError(t, err)
	require.Nil(t, tr)
	require.False(t, budget.Tracking(ctx))
	require.NoError(t, budget.Check(ctx))
	require.NoError(t, budget.Record(ctx, budget.Usage{Tokens: 5}))
	require.NoError(t, tr.Close(ctx))
}

// spendLog records what Background adds to runs' spend.
type spendLog struct {
	runs   []string
	tokens int64
	err    error
}

func (s *spendLog) AddRunUsage(_ context.Context, runID string, tokens int64, _ model.Cost, _ bool) error {
	s.runs = append(s.runs, runID)
	s.tokens += tokens
	return s.err
}

// TestBackground: background work after a run counts against the budgets
// and in the run's spend; a spent budget refuses it without calling the
// model; a failure to add the spend is reported apart from the answer.
func TestBackground(t *testing.T) {
	t.Parallel()
	pot := compile("pot", "", "", "", spec.BudgetLimits{Tokens: 50})
	p := budget.Policy{Budgets: []*budget.Budget{pot}, Store: budget.NewMemory()}
	s := budget.Subject{RunID: "r1", Runner: "support"}
	calls := 0
	call := func(context.Context) (*model.Response, error) {
		calls++
		return &model.Response{Content: "ok", Usage: model.Usage{InputTokens: 30, OutputTokens: 10}}, nil
	}
	spend := &spendLog{}

	resp, spendErr, err := budget.Background(t.Context(), p, s, spend, call)
	require.NoError(t, err)
	require.NoError(t, spendErr)
	require.Equal(t, "ok", resp.Content)
	require.Equal(t, []string{"r1"}, spend.runs)
	require.Equal(t, int64(40), spend.tokens)

	// 40 of 50: a second call goes ahead and crosses; a third is refused
	// before the model is asked.
	_, _, err = budget.Background(t.Context(), p, s, spend, call)
	require.NoError(t, err)
	_, _, err = budget.Background(t.Context(), p, s, spend, call)
	var exceeded *budget.ExceededError
	require.True(t, errors.As(err, &exceeded), "got %v", err)
	require.Equal(t, 2, calls)

	// Without budgets or spend: just the call. A spend that fails is
	// reported as such, with the answer.
	_, _, err = budget.Background(t.Context(), budget.Policy{}, s, nil, call)
	require.NoError(t, err)
	resp, spendErr, err = budget.Background(t.Context(), budget.Policy{}, s, &spendLog{err: errors.New("db down")}, call)
	require.NoError(t, err)
	require.EqualError(t, spendErr, "db down")
	require.Equal(t, "ok", resp.Content)

	require.Equal(t, budget.Policy{}, budget.PolicyOf(struct{}{}), "a runner without budgets")
}
